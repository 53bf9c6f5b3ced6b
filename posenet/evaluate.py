"""`posenet evaluate`: any pose predictor on any dataset file -> per-sample errors and a summary.

A predictor is any object with a `.name` and `.predict(dataset) -> (N, 4)` quaternions
(x, y, z, w); a row of NaN is a failure (no face found, no pose). The targets:

- a training run directory: its best checkpoint, fed exactly as training fed it
  (`pipeline.preprocess_numpy` with the run's stored pipeline settings);
- an ONNX file: a study export (metadata `posenet_task=rotvec`: NHWC input, already
  normalised, rotation-vector output; crops cut from the metadata's `boxes`), else an Opentrack-contract pose model run as
  Opentrack runs it (`posenet.track.OnnxPosePredictor`);
- `pnp` / `pnp-oracle`: dlib landmarks (or the dataset's own) + solvePnP (`baselines.pnp`);
- `mean`: always predicts the chordal L2 mean rotation of the TRAINING split (`--train`),
  the floor any learned model must beat. It never looks at the evaluated data.

The summary (`metrics.summarize`) has the keys n, failures, mae_yaw, mae_pitch, mae_roll, mae,
geodesic_mean, geodesic_median (degrees) and acc10 (share of samples within 10 deg); failures
are counted and left out of the means.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from data_tools import h5format
from posenet import geometry
from posenet.errors import PosenetError
from posenet.fileio import atomic_output, check_writable

BASELINES = ("pnp", "pnp-oracle", "mean")
DETECTORS = ("hog", "cnn", "haar")
BATCH_SIZE = 64
CSV_COLUMNS = ("index", "yaw_true", "pitch_true", "roll_true", "yaw_pred", "pitch_pred", "roll_pred",
               "err_yaw", "err_pitch", "err_roll", "geodesic")


class Predictor(Protocol):
    name: str

    def predict(self, dataset: h5format.Dataset) -> np.ndarray: ...


# --- predictors ------------------------------------------------------------------------------

def _rotvec_predictions(network, dataset: h5format.Dataset, pipe, name: str) -> np.ndarray:
    """Run a rotvec network (a callable on float32 NHWC batches) over a dataset -> quaternions."""
    from posenet import pipeline

    rois = pipeline.face_boxes(dataset, pipe)
    rotvecs = []
    for start in tqdm(range(0, len(dataset), BATCH_SIZE), desc=name, unit="batch", leave=False):
        indices = range(start, min(start + BATCH_SIZE, len(dataset)))
        batch = np.stack([pipeline.preprocess_numpy(dataset.image(i), rois[i], pipe) for i in indices])
        rotvecs.append(np.asarray(network(batch), dtype=np.float64).reshape(len(batch), 3))
    rotvecs = np.concatenate(rotvecs)
    quats = np.full((len(dataset), 4), np.nan)
    finite = np.isfinite(rotvecs).all(axis=1)
    quats[finite] = geometry.rotvec_to_quat(rotvecs[finite])
    return quats


def _pipeline_config(run_dir: Path, config: dict):
    """The run's stored pipeline settings for evaluation (no augmentation, no shuffling)."""
    from posenet import pipeline
    from posenet.train import CONFIG

    stored = config.get("pipeline")
    if not isinstance(stored, dict):
        raise PosenetError(f"{run_dir / CONFIG}: no 'pipeline' settings (needed to preprocess as training did)")
    try:
        return pipeline.PipelineConfig(**{**stored, "augment": False, "shuffle": False})
    except TypeError as error:  # an unknown or missing field
        raise PosenetError(f"{run_dir / CONFIG}: 'pipeline' settings not understood ({error})") from None


class KerasRunPredictor:
    """A training run's best checkpoint, with the run's own preprocessing."""

    def __init__(self, run_dir: str | Path):
        from posenet.train import load_run

        run_dir = Path(run_dir)
        self.model, config = load_run(run_dir)
        task = config["train"].get("task", "rotvec")
        if task != "rotvec":
            raise PosenetError(f"{run_dir}: a {task} (tracker) run; export it with `posenet export {run_dir} "
                               f"--out MODEL.onnx --opentrack` and evaluate the ONNX file")
        self.pipe = _pipeline_config(run_dir, config)
        self.name = run_dir.name

    def predict(self, dataset: h5format.Dataset) -> np.ndarray:
        return _rotvec_predictions(lambda batch: self.model(batch, training=False), dataset, self.pipe, self.name)


class OnnxRotvecPredictor:
    """A study net exported to ONNX (metadata posenet_task=rotvec), run with ONNX Runtime.

    The metadata gives the run's preprocessing; `boxes` (the face-box source it was trained with)
    defaults to "file" for exports made before it was stored.
    """

    def __init__(self, path: Path, session, props: dict[str, str]):
        from posenet import pipeline

        self.session, self.name = session, path.stem
        self.input_name = session.get_inputs()[0].name
        self.pipe = pipeline.PipelineConfig(input_size=int(props["input_size"]),
                                            normalization=props.get("normalization", "resnet"),
                                            margin=float(props.get("margin", pipeline.PipelineConfig.margin)),
                                            boxes=props.get("boxes", "file"))

    def predict(self, dataset: h5format.Dataset) -> np.ndarray:
        run = lambda batch: self.session.run(None, {self.input_name: batch.astype(np.float32)})[0]  # noqa: E731
        return _rotvec_predictions(run, dataset, self.pipe, self.name)


