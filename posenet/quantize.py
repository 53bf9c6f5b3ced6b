"""Int8 tracker models (`posenet export --opentrack --int8`): ONNX Runtime static quantisation.

The float Opentrack export is quantised with `onnxruntime.quantization.quantize_static`
(QDQ format, per-channel int8 weights, uint8 activations calibrated with MinMax on the
inputs the tracker would feed: pose patches cut and normalised by `posenet.tracker.contract`,
or localizer frames). The int8 file keeps the float file's version, doc string and metadata,
so it still follows Opentrack's contract. `compare` says what quantisation cost: the
quaternion angle between the int8 and the float pose net (or the localizer's logit and box
differences) on the calibration inputs, and the single-thread time per input of each file.

No TensorFlow here: the export hands in the float file and the inputs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from posenet.core import geometry
from posenet.core.errors import PosenetError
from posenet.tracker.contract import INPUT_NAME
from posenet.tracker.runtime import make_session

CALIBRATION_SAMPLES = 200  # inputs used to calibrate and to compare int8 with float
TIMING_RUNS = 40  # single-thread runs per file for the ms-per-input figure (median)
# Choices measured on a pose net trained on 6000 rendered faces, 100 calibration and 100 other
# validation patches, 1 thread (x86 with VNNI): int8 activations ran 4-5x slower than float (ONNX
# Runtime leaves the convs that share an input in float, dequantising their weights every run);
# uint8 activations with a dedicated Q/DQ pair per consumer fuse every conv into QLinearConv and
# gave the smallest error (mean 0.62, max 1.6 deg; per tensor: max 3.7; Percentile: max 2.2).
QUANT_FORMAT = QuantFormat.QDQ  # Opentrack's own int8 pose net is QDQ
PER_CHANNEL = True
ACTIVATIONS, WEIGHTS = QuantType.QUInt8, QuantType.QInt8
CALIBRATION = CalibrationMethod.MinMax
EXTRA_OPTIONS = {"DedicatedQDQPair": True}


class Inputs(CalibrationDataReader):
    """The calibration inputs (N, H, W), one batch [1, 1, H, W] at a time, as the tracker runs the model."""

    def __init__(self, inputs: np.ndarray):
        self.batches = iter(np.asarray(inputs, np.float32)[:, None, None])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: batch}


def quantize(float_path: Path, int8_path: Path, inputs: np.ndarray) -> None:
    """Write the int8 version of `float_path` (calibrated on `inputs`, N x H x W) to `int8_path`."""
    if len(inputs) == 0:
        raise PosenetError(f"{float_path}: no calibration inputs for --int8")
    float_model = onnx.load(str(float_path))
    with tempfile.TemporaryDirectory(prefix="posenet-int8-") as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        quant_pre_process(float_model, prepared)  # shape inference and graph fusion, as ONNX Runtime advises
        quantize_static(prepared, quantized, Inputs(inputs), quant_format=QUANT_FORMAT, per_channel=PER_CHANNEL,
                        activation_type=ACTIVATIONS, weight_type=WEIGHTS, calibrate_method=CALIBRATION,
                        extra_options=EXTRA_OPTIONS)
        model = onnx.load(str(quantized))
    model.model_version, model.doc_string = float_model.model_version, float_model.doc_string
    onnx.helper.set_model_props(model, {p.key: p.value for p in float_model.metadata_props} | {"quantized": "int8"})
    onnx.save(model, str(int8_path))


def run_all(path: Path, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the model on each input (N, H, W), stacked over the inputs."""
    session = make_session(path, threads=1)
    names = [o.name for o in session.get_outputs()]
    rows = [session.run(None, {INPUT_NAME: x[None, None]}) for x in np.asarray(inputs, np.float32)]
    return {name: np.concatenate([row[i] for row in rows]) for i, name in enumerate(names)}


def ms_per_input(path: Path, example: np.ndarray, runs: int = TIMING_RUNS) -> float:
    """Median single-thread time of one run, in ms (after one warm-up run)."""
    session = make_session(path, threads=1)
    feed = {INPUT_NAME: np.asarray(example, np.float32)[None, None]}
    session.run(None, feed)
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        seconds.append(time.perf_counter() - start)
    return 1e3 * float(np.median(seconds))


def differences(task: str, float_out: dict[str, np.ndarray], int8_out: dict[str, np.ndarray]) -> dict[str, float]:
    """What quantisation changed: quaternion angle (pose) or logit and box (localizer), mean and max."""
    if task == "pose":
        angles = geometry.geodesic_deg(geometry.canonical_quat(float_out["quat"]),
                                       geometry.canonical_quat(int8_out["quat"]))
        return {"quat_deg_mean": float(np.mean(angles)), "quat_deg_max": float(np.max(angles))}
    logit = np.abs(float_out["logit_box"][:, 0] - int8_out["logit_box"][:, 0])
    box = np.abs(float_out["logit_box"][:, 1:] - int8_out["logit_box"][:, 1:])
    return {"logit_mean": float(logit.mean()), "logit_max": float(logit.max()),
            "box_mean": float(box.mean()), "box_max": float(box.max())}


def compare(task: str, float_path: Path, int8_path: Path, inputs: np.ndarray) -> dict[str, float]:
    """Differences of the int8 model from the float one on `inputs` (N, H, W), its speed-up and sizes."""
    figures = differences(task, run_all(float_path, inputs), run_all(int8_path, inputs))
    float_ms, int8_ms = ms_per_input(float_path, inputs[0]), ms_per_input(int8_path, inputs[0])
    return figures | {"inputs": len(inputs), "float_ms": float_ms, "int8_ms": int8_ms, "speedup": float_ms / int8_ms,
                      "float_bytes": float_path.stat().st_size, "int8_bytes": int8_path.stat().st_size}


def summary_line(task: str, figures: dict[str, float]) -> str:
    """The printed verdict on an int8 export."""
    if task == "pose":
        error = (f"quaternion vs float over {figures['inputs']} patches: mean {figures['quat_deg_mean']:.2f} deg, "
                 f"max {figures['quat_deg_max']:.2f} deg")
    else:
        error = (f"vs float over {figures['inputs']} frames: logit |diff| mean {figures['logit_mean']:.3f}, "
                 f"max {figures['logit_max']:.3f}; box |diff| mean {figures['box_mean']:.4f}, "
                 f"max {figures['box_max']:.4f} (frame units, [-1, 1])")
    return (f"int8 {error}; single-thread ms per input: float {figures['float_ms']:.3f}, int8 {figures['int8_ms']:.3f} "
            f"(speed-up {figures['speedup']:.2f}x); size {figures['float_bytes'] / 1024:.0f} KiB -> "
            f"{figures['int8_bytes'] / 1024:.0f} KiB")
