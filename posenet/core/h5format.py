"""The project's HDF5 dataset format, compatible with Opentrack's training files.

A file holds top-level datasets sharing the first dimension N, each tagged with an
attribute `category` (see DESIGN.md §3). Images are stored encoded (JPEG or PNG) as
variable-length uint8 buffers. Unknown extra datasets (e.g. Opentrack's `shapeparams`)
are kept as they are. Writers are atomic (temp name, rename); readers validate every
known field and fail with the file name and the offending field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, NamedTuple

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


def write_dataset(path: str | os.PathLike, fields: Mapping[str, object],
                  attrs: Mapping[str, object] | None = None, lossy: bool = True) -> Path:
    """Write `fields` (images as encoded buffers) to `path` atomically; returns the path."""
    count = _check_fields(fields, str(path))
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

def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise PosenetError(f"{path}: no such dataset file")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise PosenetError(f"{path}: not a readable HDF5 file (truncated or wrong format: {error})") from None


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
    with _open(path) as h5:
        if "images" not in h5:
            raise PosenetError(f"{path}: field 'images' is missing (not a posenet/Opentrack dataset)")
        count = h5["images"].shape[0] if h5["images"].ndim else -1
        wanted = set(h5.keys()) if names is None else {"images", *names}
        fields: dict[str, object] = {}
        try:
            for name in h5.keys():
                _check_stored(path, name, h5[name], count)
                if name not in wanted:
                    continue
                if name == "images":
                    fields[name] = [np.asarray(buffer, dtype=np.uint8) for buffer in h5[name][:]]
                else:
                    fields[name] = h5[name][:]
        except (OSError, ValueError, KeyError) as error:
            raise PosenetError(f"{path}: field '{name}' cannot be read (truncated file? {error})") from None
        missing = sorted(set(wanted) - set(fields))
        if names is not None and missing:
            raise PosenetError(f"{path}: field '{missing[0]}' is missing")
        attrs = {key: _plain(value) for key, value in h5.attrs.items()}
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
