"""Benchmark: do rendered faces lay out their 68 landmarks as real faces do at the same pose?

A one-minute companion of the sim-to-real proxy (DESIGN.md §9). It fits a linear read-out from
the landmarks to yaw, pitch and roll on rendered faces only (ridge regression; the landmarks
normalised by the proxy's crop rule: centred on their box, divided by CROP_MARGIN x its longer
side), then applies it to the real file's labelled landmarks. Where the renderer draws a face
whose layout differs from a real one at the same label (a misplaced feature, or a camera that
sees the face from another direction than its label says), the read-out is biased on real
faces. Session 6 found both of renderer v3's changes with it, and the proxy's pitch bias
followed it: it predicts the direction of a renderer change in seconds, not the proxy's
quarter of an hour. It reads pixels not at all, so it cannot judge texture, shading or hair.

Near-frontal faces only (|yaw| and |pitch| below NEAR_FRONTAL_DEG), where the read-out is
close to linear. The real file measures only; nothing is fitted to it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from posenet.benchmarks.sim2real import CROP_MARGIN, NEAR_FRONTAL_DEG, REAL_DEV, near_frontal, read_real
from posenet.core import geometry

RIDGE = 1e-3
AXES = ("yaw", "pitch", "roll")
QUICK_FACES, FULL_FACES = 1500, 6000
SEED = 1000


def normalised_layout(points: np.ndarray) -> np.ndarray:
    """(N, 68, 2) landmarks -> (N, 136): centred on their box, in units of the crop side."""
    low, high = points.min(axis=1), points.max(axis=1)
    side = CROP_MARGIN * np.max(high - low, axis=1)
    return ((points - (low + high)[:, None] / 2.0) / side[:, None, None]).reshape(len(points), -1)


def fit_readout(layouts: np.ndarray, angles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge regression layout -> (yaw, pitch, roll): (feature mean, weights, angle mean)."""
    feature_mean, angle_mean = layouts.mean(axis=0), angles.mean(axis=0)
    centred = layouts - feature_mean
    gram = centred.T @ centred + RIDGE * np.eye(centred.shape[1])
    return feature_mean, np.linalg.solve(gram, centred.T @ (angles - angle_mean)), angle_mean


def read_out(model: tuple[np.ndarray, np.ndarray, np.ndarray], layouts: np.ndarray) -> np.ndarray:
    feature_mean, weights, angle_mean = model
    return (layouts - feature_mean) @ weights + angle_mean


def real_layouts(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(layouts, AFLW angles in degrees) of a real file's near-frontal faces."""
    why = "the layout check needs poses and 68 landmarks"
    dataset = read_real(path, {"quats": why, "pt3d_68": why})
    angles = geometry.ypr_deg(np.asarray(dataset["quats"], np.float64))
    keep = near_frontal(angles)
    return normalised_layout(np.asarray(dataset["pt3d_68"], np.float64)[keep, :, :2]), angles[keep]


def measure(real: str | Path = REAL_DEV, faces: int = FULL_FACES, synth_config=None) -> dict:
    """Fit on `faces` rendered faces, read out the real ones: bias and MAE per axis (degrees)."""
    from data_tools import synth

    start = time.perf_counter()
    real_x, real_angles = real_layouts(real)  # first: a bad file fails before the slow part
    fields = synth.synthesize(synth_config or synth.SynthConfig(), faces, SEED,
                              workers=max(1, min(2, os.cpu_count() or 1)), progress=True)
    angles = geometry.ypr_deg(np.asarray(fields["quats"], np.float64))
    keep = near_frontal(angles)
    layouts = normalised_layout(np.asarray(fields["pt2d_68"], np.float64)[keep])
    model = fit_readout(layouts, angles[keep])
    synth_error = read_out(model, layouts) - angles[keep]
    real_error = read_out(model, real_x) - real_angles
    result = {"n_real": int(len(real_x)), "n_synth": int(keep.sum()),
              "synth_fit_mae": float(np.abs(synth_error).mean())}
    for i, axis in enumerate(AXES):
        result[f"bias_{axis}"] = float(real_error[:, i].mean())
        result[f"mae_{axis}"] = float(np.abs(real_error[:, i]).mean())
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def summary_line(result: dict) -> str:
    return (f"sim2real layout: linear read-out from rendered landmarks, on {result['n_real']} near-frontal real "
            f"faces: bias {result['bias_yaw']:+.2f}/{result['bias_pitch']:+.2f}/{result['bias_roll']:+.2f} deg "
            f"(yaw/pitch/roll), MAE {result['mae_yaw']:.2f}/{result['mae_pitch']:.2f}/{result['mae_roll']:.2f}; "
            f"fit on {result['n_synth']} rendered faces {result['synth_fit_mae']:.2f}; {result['seconds']:.0f} s")


def benchmark(quick: bool, real: str | Path | None = None) -> list[str]:
    """The landmark-layout check on the current renderer: one line printed, Markdown for the report."""
    result = measure(real or REAL_DEV, faces=QUICK_FACES if quick else FULL_FACES)
    print(summary_line(result))
    return [f"A linear read-out from the 68 landmarks (normalised by the proxy's crop rule) to yaw, pitch and "
            f"roll, fitted on {QUICK_FACES if quick else FULL_FACES} rendered faces (seed {SEED}) and applied to "
            f"the labelled landmarks of `{Path(real or REAL_DEV).name}`; near-frontal faces (|yaw|, |pitch| < "
            f"{NEAR_FRONTAL_DEG:g}). A bias means rendered faces lay out their features otherwise than real "
            "faces at the same label.", "",
            "| renderer | n real | bias yaw | bias pitch | bias roll | MAE yaw | MAE pitch | MAE roll | fit on rendered |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| current defaults | {result['n_real']} | {result['bias_yaw']:+.2f} | {result['bias_pitch']:+.2f} "
            f"| {result['bias_roll']:+.2f} | {result['mae_yaw']:.2f} | {result['mae_pitch']:.2f} "
            f"| {result['mae_roll']:.2f} | {result['synth_fit_mae']:.2f} |"]
