"""`posenet data info`: what a dataset file holds, and how its poses and face sizes spread.

Prints the sample count, the file attributes, every field with its shape and dtype,
and text histograms of yaw, pitch and roll (degrees, AFLW convention via
geometry.ypr_deg) and of the face size (`coords` size, or the box height without it).
Frames without a face (`hasface` false) are counted and left out of the histograms.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from data_tools.h5format import Dataset, read_dataset
from posenet.geometry import ypr_deg

BAR_WIDTH = 40
ANGLE_EDGES = {"yaw": np.arange(-180, 181, 15), "pitch": np.arange(-90, 91, 15), "roll": np.arange(-180, 181, 15)}
SIZE_BINS = 10


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


def _field_line(dataset: Dataset, name: str) -> str:
    values = dataset[name]
    if name == "images":
        sizes = np.array([len(buffer) for buffer in values])
        return f"  images   {len(values)} encoded buffers, {sizes.sum() / 2**20:.1f} MiB, mean {sizes.mean() / 1024:.1f} KiB"
    return f"  {name:<8} {str(values.shape):<14} {values.dtype}"


def describe(dataset: Dataset) -> list[str]:
    """The report as lines of text."""
    count = len(dataset)
    with_face = np.asarray(dataset["hasface"], bool) if "hasface" in dataset else np.ones(count, bool)
    lines = [f"{dataset.path}: {count} samples, {with_face.sum()} with a face"]
    lines += [f"  attr {key} = {value}" for key, value in sorted(dataset.attrs.items())]
    lines += ["fields:"] + [_field_line(dataset, name) for name in dataset.fields]
    if "quats" in dataset and with_face.any():
        angles = ypr_deg(np.asarray(dataset["quats"], np.float64)[with_face])
        for k, name in enumerate(("yaw", "pitch", "roll")):
            values = angles[:, k]
            lines.append(f"{name} (deg): mean {values.mean():+.1f}, std {values.std():.1f}, "
                         f"range [{values.min():+.1f}, {values.max():+.1f}]")
            lines += text_histogram(values, ANGLE_EDGES[name])
    sizes = _face_sizes(dataset, with_face)
    if sizes is not None and sizes.size:
        lines.append(f"face size (px): mean {sizes.mean():.1f}, range [{sizes.min():.1f}, {sizes.max():.1f}]")
        lines += text_histogram(sizes, np.linspace(sizes.min(), sizes.max() + 1e-6, SIZE_BINS + 1))
    return lines


def _face_sizes(dataset: Dataset, with_face: np.ndarray) -> np.ndarray | None:
    """`coords` size (projected 100 mm), else the roi height, of the samples with a face."""
    if "coords" in dataset:
        return np.asarray(dataset["coords"], np.float64)[with_face, 2]
    if "rois" in dataset:
        rois = np.asarray(dataset["rois"], np.float64)[with_face]
        return rois[:, 3] - rois[:, 1]
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="dataset (HDF5)")


def run(args: argparse.Namespace) -> None:
    print("\n".join(describe(read_dataset(args.file))))
