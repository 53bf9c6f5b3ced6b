"""`posenet data info`: what a dataset file holds, and how its poses and face sizes spread.

Prints the sample count, the file attributes, every field with its shape and dtype,
and text histograms of yaw, pitch and roll (degrees, AFLW convention via
geometry.ypr_deg) and of the face size (`coords` size, or the box height without it).
Frames without a face (`hasface` false) are counted and left out of the histograms.
Image buffers are never loaded, so a file of any size is summarised at once.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import h5py
import numpy as np

from posenet.core.errors import PosenetError
from posenet.core.geometry import ypr_deg
from posenet.core.h5format import SCHEMA, check_labels, open_h5

BAR_WIDTH = 40
ANGLE_EDGES = {"yaw": np.arange(-180, 181, 15), "pitch": np.arange(-90, 91, 15), "roll": np.arange(-180, 181, 15)}
SIZE_BINS = 10
LABEL_FIELDS = ("quats", "coords", "rois", "hasface")  # the only arrays read into memory


def text_histogram(values: np.ndarray, edges: np.ndarray, unit: str = "") -> list[str]:
    """One line per non-empty stretch of bins: range, count and a bar of '#'."""
    counts, edges = np.histogram(values, bins=edges)
    used = np.flatnonzero(counts)
    if not used.size:
        return ["  (no values)"]
    peak = counts.max()
    lines = []
    for k in range(used[0], used[-1] + 1):
        bar = "#" * int(round(BAR_WIDTH * counts[k] / peak))
        lines.append(f"  [{edges[k]:7.1f}, {edges[k + 1]:7.1f}){unit} {counts[k]:7d} {bar}")
    return lines


class Summary:
    """What `describe` needs from a file: shapes and dtypes of every field, the attributes,
    and the label arrays (never the images)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open_h5(path) as h5:  # damaged metadata is one line, not an h5py traceback
            if "images" not in h5 or not isinstance(h5["images"], h5py.Dataset):
                raise PosenetError(f"{path}: field 'images' is missing or not a dataset (not a posenet/Opentrack "
                                   "dataset)")
            self.count = h5["images"].shape[0]
            self.fields = {name: (item.shape, item.dtype) for name, item in h5.items()
                           if isinstance(item, h5py.Dataset)}
            self.attrs = {key: value.decode(errors="replace") if isinstance(value, bytes) else value
                          for key, value in h5.attrs.items()}
            self.labels = {name: h5[name][:] for name in LABEL_FIELDS if name in self.fields}
        for name, values in self.labels.items():
            expected = (self.count, *SCHEMA[name].tail_shape)
            if values.shape != expected:
                raise PosenetError(f"{path}: field '{name}' has shape {values.shape}, expected {expected}")
        check_labels(path, self.labels)  # NaN or zero quaternions, NaN or inverted boxes


def describe(summary: Summary) -> list[str]:
    """The report as lines of text."""
    labels = summary.labels
    with_face = labels["hasface"].astype(bool) if "hasface" in labels else np.ones(summary.count, bool)
    size_mib = os.path.getsize(summary.path) / 2**20
    lines = [f"{summary.path}: {summary.count} samples, {with_face.sum()} with a face, {size_mib:.1f} MiB"]
    lines += [f"  attr {key} = {value}" for key, value in sorted(summary.attrs.items())]
    lines += ["fields:"] + [f"  {name:<8} {str(shape):<14} {'encoded images' if name == 'images' else dtype}"
                            for name, (shape, dtype) in summary.fields.items()]
    if "quats" in labels and with_face.any():
        angles = ypr_deg(labels["quats"].astype(np.float64)[with_face])
        for k, name in enumerate(("yaw", "pitch", "roll")):
            values = angles[:, k]
            lines.append(f"{name} (deg): mean {values.mean():+.1f}, std {values.std():.1f}, "
                         f"range [{values.min():+.1f}, {values.max():+.1f}]")
            lines += text_histogram(values, ANGLE_EDGES[name])
    sizes = _face_sizes(labels, with_face)
    if sizes is not None and sizes.size:
        lines.append(f"face size (px): mean {sizes.mean():.1f}, range [{sizes.min():.1f}, {sizes.max():.1f}]")
        lines += text_histogram(sizes, np.linspace(sizes.min(), sizes.max() + 1e-6, SIZE_BINS + 1))
    return lines


def _face_sizes(labels: dict[str, np.ndarray], with_face: np.ndarray) -> np.ndarray | None:
    """`coords` size (projected 100 mm), else the roi height, of the samples with a face."""
    if "coords" in labels:
        return labels["coords"].astype(np.float64)[with_face, 2]
    if "rois" in labels:
        rois = labels["rois"].astype(np.float64)[with_face]
        return rois[:, 3] - rois[:, 1]
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="dataset (HDF5)")


def run(args: argparse.Namespace) -> None:
    print("\n".join(describe(Summary(args.file))))