def onnx_predictor(path: Path) -> Predictor:
    """A study export, or else an Opentrack-contract pose model."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types for bad files
        raise PosenetError(f"{path}: not a loadable ONNX model ({str(error).splitlines()[0]})") from None
    props = session.get_modelmeta().custom_metadata_map
    if props.get("posenet_task") == "rotvec":
        return OnnxRotvecPredictor(path, session, props)
    from posenet.track import OnnxPosePredictor

    return OnnxPosePredictor(path)


class MeanPosePredictor:
    """Predicts one rotation for every sample: the chordal L2 mean of the training quaternions."""

    name = "mean"

    def __init__(self, train_path: str | Path):
        quats = h5format.read_dataset(train_path, names=["quats"])["quats"]
        if not len(quats):
            raise PosenetError(f"{train_path}: the training file is empty")
        self.quat = geometry.canonical_quat(Rotation.from_quat(np.asarray(quats, np.float64)).mean().as_quat())

    def predict(self, dataset: h5format.Dataset) -> np.ndarray:
        return np.tile(self.quat, (len(dataset), 1))


def make_predictor(target: str, train: str | Path | None = None, detector: str = "hog") -> Predictor:
    """The predictor named by a CLI target: a run dir, an .onnx file, pnp, pnp-oracle or mean."""
    if target == "mean":
        if not train:
            raise PosenetError("mean: needs --train FILE (the mean pose comes from the training split only)")
        return MeanPosePredictor(train)
    if target in ("pnp", "pnp-oracle"):
        from baselines.pnp import PnPPredictor

        return PnPPredictor(landmarks="oracle" if target == "pnp-oracle" else "dlib", detector=detector)
    path = Path(target)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise PosenetError(f"{path}: no such ONNX file")
        return onnx_predictor(path)
    if path.is_dir():
        return KerasRunPredictor(path)
    raise PosenetError(f"{target}: not a run directory, an .onnx file or one of {', '.join(BASELINES)}")


# --- evaluation -------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """What one predictor did on one dataset."""

    name: str
    summary: dict[str, float | int]
    errors: dict[str, np.ndarray]  # metrics.per_sample_errors, plus the predicted angles
    indices: np.ndarray  # sample indices in the file (after the protocol filter)
    ms_per_image: float


def select(dataset: h5format.Dataset, protocol: str | None) -> tuple[h5format.Dataset, np.ndarray]:
    """The samples an evaluation protocol keeps, and their indices in the file."""
    if not protocol:
        return dataset, np.arange(len(dataset))
    from data_tools.protocol import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise PosenetError(f"--protocol {protocol}: unknown; choose from {', '.join(PROTOCOLS)}")
    indices = np.flatnonzero(PROTOCOLS[protocol].mask(dataset))
    return dataset.subset(indices), indices


def evaluate(predictor: Predictor, dataset: h5format.Dataset, protocol: str | None = None) -> Evaluation:
    """Predict every kept sample, time it, and score it against the file's quaternions."""
    from posenet import metrics

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
    errors = metrics.per_sample_errors(q_true, q_pred)
    predicted = np.full((len(kept), 3), np.nan)
    valid = np.isfinite(q_pred).all(axis=1)
    if valid.any():
        predicted[valid] = geometry.ypr_deg(q_pred[valid])
    errors.update({f"{axis}_pred": predicted[:, i] for i, axis in enumerate(("yaw", "pitch", "roll"))})
    return Evaluation(predictor.name, metrics.summarize(q_true, q_pred), errors, indices, ms_per_image)


def summary_line(evaluation: Evaluation) -> str:
    s = evaluation.summary
    return (f"{evaluation.name}: n={s['n']} failures={s['failures']} MAE {s['mae']:.2f} deg "
            f"(yaw {s['mae_yaw']:.2f}, pitch {s['mae_pitch']:.2f}, roll {s['mae_roll']:.2f}), "
            f"geodesic mean {s['geodesic_mean']:.2f} median {s['geodesic_median']:.2f} deg, "
            f"acc@10deg {100 * s['acc10']:.1f}%, {evaluation.ms_per_image:.2f} ms/image")


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


# --- command line -----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="RUN_DIR|MODEL.onnx|pnp|pnp-oracle|mean",
                        help="a training run directory, an ONNX file, or a baseline")
    parser.add_argument("--data", required=True, help="dataset file (HDF5) with ground-truth quats")
    parser.add_argument("--protocol", default=None, help="sample filter, e.g. aflw2000 (|angles| <= 99 deg)")
    parser.add_argument("--json", default=None, help="write the summary to this JSON file")
    parser.add_argument("--csv", default=None, help="write per-sample errors to this CSV file")
    parser.add_argument("--detector", choices=DETECTORS, default="hog", help="face detector of the pnp baseline")
    parser.add_argument("--train", default=None, help="training file (for the mean-pose baseline)")


def run(args: argparse.Namespace) -> None:
    for output in (args.json, args.csv):
        if output:
            check_writable(output)  # fail before the slow part
    dataset = h5format.read_dataset(args.data)
    evaluation = evaluate(make_predictor(args.target, args.train, args.detector), dataset, args.protocol)
    written = [str(write(path, evaluation)) for path, write in ((args.csv, write_csv), (args.json, write_json)) if path]
    print(summary_line(evaluation))
    print(f"evaluated {evaluation.summary['n']} samples of {args.data}"
          + (f"; wrote {', '.join(written)}" if written else ""))
