"""Scoring pose predictions: per-sample errors, the summary every report uses, and the files.

TF-free (numpy and geometry only), so the tracker runtime, the baselines and the study all
score the same way. A predictor is any object with a `.name` and `.predict(dataset) -> (N, 4)`
quaternions (x, y, z, w); a row of NaN is a failure (no face found, no pose): failures are
counted and left out of the means.

The summary has the keys SUMMARY_KEYS: n, failures, mae_yaw, mae_pitch, mae_roll, mae (their
mean: the literature's "MAE"), geodesic_mean, geodesic_median (degrees), acc10 (share within
10 deg: the study's "accuracy"; the original's argmax accuracy on a regression meant
nothing), and bias_yaw, bias_pitch, bias_roll: the mean signed error per axis, where a
systematic offset (a convention problem, not a learning one) shows.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from posenet.core import geometry, h5format
from posenet.core.errors import PosenetError
from posenet.core.fileio import atomic_output

AXES = ("yaw", "pitch", "roll")
ACC_THRESHOLD_DEG = 10.0
SUMMARY_KEYS = ("n", "failures", "mae_yaw", "mae_pitch", "mae_roll", "mae",
                "geodesic_mean", "geodesic_median", "acc10", "bias_yaw", "bias_pitch", "bias_roll")
CSV_COLUMNS = ("index", "yaw_true", "pitch_true", "roll_true", "yaw_pred", "pitch_pred", "roll_pred",
               "err_yaw", "err_pitch", "err_roll", "geodesic")


class Predictor(Protocol):
    name: str

    def predict(self, dataset: h5format.Dataset) -> np.ndarray: ...


def per_sample_errors(q_true: np.ndarray, q_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample errors in degrees; rows where the prediction has a NaN are NaN (failures).

    Keys: err_yaw, err_pitch, err_roll, err_mean (mean of the three), signed_yaw, signed_pitch,
    signed_roll (prediction minus truth, wrapped to (-180, 180]), geodesic, and the
    true pose yaw_true, pitch_true, roll_true (for error-by-pose plots).
    """
    q_true = np.asarray(q_true, dtype=np.float64)
    q_pred = np.asarray(q_pred, dtype=np.float64)
    valid = ~np.isnan(q_pred).any(axis=-1)
    euler = np.full((len(q_true), 3), np.nan)
    signed = np.full((len(q_true), 3), np.nan)
    geodesic = np.full(len(q_true), np.nan)
    if valid.any():
        signed[valid] = geometry.signed_euler_errors_deg(q_true[valid], q_pred[valid])
        euler[valid] = np.abs(signed[valid])
        geodesic[valid] = geometry.geodesic_deg(q_true[valid], q_pred[valid])
    truth = geometry.ypr_deg(q_true).reshape(-1, 3)
    errors = {f"err_{axis}": euler[:, i] for i, axis in enumerate(AXES)}
    errors.update({f"signed_{axis}": signed[:, i] for i, axis in enumerate(AXES)})
    errors["err_mean"] = euler.mean(axis=1)
    errors["geodesic"] = geodesic
    errors.update({f"{axis}_true": truth[:, i] for i, axis in enumerate(AXES)})
    return errors


def summarize(q_true: np.ndarray, q_pred: np.ndarray) -> dict[str, float | int]:
    """The summary every report uses (keys SUMMARY_KEYS, degrees; acc10 is a share in [0, 1]).

    NaN predictions count as failures and are left out of the means.
    """
    errors = per_sample_errors(q_true, q_pred)
    valid = ~np.isnan(errors["geodesic"])
    mean = lambda values: float(np.mean(values[valid])) if valid.any() else float("nan")
    summary: dict[str, float | int] = {"n": int(len(valid)), "failures": int((~valid).sum())}
    for axis in AXES:
        summary[f"mae_{axis}"] = mean(errors[f"err_{axis}"])
    summary["mae"] = float(np.mean([summary[f"mae_{axis}"] for axis in AXES]))
    summary["geodesic_mean"] = mean(errors["geodesic"])
    summary["geodesic_median"] = float(np.median(errors["geodesic"][valid])) if valid.any() else float("nan")
    summary["acc10"] = mean((errors["geodesic"] < ACC_THRESHOLD_DEG).astype(float))
    for axis in AXES:
        summary[f"bias_{axis}"] = mean(errors[f"signed_{axis}"])
    return summary


