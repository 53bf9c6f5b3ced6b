"""Benchmark: a pose net trained on real faces reads rendered ones.

The sim-to-real proxy asks whether nets trained on rendered faces read real ones; this asks the
mirror question with an instrument that no one here trained: Opentrack's published pose model
(trained on real faces whose labels share AFLW2000-3D's head frame) is fed rendered faces through
the tracker's own input path (`posenet evaluate`'s, `OnnxPosePredictor`) and scored against their
exact labels. Where the renderer draws a face that a real-trained net reads as turned away from
its label, the net's mean signed error (bias) says by how much and about which axis; the
near-frontal pitch line (slope, intercept at label 0) separates an offset from a net that
under-responds. The same model on the real file is printed beside it (its bias there is the
instrument's own, about 0 on the development split), so that the figure describes the renderer.

Seconds to run; no real label is used on the rendered side and nothing is fitted. It reads
through one particular net, so it is a second opinion beside the proxy, not a judge: it agreed
with the proxy that centring the face on the camera's axis helps, disagreed about the lowered
brows and did not see renderer v4's eyes turned toward the camera, which moved the proxy most
(results/sim2real_ablation.md).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from posenet.benchmarks.sim2real import NEAR_FRONTAL_DEG, REAL_DEV, pitch_line, read_real
from posenet.core import geometry, h5format
from posenet.core.errors import PosenetError
from posenet.core.evaluation import Predictor, evaluate
from posenet.core.paths import OPENTRACK_MODELS

PEER_MODEL = OPENTRACK_MODELS / "head-pose-0.4-small-int8.onnx"
QUICK_FACES, FULL_FACES = 300, 2000
SEED = 77
AXES = ("yaw", "pitch", "roll")


def reading(predictor: Predictor, dataset: h5format.Dataset, protocol: str | None = None) -> dict:
    """What `predictor` reads on `dataset`: MAE and bias per axis, geodesic median, the pitch line."""
    evaluation = evaluate(predictor, dataset, protocol)
    kept = dataset.subset(evaluation.indices)
    true_ypr = geometry.ypr_deg(np.asarray(kept["quats"], np.float64))
    predicted_ypr = np.stack([evaluation.errors[f"{axis}_pred"] for axis in AXES], axis=-1)
    slope, intercept = pitch_line(true_ypr, predicted_ypr)
    summary = evaluation.summary
    result = {key: summary[key] for key in ("n", "mae", "geodesic_median", "acc10")}
    result.update({f"{kind}_{axis}": summary[f"{kind}_{axis}"] for kind in ("mae", "bias") for axis in AXES})
    result.update(pitch_slope=slope, pitch_intercept=intercept)
    return result


def peer_predictor(model: str | Path = PEER_MODEL) -> Predictor:
    from posenet.tracker.track import OnnxPosePredictor

    if not Path(model).is_file():
        raise PosenetError(f"{model}: Opentrack's published pose model is missing (the peer this benchmark "
                           "reads with; it lives in ../shared/peers/opentrack)")
    return OnnxPosePredictor(model)


def measure(faces: int = FULL_FACES, synth_config=None, real: str | Path | None = REAL_DEV,
            predictor: Predictor | None = None) -> dict:
    """The peer's reading of `faces` rendered faces ("rendered") and of the real file ("real"; None: skipped)."""
    from data_tools import synth

    start = time.perf_counter()
    predictor = predictor or peer_predictor()
    real_dataset = read_real(real, {"quats": "no ground-truth pose", "rois": "the pose model needs face boxes"}) \
        if real is not None else None  # first: a bad file fails before the rendering
    fields = synth.synthesize(synth_config or synth.SynthConfig(), faces, SEED,
                              workers=max(1, min(2, os.cpu_count() or 1)), progress=True)
    result = {"rendered": reading(predictor, h5format.Dataset(fields))}
    if real_dataset is not None:
        result["real"] = reading(predictor, real_dataset)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def _row(label: str, r: dict) -> str:
    return (f"| {label} | {r['n']} | {r['mae']:.2f} | {r['mae_yaw']:.2f} | {r['mae_pitch']:.2f} | {r['mae_roll']:.2f} "
            f"| {r['bias_yaw']:+.2f} | {r['bias_pitch']:+.2f} | {r['bias_roll']:+.2f} | {r['pitch_slope']:.2f} "
            f"| {r['pitch_intercept']:+.2f} |")


TABLE_HEADER = ["| faces | n | MAE | yaw | pitch | roll | bias yaw | bias pitch | bias roll | near-frontal pitch slope "
                "| pitch at label 0 |", "|---|" + "---|" * 10]


def summary_line(result: dict) -> str:
    r = result["rendered"]
    line = (f"sim2real peer: Opentrack's real-trained pose net on {r['n']} rendered faces: MAE {r['mae']:.2f} deg, "
            f"bias {r['bias_yaw']:+.2f}/{r['bias_pitch']:+.2f}/{r['bias_roll']:+.2f} (yaw/pitch/roll), "
            f"near-frontal pitch slope {r['pitch_slope']:.2f}, at label 0 {r['pitch_intercept']:+.2f}")
    if "real" in result:
        line += f"; on {result['real']['n']} real faces MAE {result['real']['mae']:.2f}, pitch bias " \
                f"{result['real']['bias_pitch']:+.2f}"
    return line + f"; {result['seconds']:.0f} s"


def benchmark(quick: bool, real: str | Path | None = None) -> list[str]:
    """The peer's reading of the current renderer: one line printed, Markdown for the report."""
    faces = QUICK_FACES if quick else FULL_FACES
    result = measure(faces, real=real or REAL_DEV)
    print(summary_line(result))
    lines = [f"Opentrack's `{PEER_MODEL.name}` (trained on real faces) fed {faces} faces rendered with the current "
             f"defaults (seed {SEED}) through the tracker's input path, scored against their exact labels; the same "
             f"model on `{Path(real or REAL_DEV).name}` for reference. Degrees; bias = prediction - truth; the pitch "
             f"line is fitted over near-frontal faces (|yaw|, |pitch| < {NEAR_FRONTAL_DEG:g}). A bias on rendered "
             "faces means a real-trained net sees them turned away from their labels.", "",
             *TABLE_HEADER, _row("rendered (current defaults)", result["rendered"])]
    if "real" in result:
        lines.append(_row(f"real (`{Path(real or REAL_DEV).name}`)", result["real"]))
    return lines
