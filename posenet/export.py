"""`posenet export RUN --out F.onnx [--opentrack | --full]`: a trained run -> ONNX, checked.

tf2onnx converts a `tf.function` with an explicit input signature (opset 17). Variants:
- `--opentrack` (pose net or localizer): Opentrack's contract (DESIGN.md §6, `posenet.tracker.contract`):
  input `x` float32 [1, 1, H, W] (NCHW; the transpose to Keras' NHWC is inside the graph),
  only the contract's outputs, in the contract's order; the pose net carries
  `model_version` 4 and the doc string Opentrack's own file has. The file is re-checked with
  `posenet.tracker.contract` before it is kept.
- `--opentrack --int8`: that float file, checked as above, then quantised by ONNX Runtime
  (`posenet.quantize`), calibrated on the inputs the tracker would feed (patches cut from the
  run's validation file, or --data), re-checked against the contract and written instead; the
  export prints the int8 model's difference from the float one and the speed-up.
- `--full` (the default for tracker nets): Keras' NHWC input with a dynamic batch, every output.
- study runs (task "rotvec"): input NHWC float32 [N, S, S, 3], already normalised as the run's
  pipeline does; output `rotvec`; metadata_props `posenet_task=rotvec`, `input_size`,
  `normalization`, `margin`, `boxes` (the face-box source: "file" or "dlib").
Every export is compared with Keras in ONNX Runtime on random inputs and on real ones (the
run's validation file, or --data): max |ONNX - Keras| must be <= 1e-4 on every output. The
file is written atomically, so a failed check leaves nothing behind.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import keras
import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx

from posenet import quantize
from posenet.core import h5format
from posenet.core.errors import PosenetError
from posenet.core.fileio import atomic_output, check_writable
from posenet.study import pipeline
from posenet.tracker import contract
from posenet.training.registry import model_entry
from posenet.training.runs import load_run

OPSET = 17
PARITY_TOLERANCE = 1e-4
RANDOM_SAMPLES = 4
REAL_SAMPLES = 8
OPENTRACK_OUTPUTS = {"pose": contract.POSE_OUTPUTS, "localizer": contract.LOCALIZER_OUTPUTS}
DOC_STRINGS = {"pose": contract.POSE_DOC_STRING, "localizer": contract.LOCALIZER_DOC_STRING}
NORMALIZATION = {"pose": "opentrack-brightness", "localizer": "pixel/255-0.5"}
ROTVEC_OUTPUT = "rotvec"


# --- tf.functions to convert ----------------------------------------------------------------

def outputs_of(net: keras.Model, x: tf.Tensor) -> dict[str, tf.Tensor]:
    """The net's outputs as a dict (a single-output study net gives {"rotvec": ...})."""
    out = net(x, training=False)
    return dict(out) if isinstance(out, dict) else {ROTVEC_OUTPUT: out}


def opentrack_function(net: keras.Model, task: str) -> tf.types.experimental.PolymorphicFunction:
    """NCHW [1, 1, H, W] input `x` -> only the contract's outputs."""
    height, width = net.input_shape[1:3]
    names = [spec.name for spec in OPENTRACK_OUTPUTS[task]]

    @tf.function(input_signature=[tf.TensorSpec([1, 1, height, width], tf.float32, name=contract.INPUT_NAME)])
    def nchw(x):
        out = outputs_of(net, tf.transpose(x, [0, 2, 3, 1]))
        return {name: out[name] for name in names if name in out}

    return nchw


def full_function(net: keras.Model) -> tf.types.experimental.PolymorphicFunction:
    """Keras' NHWC input with a dynamic batch -> every output."""
    name = net.inputs[0].name

    @tf.function(input_signature=[tf.TensorSpec([None, *net.input_shape[1:]], tf.float32, name=name)])
    def nhwc(x):
        return outputs_of(net, x)

    return nhwc


def convert(function, order: list[str]) -> onnx.ModelProto:
    """tf2onnx conversion; graph outputs reordered to `order` (unknown names keep their place after)."""
    proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=OPSET)
    outputs = sorted(proto.graph.output, key=lambda o: order.index(o.name) if o.name in order else len(order))
    del proto.graph.output[:]
    proto.graph.output.extend(outputs)
    return proto


