"""Atomic file output: nothing half-written is ever left under the final name.

Outputs create their folder: `atomic_output` makes the missing parent folders of the path it
writes (never of an input), so `--out work/data/x.h5` works in a fresh clone. Folders it made
are removed again when the write fails and they are still empty.

A writer killed outright (SIGKILL, power loss) cannot remove its temporary file. Each one is
named after the output, the writer's process id and host (`.OUT.PID@HOST.XXXXXXXX.tmp`), so
the next writer of the same output removes those whose process is gone, and says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from posenet.core.errors import PosenetError


def _nearest_existing(directory: Path) -> Path:
    """`directory` itself if it exists, else its closest existing ancestor."""
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    return directory


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content (hex), read in 1 MiB blocks: the key of caches derived from it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (resolved paths, or one inode through links)."""
    if a.resolve() == b.resolve():
        return True
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return False


def check_writable(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Fail early, with one line, when `path` cannot be created or is one of the command's `inputs`
    (writing there would replace what is being read).

    A missing parent folder is fine (`atomic_output` creates it) as long as the closest folder
    that exists is writable; nothing is created here, so a check before slow work leaves no trace.
    """
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise PosenetError(f"{path}: is also an input of this command; choose another output path")
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise PosenetError(f"{path}: is a directory, expected a file path")
    base = _nearest_existing(parent)
    if not base.is_dir():
        raise PosenetError(f"{path}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise PosenetError(f"{path}: directory {base} is not writable")
    _probe(path, base)
    return path


def _probe(path: Path, base: Path) -> None:
    """Create and remove one file in `base`: the only sure test that a file can be made there
    (os.access says yes for root, and for /proc or a read-only mount)."""
    try:
        handle, name = tempfile.mkstemp(prefix=".posenet-probe-", dir=base)
    except OSError as error:
        raise PosenetError(f"{path}: cannot create a file in {base} ({error.strerror})") from None
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(name)


def _make_parents(path: Path) -> list[Path]:
    """Create the missing folders above `path`; return those this call made, outermost first."""
    missing = []
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        missing.append(directory)
        directory = directory.parent
    made = []
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except FileExistsError:
            if not directory.is_dir():
                raise PosenetError(f"{path}: {directory} is not a directory") from None
            continue  # made meanwhile by someone else: not ours to remove
        except OSError as error:
            raise PosenetError(f"{path}: cannot create directory {directory} ({error.strerror})") from None
        made.append(directory)
    return made


def _writer_tag() -> str:
    """This writer's part of a temporary name: `PID@HOST`."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
    return f"{os.getpid()}@{host}"


def _alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (one that is not ours counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _dead_writers(folder: Path, prefix: str, suffix: str) -> Iterator[tuple[Path, str]]:
    """(entry, pid) of the entries of `folder` named `prefix PID@HOST suffix` by a process of this
    host that is gone (`suffix` a regular expression)."""
    host = _writer_tag().split("@", 1)[1]
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)@{re.escape(host)}{suffix}")
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            match = pattern.match(entry.name)
            if match and not _alive(int(match.group(1))):
                yield entry, match.group(1)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of earlier writers of `path` on this host whose process is gone
    (killed before they could clean up); print one note per file; return them."""
    path = Path(path)
    removed = []
    for sibling, pid in _dead_writers(path.parent, f".{path.name}.", r"\.[^.]+\.tmp$"):
        if sibling.is_file():
            with contextlib.suppress(OSError):
                sibling.unlink()
                removed.append(sibling)
                print(f"posenet: note: removed {sibling}, a temporary file left by an interrupted writer "
                      f"(process {pid})", file=sys.stderr)
    return removed


def _unique_sibling(path: Path) -> Path:
    """A new empty file beside `path` (hidden, ending in .tmp): two writers of the same output
    never share a temporary name, so neither can delete or corrupt the other's."""
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.{_writer_tag()}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise PosenetError(f"{path}: cannot create a temporary file beside it ({error.strerror})") from None
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes it private; the output gets the usual mode
    return Path(name)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temporary sibling of `path`; rename it onto `path` only on success.

    Missing parent folders of `path` are created first. On any exception (including
    KeyboardInterrupt) the temporary file is removed, an existing file at `path` is left
    untouched, and the folders made for it are removed again if still empty.
    """
    path = check_writable(path)
    made = _make_parents(path)
    remove_stale_temporaries(path)
    tmp = _unique_sibling(path)
    finished = False
    try:
        yield tmp
        os.replace(tmp, path)
        finished = True
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if not finished:
            for directory in reversed(made):
                with contextlib.suppress(OSError):  # not empty (someone else's file) or gone: leave it
                    directory.rmdir()


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


TEMP_PREFIX = "posenet-"


@contextlib.contextmanager
def private_tempdir(purpose: str) -> Iterator[Path]:
    """Point `tempfile` at a fresh folder of this process for the block, then remove it.

    Libraries that leave files in the system temporary folder (TensorFlow's autograph writes
    one `__autograph_generated_file*.py` per converted function and only removes them at
    interpreter exit) leave nothing behind. Folders of earlier processes that are gone
    (killed) are removed on entry.
    """
    system = Path(tempfile.gettempdir())
    _remove_dead_tempdirs(system, purpose)
    private = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{purpose}-{_writer_tag()}-", dir=system))
    previous = tempfile.tempdir
    tempfile.tempdir = str(private)
    try:
        yield private
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(private, ignore_errors=True)


def _remove_dead_tempdirs(system: Path, purpose: str) -> None:
    """Remove `private_tempdir` folders of `purpose` whose process on this host is gone."""
    for folder, _ in _dead_writers(system, f"{TEMP_PREFIX}{purpose}-", "-"):
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
