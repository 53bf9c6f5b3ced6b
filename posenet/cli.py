"""`posenet` / `python -m posenet`: one command line for every tool in the project.

Each subcommand lives in its own module, which exposes two functions:

    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> None

Modules are imported only when their subcommand runs (TensorFlow is slow to import),
so `posenet --help` is instant. A `PosenetError` raised anywhere becomes one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.util
import os
import sys
from typing import NamedTuple, Sequence

from posenet.core.errors import PosenetError


class Command(NamedTuple):
    name: str
    module: str
    help: str


DATA_COMMANDS = (
    Command("synth", "data_tools.synth", "render a synthetic labelled face dataset (HDF5)"),
    Command("convert", "data_tools.convert.cli", "convert AFLW2000-3D, 300W-LP, BIWI, WIDER FACE or a photo folder"),
    Command("augment", "data_tools.augment", "in-plane rotation groups and mirroring with exact re-labelling"),
    Command("show", "data_tools.show", "contact sheet PNG with pose axes, landmarks and boxes"),
    Command("info", "data_tools.info", "counts, fields and pose histograms of a dataset file"),
)

COMMANDS = (
    Command("train", "posenet.train", "train one network on one loss (Keras fit, TensorBoard logs)"),
    Command("evaluate", "posenet.evaluate", "evaluate a run, an ONNX model or a baseline on a dataset"),
    Command("study", "posenet.study.command", "the baseline study: all arms, results table and plots in results/"),
    Command("export", "posenet.export", "export a trained run to ONNX (optionally Opentrack's contract)"),
    Command("tracker-models", "posenet.tracker_models",
            "render, train and export the tracker's pose net and localizer in one resumable command"),
    Command("track", "posenet.tracker.track", "track a head in a video, camera or image folder (ONNX Runtime only)"),
    Command("bench", "posenet.bench", "performance figures (renderer, input pipeline, caches, PnP, tracker)"),
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show a default only where it says something (not None, not a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


def _add_command(subparsers: argparse._SubParsersAction, command: Command, argv: Sequence[str]) -> None:
    parser = subparsers.add_parser(
        command.name,
        help=command.help,
        description=command.help,
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(_module=command.module)
    if command.name in argv:  # import only the module that is about to run (or print its --help)
        importlib.import_module(command.module).add_arguments(parser)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The full parser; subcommand arguments are added for the command named in `argv`."""
    argv = list(argv)
    parser = argparse.ArgumentParser(
        prog="posenet",
        description="Head-pose estimation toolkit. Every subcommand has its own --help.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    data = sub.add_parser("data", help="make, convert, augment and inspect datasets",
                          description="make, convert, augment and inspect HDF5 datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    data_argv = argv[1:2] if argv[:1] == ["data"] else ()
    for command in DATA_COMMANDS:
        _add_command(data_sub, command, data_argv)
    top_argv = argv[:1] if argv else ()
    for command in COMMANDS:
        _add_command(sub, command, top_argv)
    return parser


class _QuietImport(importlib.abc.MetaPathFinder):
    """Loads TensorFlow with the process's stderr (file descriptor 2) silenced.

    TensorFlow 2.21 writes its oneDNN notice through absl before absl's logging is set up, so
    TF_CPP_MIN_LOG_LEVEL does not hold it back: four lines came before every one-line error.
    Python errors raised by the import still surface (they are exceptions, not stderr text).
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and never for the real finder's own lookups
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module
            spec.loader.exec_module = lambda module: _silenced(load, module)
        return spec


def _silenced(load, module) -> None:
    """Run `load(module)` with file descriptor 2 pointed at /dev/null."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            load(module)
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quiet_tensorflow() -> None:
    """No TensorFlow log lines: the C++ log level for later messages, a silent import for the notices
    printed while it loads (set before anything imports TensorFlow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_tensorflow()
    args = build_parser(argv).parse_args(argv)
    try:
        importlib.import_module(args._module).run(args)
    except PosenetError as error:
        print(f"posenet: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("posenet: interrupted; finished outputs are kept, partial ones removed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