def set_metadata(proto: onnx.ModelProto, props: dict[str, object], version: int = 0, doc: str = "") -> None:
    proto.model_version = version
    proto.doc_string = doc
    onnx.helper.set_model_props(proto, {key: str(value) for key, value in props.items()})


# --- parity inputs --------------------------------------------------------------------------

def random_inputs(shape: tuple[int, ...], count: int, seed: int = 0) -> np.ndarray:
    """Inputs in the normalised range (about -0.5 .. 1 for the tracker nets, wider is harmless)."""
    return np.random.default_rng(seed).uniform(-0.5, 1.0, (count, *shape)).astype(np.float32)


def real_inputs(path: Path, task: str, config: dict, count: int) -> np.ndarray:
    """Network inputs (NHWC) from the first `count` samples of a dataset, preprocessed as in use."""
    dataset = h5format.read_dataset(path)
    if "rois" not in dataset:
        raise PosenetError(f"{path}: field 'rois' is missing (needed to crop real inputs)")
    indices = range(min(count, len(dataset)))
    if task == "pose":
        patches = [contract.crop_patch(contract.to_gray(dataset.image(i)), dataset["rois"][i]) for i in indices]
        return contract.normalize_brightness(np.stack(patches))[..., None]
    if task == "localizer":
        frames = [contract.localizer_input(contract.to_gray(dataset.image(i)))[0] for i in indices]
        return np.stack(frames)[..., None]
    pipe = pipeline.PipelineConfig(**config["pipeline"])
    return np.stack([pipeline.preprocess_numpy(dataset.image(i), dataset["rois"][i], pipe) for i in indices])


def parity(net: keras.Model, path: Path, inputs: np.ndarray, nchw: bool) -> dict[str, float]:
    """Max |ONNX Runtime - Keras| per ONNX output over `inputs` (NHWC); batch 1 for NCHW files."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    expected = {name: np.asarray(value) for name, value in outputs_of(net, tf.constant(inputs)).items()}
    batches = [x[None].transpose(0, 3, 1, 2) for x in inputs] if nchw else [inputs]
    got = [dict(zip(names, session.run(None, {input_name: batch}))) for batch in batches]
    return {name: float(np.max(np.abs(np.concatenate([g[name] for g in got]) - expected[name]))) for name in names}


# --- the command -----------------------------------------------------------------------------

def calibration_inputs(data: Path, task: str, config: dict) -> np.ndarray:
    """The int8 calibration inputs (N, H, W): the tracker's inputs from the first samples of `data`."""
    if not data.is_file():
        raise PosenetError(f"{data}: no such dataset file; --int8 calibrates on rendered crops "
                           "(the run's validation file or --data FILE)")
    return real_inputs(data, task, config, quantize.CALIBRATION_SAMPLES)[..., 0]


def quantized(float_path: Path, out: Path, task: str, inputs: np.ndarray) -> dict[str, float]:
    """Replace the checked float file `float_path` by its int8 version, re-checked; return `quantize.compare`."""
    with tempfile.TemporaryDirectory(prefix="posenet-export-") as work:
        kept = Path(work) / "float.onnx"
        kept.write_bytes(float_path.read_bytes())
        quantize.quantize(kept, float_path, inputs)
        try:
            contract.require_contract(float_path, task)
        except PosenetError as error:
            raise PosenetError(f"{out}: the int8 model breaks the contract ({error})") from None
        return quantize.compare(task, kept, float_path, inputs)


