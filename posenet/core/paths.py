"""Where things are found: the checkout, the shared sample data beside it, and the models a user trained.

One place, so that the code, the benchmarks and the tests agree. `POSENET_SHARED` overrides the
location of `../shared` (sample datasets and Opentrack's published models), which is read, never
copied into the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("POSENET_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"
OPENTRACK_MODELS = SHARED / "peers" / "opentrack"
OUR_MODELS = REPO / "work" / "models"  # where the README's tracker commands put the exported nets
RESULTS = REPO / "results"
