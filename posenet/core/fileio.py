"""Atomic file output: nothing half-written is ever left under the final name."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from posenet.core.errors import PosenetError


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, with one line, when `path` cannot be created."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise PosenetError(f"{path}: is a directory, expected a file path")
    if not parent.is_dir():
        raise PosenetError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise PosenetError(f"{path}: directory {parent} is not writable")
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; rename it onto `path` only on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and an existing file at `path` is left untouched.
    """
    path = check_writable(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def staged_outputs(directory: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden folder inside `directory`; its files replace their namesakes in
    `directory` only once the block finishes, so files that belong together (a report, its
    table and its plots) are never left half old, half new.

    On any exception the folder is removed and `directory` is left untouched.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staged-", dir=directory))
    try:
        yield staging
        for path in sorted(staging.iterdir()):
            os.replace(path, directory / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