def export_run(run_dir: str | Path, out: str | Path, variant: str, data: str | Path | None = None,
               int8: bool = False) -> dict:
    """Export a run to `out` ("opentrack" or "full"; int8 only with "opentrack"), check it, return a summary."""
    net, config = load_run(run_dir)
    task = model_entry(config["train"]["model"]).task
    if variant == "opentrack" and task not in OPENTRACK_OUTPUTS:
        raise PosenetError(f"{run_dir}: --opentrack needs a pose_net or localizer run, this one is {task}")
    if int8 and variant != "opentrack":
        raise PosenetError(f"{run_dir}: --int8 quantises Opentrack's contract; add --opentrack (pose_net or localizer runs)")
    out = check_writable(out)
    data = Path(data) if data else Path(config["train"].get("val", ""))
    calibration = calibration_inputs(data, task, config) if int8 else None
    real = real_inputs(data, task, config, REAL_SAMPLES) if data.is_file() else np.zeros((0, *net.input_shape[1:]), np.float32)
    inputs = np.concatenate([random_inputs(net.input_shape[1:], RANDOM_SAMPLES), real]).astype(np.float32)

    if variant == "opentrack":
        order = [spec.name for spec in OPENTRACK_OUTPUTS[task]]
        proto = convert(opentrack_function(net, task), order)
        set_metadata(proto, {"posenet_task": task}, contract.POSE_MODEL_VERSION if task == "pose" else 0,
                     DOC_STRINGS[task])
    else:
        proto = convert(full_function(net), [])
        props = {"posenet_task": task, "input_size": net.input_shape[1], "layout": "NHWC"}
        if task == "rotvec":
            stored = config["pipeline"]
            props.update(normalization=stored["normalization"], margin=stored["margin"],
                         boxes=stored.get("boxes", "file"))  # runs from before --boxes cropped the file's boxes
        else:
            props.update(normalization=NORMALIZATION[task])
        set_metadata(proto, props)

    with atomic_output(out) as tmp:
        onnx.save(proto, str(tmp))
        differences = parity(net, tmp, inputs, nchw=variant == "opentrack")
        worst = max(differences.values())
        if worst > PARITY_TOLERANCE:
            name = max(differences, key=differences.get)
            raise PosenetError(f"{out}: ONNX differs from Keras by {worst:.2e} on '{name}' (tolerance {PARITY_TOLERANCE:g})")
        if variant == "opentrack":
            contract.require_contract(tmp, task)
        int8_figures = quantized(tmp, out, task, calibration) if int8 else None
    return {"int8": int8_figures, "out": out, "task": task, "variant": variant, "outputs": list(differences), "max_abs_diff": worst,
            "per_output": differences, "random": RANDOM_SAMPLES, "real": len(real), "data": data if len(real) else None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run directory written by posenet train")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    variant = parser.add_mutually_exclusive_group()
    variant.add_argument("--opentrack", action="store_true",
                         help="Opentrack's contract: input x [1,1,H,W], contract outputs, version 4 (tracker nets)")
    variant.add_argument("--full", action="store_true", help="NHWC input, dynamic batch, every output (default)")
    parser.add_argument("--data", default=None,
                        help="dataset file for the real-input parity check and the --int8 calibration "
                             "(default: the run's validation file)")
    parser.add_argument("--int8", action="store_true",
                        help="with --opentrack: ONNX Runtime static int8 quantisation, calibrated on --data; "
                             "prints the difference from the float model and the speed-up")


def run(args: argparse.Namespace) -> None:
    summary = export_run(args.run, args.out, "opentrack" if args.opentrack else "full", args.data, args.int8)
    for name, difference in summary["per_output"].items():
        print(f"  {name:22s} max |ONNX - Keras| = {difference:.2e}")
    source = f"{summary['real']} real from {summary['data']}" if summary["real"] else "no real inputs (no --data)"
    checked = "; Opentrack contract ok" if summary["variant"] == "opentrack" else ""
    if summary["int8"] is not None:
        print(f"  {quantize.summary_line(summary['task'], summary['int8'])}; int8 contract ok")
        checked = f"; Opentrack contract ok; int8, calibrated on {summary['int8']['inputs']} inputs from {summary['data']}"
    print(f"wrote {summary['out']} ({summary['variant']}, task {summary['task']}, {len(summary['outputs'])} outputs; "
          f"parity {summary['max_abs_diff']:.1e} <= {PARITY_TOLERANCE:g} on {summary['random']} random + {source}{checked})")
