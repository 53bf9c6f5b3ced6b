"""Read a dataset archive (a .zip file or a folder) in place, never extracting it.

Converters see one flat list of member names (POSIX paths relative to the archive root)
and read members as bytes. Nothing is ever written next to the source, so no member
name can create a file anywhere: still, names that would escape the root (absolute
paths, drive letters, `..` components, links leading outside a folder) are rejected and
reported as unsafe, because they mark a broken or hostile archive.

A zip whose central directory is missing (a truncated download) cannot be listed at all:
that is one clear `PosenetError`. A member whose data is cut short or corrupt fails when
it is read: `MemberError`, a `Skip` that converters count as a skipped sample.
"""

from __future__ import annotations

import os
import posixpath
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from posenet.core.errors import PosenetError
from posenet.core.h5format import decode_image, encode_image


class Skip(Exception):
    """One source item cannot be converted; the message is the reason counted in the summary."""


class MemberError(Skip):
    """One member cannot be read (corrupt or truncated data)."""


def is_safe_name(name: str) -> bool:
    """True when `name` stays inside the archive root: relative, no `..`, no drive letter."""
    name = name.replace("\\", "/")
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return False
    return ".." not in PurePosixPath(name).parts


@dataclass
class Archive:
    """The members of a zip file or a folder, readable as bytes."""

    path: Path
    names: list[str]
    unsafe: list[str] = field(default_factory=list)
    _zip: zipfile.ZipFile | None = None

    def read(self, name: str) -> bytes:
        """The bytes of member `name`; `MemberError` when its data is unreadable."""
        try:
            if self._zip is not None:
                return self._zip.read(name)
            return (self.path / name).read_bytes()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError):
            raise MemberError("unreadable member (corrupt or truncated data)") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _zip_archive(path: Path) -> Archive:
    try:
        handle = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise PosenetError(f"{path}: not a readable zip archive (truncated download? {error})") from None
    names, unsafe = [], []
    for info in handle.infolist():
        if info.is_dir():
            continue
        (names if is_safe_name(info.filename) else unsafe).append(info.filename)
    return Archive(path, sorted(names), unsafe, handle)


def _folder_archive(path: Path) -> Archive:
    root = path.resolve()
    names, unsafe = [], []
    for directory, _, files in os.walk(path):
        for file in files:
            full = Path(directory) / file
            relative = full.relative_to(path).as_posix()
            inside = full.resolve().is_relative_to(root)  # a link may point outside the folder
            (names if inside else unsafe).append(relative)
    return Archive(path, sorted(names), sorted(unsafe))


def open_archive(path: str | os.PathLike) -> Archive:
    """Open a folder or a .zip file for reading; one clear error when it is neither."""
    path = Path(path)
    if path.is_dir():
        return _folder_archive(path)
    if not path.exists():
        raise PosenetError(f"{path}: no such file or folder")
    return _zip_archive(path)


def stem(name: str) -> str:
    """Member name without its extension: `a/b/image00002.jpg` -> `a/b/image00002`."""
    return posixpath.splitext(name)[0]


JPEG_MAGIC = b"\xff\xd8\xff"


def read_image(archive: Archive, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Member `name` as (decoded RGB image, buffer to store); `Skip` when it is no image.

    JPEG members are stored byte for byte (no second lossy pass); anything else
    (PNG frames, BMP) is re-encoded as JPEG by `h5format.encode_image`.
    """
    data = archive.read(name)
    try:
        rgb = decode_image(data, source=name)
    except PosenetError:
        raise Skip("corrupt image") from None
    buffer = np.frombuffer(data, np.uint8) if data.startswith(JPEG_MAGIC) else encode_image(rgb)
    return rgb, buffer
