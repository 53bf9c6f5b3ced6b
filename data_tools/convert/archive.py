"""Read a dataset archive (a .zip file or a folder) in place, never extracting it.

Converters see one flat list of member names (POSIX paths relative to the archive root)
and read members as bytes. Nothing is ever written next to the source, so no member
name can create a file anywhere: still, names that would escape the root (absolute
paths, drive letters, `..` components, links leading outside a folder) are rejected and
reported as unsafe, because they mark a broken or hostile archive.

A zip whose central directory is missing (a truncated download) cannot be listed at all:
that is one clear `PosenetError`. A member whose data is cut short or corrupt fails when
it is read: `MemberError`, a `Skip` that converters count as a skipped sample.

Limits, so that a small hostile archive cannot take the machine: a source that is not a
regular file or folder (a named pipe, /dev/zero) is refused; in a folder, entries that are not
regular files (pipes, devices, sockets) are never opened and are counted as skipped; a member
larger than `max_member_bytes` (declared or actually read) and an image whose header declares
more than `max_pixels` are skipped before they are read or decoded.
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
from posenet.core.h5format import decode_image, encode_image, image_size

MAX_MEMBER_MB = 64  # default member limit (the largest real member, a WIDER photo, is a few MB)
MAX_MEGAPIXELS = 40  # default image limit (40 MP decode to 120 MB; the datasets' images are under 2 MP)
IRREGULAR_REASON = "not a regular file (pipe, device or socket)"


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
    irregular: list[str] = field(default_factory=list)  # folder entries that are no regular file
    max_member_bytes: int = MAX_MEMBER_MB * 2**20
    max_pixels: int = MAX_MEGAPIXELS * 10**6

    def read(self, name: str) -> bytes:
        """The bytes of member `name`; `MemberError` when its data is unreadable, `Skip` when it
        is larger than `max_member_bytes` (its declared size, or what it really inflates to)."""
        limit = self.max_member_bytes
        try:
            if self._zip is not None:
                if self._zip.getinfo(name).file_size > limit:
                    raise Skip(self._too_large())
                with self._zip.open(name) as handle:
                    data = handle.read(limit + 1)  # a member whose header lies stops here
            else:
                path = self.path / name
                if not path.is_file():
                    raise Skip(IRREGULAR_REASON)
                if path.stat().st_size > limit:
                    raise Skip(self._too_large())
                with open(path, "rb") as handle:
                    data = handle.read(limit + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError):
            raise MemberError("unreadable member (corrupt or truncated data)") from None
        if len(data) > limit:
            raise Skip(self._too_large())
        return data

    def _too_large(self) -> str:
        return f"member larger than {self.max_member_bytes / 2**20:.3g} MB (--max-member-mb)"

    def check_image_size(self, data: bytes) -> None:
        """`Skip` when an image header declares more than `max_pixels`, before anything is decoded."""
        size = image_size(data)
        if size is not None and size[0] * size[1] > self.max_pixels:
            raise Skip(f"image larger than {self.max_pixels / 10**6:g} megapixels (--max-megapixels)")

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
    names, unsafe, irregular = [], [], []
    for directory, _, files in os.walk(path):
        for file in files:
            full = Path(directory) / file
            relative = full.relative_to(path).as_posix()
            if not full.resolve().is_relative_to(root):  # a link may point outside the folder
                unsafe.append(relative)
            elif not full.is_file():  # a named pipe would block the first read for ever
                irregular.append(relative)
            else:
                names.append(relative)
    return Archive(path, sorted(names), sorted(unsafe), irregular=sorted(irregular))


def open_archive(path: str | os.PathLike) -> Archive:
    """Open a folder or a .zip file for reading; one clear error when it is neither."""
    path = Path(path)
    if path.is_dir():
        return _folder_archive(path)
    if not path.exists():
        raise PosenetError(f"{path}: no such file or folder")
    if not path.is_file():  # /dev/zero or a named pipe: reading would never end
        raise PosenetError(f"{path}: not a regular file or folder (a pipe or device); give the .zip or its folder")
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
    archive.check_image_size(data)
    try:
        rgb = decode_image(data, source=name)
    except PosenetError:
        raise Skip("corrupt image") from None
    buffer = np.frombuffer(data, np.uint8) if data.startswith(JPEG_MAGIC) else encode_image(rgb)
    return rgb, buffer
