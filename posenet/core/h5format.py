"""The project's HDF5 dataset format, compatible with Opentrack's training files.

A file holds top-level datasets sharing the first dimension N, each tagged with an
attribute `category` (see DESIGN.md §3). Images are stored encoded (JPEG or PNG) as
variable-length uint8 buffers. Unknown extra datasets (e.g. Opentrack's `shapeparams`)
are kept as they are. Writers are atomic (temp name, rename); readers validate every
known field and fail with the file name and the offending field.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, NamedTuple

import cv2
import h5py
import numpy as np

from posenet.core.errors import PosenetError
from posenet.core.fileio import atomic_output


class FieldSpec(NamedTuple):
    tail_shape: tuple[int, ...]  # shape after the leading N
    dtype: str
    category: str | None


SCHEMA: dict[str, FieldSpec] = {
    "images": FieldSpec((), "vlen-uint8", "img"),
    "quats": FieldSpec((4,), "float32", "q"),
    "coords": FieldSpec((3,), "float32", "xys"),
    "rois": FieldSpec((4,), "float32", "roi"),
    "pt3d_68": FieldSpec((68, 3), "float32", "pts"),
    "pt2d_68": FieldSpec((68, 2), "float32", "pts"),
    "hasface": FieldSpec((), "bool", None),
    "camera": FieldSpec((4,), "float32", None),
}
IMAGE_STORAGE = "varsize_image_buffer"
FILE_ATTRS = ("source", "split", "created_by")
FINITE_FIELDS = ("quats", "coords", "rois", "pose_para")  # labels that must be finite numbers in every row
MIN_QUAT_NORM = 1e-6  # a quaternion shorter than this is no rotation (a zero label)
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError)
"""What h5py raises on damaged metadata (bad headers, heaps, attribute or link tables)."""


@dataclass
class Dataset:
    """An in-memory dataset: `fields[name]` is an array (N, ...) or, for images, a list of buffers."""

    fields: dict[str, object]
    attrs: dict[str, object] = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.fields["images"])

    def __contains__(self, name: str) -> bool:
        return name in self.fields

    def __getitem__(self, name: str):
        return self.fields[name]

    def image(self, index: int) -> np.ndarray:
        """Decoded RGB image of sample `index`."""
        return decode_image(self.fields["images"][index], source=f"{self.path}[{index}]")

    def subset(self, indices: Iterable[int]) -> "Dataset":
        """A new dataset with the samples at `indices` (in that order)."""
        indices = np.asarray(list(indices), dtype=np.int64)
        fields = {
            name: [values[i] for i in indices] if name == "images" else np.asarray(values)[indices]
            for name, values in self.fields.items()
        }
        return Dataset(fields, dict(self.attrs), self.path)


# --- images ------------------------------------------------------------------------------

def encode_image(rgb: np.ndarray, lossy: bool = True, quality: int = 90) -> np.ndarray:
    """RGB (or grey) uint8 image -> JPEG (lossy) or PNG buffer as a 1-D uint8 array."""
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    extension, params = (".jpg", [cv2.IMWRITE_JPEG_QUALITY, quality]) if lossy else (".png", [])
    ok, buffer = cv2.imencode(extension, image, params)
    if not ok:
        raise PosenetError(f"cannot encode image of shape {rgb.shape} as {extension}")
    return buffer.reshape(-1)


JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers (not DHT, JPG, DAC)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG or BMP header, without decoding; None for other data.

    Lets readers refuse a huge image (a 187 KB PNG can declare 8000 x 8000 pixels, 3 GB decoded)
    before the decoder allocates it.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"BM" and len(data) >= 26:
        return abs(int.from_bytes(data[18:22], "little", signed=True)), abs(int.from_bytes(data[22:26], "little",
                                                                                            signed=True))
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk the JPEG marker segments up to the first start-of-frame, which holds the size."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in JPEG_SOF:
            return int.from_bytes(data[at + 7:at + 9], "big"), int.from_bytes(data[at + 5:at + 7], "big")
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return None


def decode_image(buffer: np.ndarray | bytes, source: str = "image") -> np.ndarray:
    """Encoded buffer -> RGB uint8 (H, W, 3); one clear error when it is not an image."""
    data = np.frombuffer(buffer, dtype=np.uint8) if isinstance(buffer, bytes) else np.asarray(buffer, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise PosenetError(f"{source}: not a decodable JPEG/PNG image ({data.size} bytes)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


# --- writing ------------------------------------------------------------------------------

def _check_fields(fields: Mapping[str, object], source: str) -> int:
    """Validate shapes and equal lengths of in-memory fields; return N."""
    if "images" not in fields:
        raise PosenetError(f"{source}: field 'images' is missing")
    count = len(fields["images"])
    for name, values in fields.items():
        if len(values) != count:
            raise PosenetError(f"{source}: field '{name}' has {len(values)} rows, 'images' has {count}")
        spec = SCHEMA.get(name)
        if spec is None or name == "images":
            continue
        shape = np.shape(values)[1:]
        if tuple(shape) != spec.tail_shape:
            raise PosenetError(f"{source}: field '{name}' has shape (N, {shape}), expected (N, {spec.tail_shape})")
    return count


def label_problems(fields: Mapping[str, object]) -> list[tuple[str, int]]:
    """(problem, first bad row) for every label rule the rows break: non-finite `quats`,
    `coords`, `rois` or `pose_para`, a zero quaternion or an inverted/empty face box in a row
    with a face (`hasface`, when present, marks the rows without one; their labels are zeros).

    Such labels make NaN losses, scipy errors or empty crops far from where they came from,
    so readers and writers refuse them here, once.
    """
    problems = []
    for name in FINITE_FIELDS:
        if name in fields:
            bad = ~np.isfinite(np.asarray(fields[name], np.float64)).reshape(len(fields[name]), -1).all(axis=1)
            if bad.any():
                problems.append((f"field '{name}' holds a non-finite value", int(np.argmax(bad))))
    face = np.asarray(fields["hasface"], bool) if "hasface" in fields else None
    with np.errstate(invalid="ignore"):
        if "quats" in fields:
            short = np.linalg.norm(np.asarray(fields["quats"], np.float64), axis=1) < MIN_QUAT_NORM
            _add_face_problem(problems, "field 'quats' holds a zero quaternion", short, face)
        if "rois" in fields:
            rois = np.asarray(fields["rois"], np.float64)
            inverted = (rois[:, 2] <= rois[:, 0]) | (rois[:, 3] <= rois[:, 1])
            _add_face_problem(problems, "field 'rois' holds an inverted or empty face box (x1 <= x0 or y1 <= y0)",
                              inverted, face)
    return problems


def _add_face_problem(problems: list[tuple[str, int]], problem: str, bad: np.ndarray, face: np.ndarray | None) -> None:
    """Record `problem` at the first `bad` row that has a face."""
    if face is not None:
        bad = bad & face
    if bad.any():
        problems.append((problem, int(np.argmax(bad))))


def check_labels(path: str | os.PathLike, fields: Mapping[str, object]) -> None:
    """One line naming the file, the field and the first sample when a label rule is broken."""
    problems = label_problems(fields)
    if problems:
        problem, row = problems[0]
        raise PosenetError(f"{path}: {problem} (sample {row}); fix or drop that sample")


def write_dataset(path: str | os.PathLike, fields: Mapping[str, object],
                  attrs: Mapping[str, object] | None = None, lossy: bool = True) -> Path:
    """Write `fields` (images as encoded buffers) to `path` atomically; returns the path."""
    count = _check_fields(fields, str(path))
    check_labels(path, fields)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as out:
            for key, value in (attrs or {}).items():
                out.attrs[key] = value
            images = out.create_dataset("images", (count,), dtype=h5py.vlen_dtype(np.uint8))
            for i, buffer in enumerate(fields["images"]):
                images[i] = np.asarray(buffer, dtype=np.uint8).reshape(-1)
            images.attrs["category"] = "img"
            images.attrs["storage"] = IMAGE_STORAGE
            images.attrs["lossy"] = lossy
            for name, values in fields.items():
                if name == "images":
                    continue
                spec = SCHEMA.get(name)
                dtype = spec.dtype if spec else np.asarray(values).dtype
                dataset = out.create_dataset(name, data=np.asarray(values, dtype=dtype))
                if spec and spec.category:
                    dataset.attrs["category"] = spec.category
    return Path(path)


# --- reading -----------------------------------------------------------------------------

@contextlib.contextmanager
def open_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """The file opened for reading; any h5py failure inside the block (truncated file, damaged
    metadata) becomes one line naming the file. PosenetErrors raised in the block pass unchanged."""
    path = Path(path)
    if not path.exists():
        raise PosenetError(f"{path}: no such dataset file")
    if not path.is_file():
        raise PosenetError(f"{path}: not a regular file")
    try:
        with h5py.File(path, "r") as h5:
            yield h5
    except PosenetError:
        raise
    except H5_ERRORS as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise PosenetError(f"{path}: not a readable HDF5 file (truncated, damaged or wrong format: {reason})") from None


def _images(path: Path, h5: h5py.File) -> h5py.Dataset:
    """The `images` dataset, checked to be one (not a group, not a scalar)."""
    if "images" not in h5:
        raise PosenetError(f"{path}: field 'images' is missing (not a posenet/Opentrack dataset)")
    images = h5["images"]
    if not isinstance(images, h5py.Dataset) or images.ndim != 1:
        raise PosenetError(f"{path}: 'images' is not a 1-D dataset (a group or a scalar; not a posenet dataset)")
    return images


def _check_stored(path: Path, name: str, dataset: h5py.Dataset, count: int) -> None:
    """Check one stored dataset against the schema; raise naming the file and field."""
    if not isinstance(dataset, h5py.Dataset):
        raise PosenetError(f"{path}: '{name}' is a group, expected a dataset")
    if dataset.shape[:1] != (count,):
        rows = dataset.shape[0] if dataset.ndim else "no"
        raise PosenetError(f"{path}: field '{name}' has {rows} rows, 'images' has {count}")
    spec = SCHEMA.get(name)
    if spec is None:
        return
    if name == "images":
        if dataset.ndim != 1 or dataset.dtype.kind != "O":
            raise PosenetError(f"{path}: field 'images' must be a 1-D variable-length uint8 dataset")
    elif dataset.shape[1:] != spec.tail_shape:
        raise PosenetError(f"{path}: field '{name}' has shape {dataset.shape}, expected (N, {spec.tail_shape})")
    category = dataset.attrs.get("category")
    if spec.category and category is not None and category != spec.category:
        raise PosenetError(f"{path}: field '{name}' has category '{category}', expected '{spec.category}'")


def read_dataset(path: str | os.PathLike, names: Iterable[str] | None = None) -> Dataset:
    """Read and validate a dataset file (all fields, or only `names` plus images)."""
    path = Path(path)
    with open_h5(path) as h5:
        count = _images(path, h5).shape[0]
        wanted = set(h5.keys()) if names is None else {"images", *names}
        fields: dict[str, object] = {}
        name = "images"
        try:
            for name in h5.keys():
                _check_stored(path, name, h5[name], count)
                if name not in wanted:
                    continue
                if name == "images":
                    fields[name] = [np.asarray(buffer, dtype=np.uint8) for buffer in h5[name][:]]
                else:
                    fields[name] = h5[name][:]
        except H5_ERRORS as error:
            raise PosenetError(f"{path}: field '{name}' cannot be read (truncated file? {error})") from None
        missing = sorted(set(wanted) - set(fields))
        if names is not None and missing:
            raise PosenetError(f"{path}: field '{missing[0]}' is missing")
        attrs = {key: _plain(value) for key, value in h5.attrs.items()}
        face = {"hasface": h5["hasface"][:]} if "hasface" in h5 and "hasface" not in fields else {}
    check_labels(path, {**fields, **face})  # rows without a face may hold zero labels
    return Dataset(fields, attrs, path)


def _plain(value: object) -> object:
    """HDF5 attribute -> plain Python value (str, number, list)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def validate(path: str | os.PathLike) -> Dataset:
    """Read every field and decode the first image; raise one clear error on any problem."""
    dataset = read_dataset(path)
    if len(dataset):
        dataset.image(0)
    return dataset
