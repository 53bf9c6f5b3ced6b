"""The study's figures (matplotlib, Agg backend, small PNGs written atomically).

- learning curves per arm: train and validation loss, and validation geodesic error, per epoch;
- mean geodesic error against |yaw| bins, one line per predictor;
- cumulative error distribution: share of samples under each geodesic error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from posenet.fileio import atomic_output  # noqa: E402

YAW_BINS_DEG = (0, 15, 30, 45, 60, 75, 90)
CDF_MAX_DEG = 45.0
DPI = 90


def _save(figure: plt.Figure, path: Path) -> Path:
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return path


def learning_curves(histories: Mapping[str, Sequence[Mapping[str, str]]], path: Path) -> Path:
    """One panel per arm from its history.csv rows: loss and val_loss (left), val geodesic (right)."""
    count = max(len(histories), 1)
    columns = min(count, 3)
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for axis, (name, history) in zip(axes.flat, histories.items()):
        epochs = [int(row["epoch"]) + 1 for row in history]
        axis.plot(epochs, [float(row["loss"]) for row in history], "o-", ms=3, label="train loss")
        axis.plot(epochs, [float(row["val_loss"]) for row in history], "s-", ms=3, label="val loss")
        axis.set_yscale("log")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("epoch")
        if "val_geodesic_deg" in (history[0] if history else {}):
            twin = axis.twinx()
            twin.plot(epochs, [float(row["val_geodesic_deg"]) for row in history], "^--", ms=3, color="tab:green",
                      label="val geodesic (deg)")
            twin.set_ylabel("val geodesic error (deg)", fontsize=8)
        axis.legend(fontsize=7, loc="upper right")
    for axis in list(axes.flat)[len(histories):]:
        axis.axis("off")
    figure.suptitle("Learning curves (loss: log scale; green: validation geodesic error)")
    return _save(figure, path)


def error_vs_yaw(errors: Mapping[str, Mapping[str, np.ndarray]], path: Path) -> Path:
    """Mean geodesic error per |true yaw| bin for each predictor (per_sample_errors dicts)."""
    figure, axis = plt.subplots(figsize=(7, 4))
    edges = np.asarray(YAW_BINS_DEG, dtype=float)
    centres = (edges[:-1] + edges[1:]) / 2
    for name, values in errors.items():
        yaw, geodesic = np.abs(values["yaw_true"]), values["geodesic"]
        bins = np.clip(np.digitize(yaw, edges) - 1, 0, len(centres) - 1)
        means = [np.nanmean(geodesic[bins == b]) if np.any(~np.isnan(geodesic[bins == b])) else np.nan
                 for b in range(len(centres))]
        axis.plot(centres, means, "o-", ms=4, label=name)
    axis.set_xticks(edges)
    axis.set_xlabel("|true yaw| (deg), bins")
    axis.set_ylabel("mean geodesic error (deg)")
    axis.set_title("Error against head yaw (held-out test split)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    return _save(figure, path)


def cumulative_error(errors: Mapping[str, Mapping[str, np.ndarray]], path: Path) -> Path:
    """Share of samples with geodesic error <= x, per predictor; failures count as never reached."""
    figure, axis = plt.subplots(figsize=(7, 4))
    thresholds = np.linspace(0.0, CDF_MAX_DEG, 181)
    for name, values in errors.items():
        geodesic = np.where(np.isnan(values["geodesic"]), np.inf, values["geodesic"])
        axis.plot(thresholds, [(geodesic <= t).mean() for t in thresholds], label=name)
    axis.axvline(10.0, color="grey", lw=0.8, ls=":")
    axis.set_xlabel("geodesic error threshold (deg)")
    axis.set_ylabel("share of test samples")
    axis.set_ylim(0, 1)
    axis.set_title("Cumulative error distribution (dotted: the acc@10 deg threshold)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    return _save(figure, path)
