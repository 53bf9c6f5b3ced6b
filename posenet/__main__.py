"""Allow `python -m posenet`."""

from posenet.cli import main

raise SystemExit(main())
