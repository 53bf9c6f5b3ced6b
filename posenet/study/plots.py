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

from posenet.core.fileio import atomic_output  # noqa: E402

YAW_BINS_DEG = (0, 15, 30, 45, 60, 75, 90)
CDF_MAX_DEG = 45.0
DPI = 90


def _save(figure: plt.Figure, path: Path) -> Path:
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return path


def learning_curves(histories: Mapping[str, Sequence[Mapping[str, str]]], path: Path) -> Path:
    """One panel per arm (train and validation loss, log scale) and a last panel with every
    arm's validation geodesic error, from the runs' history.csv rows."""
    panels = len(histories) + 1
    columns = min(panels, 4)
    rows = -(-panels // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False,
                                layout="constrained")
    for axis, (name, history) in zip(axes.flat, histories.items()):
        epochs = [int(row["epoch"]) + 1 for row in history]
        axis.plot(epochs, [float(row["loss"]) for row in history], "o-", ms=3, label="train")
        axis.plot(epochs, [float(row["val_loss"]) for row in history], "s--", ms=3, label="validation")
        axis.set_yscale("log")
        axis.set_title(f"{name} loss", fontsize=9)
        axis.set_xlabel("epoch", fontsize=8)
        axis.legend(fontsize=7)
    summary = axes.flat[len(histories)]
    for name, history in histories.items():
        if history and "val_geodesic_deg" in history[0]:
            summary.plot([int(row["epoch"]) + 1 for row in history],
                         [float(row["val_geodesic_deg"]) for row in history], "o-", ms=3, label=name)
    summary.set_title("validation geodesic error (deg)", fontsize=9)
    summary.set_xlabel("epoch", fontsize=8)
    summary.legend(fontsize=6)
    for axis in list(axes.flat)[panels:]:
        axis.axis("off")
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


def cumulative_error(errors: Mapping[str, Mapping[str, np.ndarray]], path: Path,
                     faces: str = "held-out test split") -> Path:
    """Share of samples with geodesic error <= x, per predictor; failures count as never reached."""
    figure, axis = plt.subplots(figsize=(7, 4))
    thresholds = np.linspace(0.0, CDF_MAX_DEG, 181)
    for name, values in errors.items():
        geodesic = np.where(np.isnan(values["geodesic"]), np.inf, values["geodesic"])
        axis.plot(thresholds, [(geodesic <= t).mean() for t in thresholds], label=name)
    axis.axvline(10.0, color="grey", lw=0.8, ls=":")
    axis.set_xlabel("geodesic error threshold (deg)")
    axis.set_ylabel("share of samples")
    axis.set_ylim(0, 1)
    axis.set_title(f"Cumulative error, {faces} (dotted: the acc@10 deg threshold)", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, ncol=2, loc="lower right")
    return _save(figure, path)