@dataclass
class Evaluation:
    """What one predictor did on one dataset."""

    name: str
    summary: dict[str, float | int]
    errors: dict[str, np.ndarray]  # per_sample_errors, plus the predicted angles
    indices: np.ndarray  # sample indices in the file (after the protocol filter)
    ms_per_image: float


def select(dataset: h5format.Dataset, protocol: str | None) -> tuple[h5format.Dataset, np.ndarray]:
    """The samples an evaluation protocol keeps, and their indices in the file."""
    if not protocol:
        return dataset, np.arange(len(dataset))
    from posenet.core.protocol import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise PosenetError(f"--protocol {protocol}: unknown; choose from {', '.join(PROTOCOLS)}")
    indices = np.flatnonzero(PROTOCOLS[protocol].mask(dataset))
    return dataset.subset(indices), indices


def evaluate(predictor: Predictor, dataset: h5format.Dataset, protocol: str | None = None) -> Evaluation:
    """Predict every kept sample, time it, and score it against the file's quaternions."""
    if "quats" not in dataset:
        raise PosenetError(f"{dataset.path}: field 'quats' is missing (no ground-truth pose to evaluate)")
    kept, indices = select(dataset, protocol)
    if not len(kept):
        raise PosenetError(f"{dataset.path}: no samples to evaluate (protocol {protocol} kept none)")
    start = time.perf_counter()
    q_pred = np.asarray(predictor.predict(kept), dtype=np.float64)
    ms_per_image = 1000.0 * (time.perf_counter() - start) / len(kept)
    if q_pred.shape != (len(kept), 4):
        raise PosenetError(f"{predictor.name}: returned predictions of shape {q_pred.shape}, expected ({len(kept)}, 4)")
    q_true = np.asarray(kept["quats"], dtype=np.float64)
    errors = per_sample_errors(q_true, q_pred)
    predicted = np.full((len(kept), 3), np.nan)
    valid = np.isfinite(q_pred).all(axis=1)
    if valid.any():
        predicted[valid] = geometry.ypr_deg(q_pred[valid])
    errors.update({f"{axis}_pred": predicted[:, i] for i, axis in enumerate(AXES)})
    return Evaluation(predictor.name, summarize(q_true, q_pred), errors, indices, ms_per_image)


def summary_line(evaluation: Evaluation) -> str:
    s = evaluation.summary
    return (f"{evaluation.name}: n={s['n']} failures={s['failures']} MAE {s['mae']:.2f} deg "
            f"(yaw {s['mae_yaw']:.2f}, pitch {s['mae_pitch']:.2f}, roll {s['mae_roll']:.2f}), "
            f"geodesic mean {s['geodesic_mean']:.2f} median {s['geodesic_median']:.2f} deg, "
            f"acc@10deg {100 * s['acc10']:.1f}%, bias (yaw/pitch/roll) {s['bias_yaw']:+.2f}/{s['bias_pitch']:+.2f}/"
            f"{s['bias_roll']:+.2f} deg, {evaluation.ms_per_image:.2f} ms/image")


def write_csv(path: str | Path, evaluation: Evaluation) -> Path:
    """One row per evaluated sample (columns CSV_COLUMNS, degrees; empty fields for failures)."""
    columns = {"index": evaluation.indices, **evaluation.errors}
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for row in range(len(evaluation.indices)):
                values = [columns[name][row] for name in CSV_COLUMNS]
                writer.writerow([int(values[0]), *("" if np.isnan(v) else f"{v:.4f}" for v in values[1:])])
    return Path(path)


def write_json(path: str | Path, evaluation: Evaluation) -> Path:
    """The summary alone, with exactly metrics' summary keys (NaN written as null)."""
    clean = {key: (None if isinstance(value, float) and np.isnan(value) else value)
             for key, value in evaluation.summary.items()}
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(clean, indent=2) + "\n")
    return Path(path)
