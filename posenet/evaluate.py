"""`posenet evaluate`: any pose predictor on any dataset file -> per-sample errors and a summary.

A predictor is any object with a `.name` and `.predict(dataset) -> (N, 4)` quaternions
(x, y, z, w); a row of NaN is a failure (no face found, no pose). The targets:

- a training run directory: its best checkpoint, fed exactly as training fed it
  (`pipeline.preprocess_numpy` with the run's stored pipeline settings);
- an ONNX file: a study export (metadata `posenet_task=rotvec`: NHWC input, already
  normalised, rotation-vector output; crops cut from the metadata's `boxes`), else an Opentrack-contract pose model run as
  Opentrack runs it (`posenet.tracker.track.OnnxPosePredictor`);
- `pnp` / `pnp-oracle`: dlib landmarks (or the dataset's own) + solvePnP (`baselines.pnp`);
- `mean`: always predicts the chordal L2 mean rotation of the TRAINING split (`--train`),
  the floor any learned model must beat. It never looks at the evaluated data.

Scoring is `posenet.core.evaluation` (summary keys there: MAE per axis and mean, geodesic mean and
median, acc@10 and the mean signed error per axis); failures are counted and left out of the means.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from posenet.core import h5format
from posenet.core.errors import PosenetError
from posenet.core.evaluation import Predictor, evaluate, summary_line, write_csv, write_json
from posenet.core.fileio import check_writable

BASELINES = ("pnp", "pnp-oracle", "mean")
DETECTORS = ("hog", "cnn", "haar")


STUDY_MODEL_TIMEOUT_S = 120.0  # a study export runs a whole batch at once (C_RESNET at 224 px: seconds)


def onnx_predictor(path: Path, timeout_s: float | None = None) -> Predictor:
    """A study export, or else an Opentrack-contract pose model; every model run is bounded in time
    (`posenet.tracker.runtime`), so a model that never finishes cannot hang the evaluation."""
    from posenet.tracker.runtime import GuardedSession

    session = GuardedSession(path, threads=0, timeout_s=timeout_s or STUDY_MODEL_TIMEOUT_S)  # 0: every core
    props = session.session.get_modelmeta().custom_metadata_map
    if props.get("posenet_task") == "rotvec":
        from posenet.study.predict import OnnxRotvecPredictor

        return OnnxRotvecPredictor(path, session, props)
    from posenet.tracker.track import OnnxPosePredictor

    return OnnxPosePredictor(path, timeout_s=timeout_s)


def protocol_focal_widths(protocol: str | None) -> float | None:
    """The camera a protocol's labels assume (see posenet.core.protocol), for the pnp baselines."""
    from posenet.core.protocol import PROTOCOLS

    return PROTOCOLS[protocol].label_focal_widths if protocol in PROTOCOLS else None


def make_predictor(target: str, train: str | Path | None = None, detector: str = "hog",
                   focal_widths: float | None = None, timeout_s: float | None = None) -> Predictor:
    """The predictor named by a CLI target: a run dir, an .onnx file, pnp, pnp-oracle or mean."""
    if target == "mean":
        if not train:
            raise PosenetError("mean: needs --train FILE (the mean pose comes from the training split only)")
        from baselines.mean import MeanPosePredictor

        return MeanPosePredictor(train)
    if target in ("pnp", "pnp-oracle"):
        from baselines.pnp import PnPPredictor

        return PnPPredictor(landmarks="oracle" if target == "pnp-oracle" else "dlib", detector=detector,
                            focal_widths=focal_widths)
    path = Path(target)
    if path.suffix == ".onnx":
        if not path.is_file():
            raise PosenetError(f"{path}: no such ONNX file")
        return onnx_predictor(path, timeout_s)
    if path.is_dir():
        from posenet.study.predict import KerasRunPredictor

        return KerasRunPredictor(path)
    raise PosenetError(f"{target}: not a run directory, an .onnx file or one of {', '.join(BASELINES)}")


# --- command line -----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="RUN_DIR|MODEL.onnx|pnp|pnp-oracle|mean",
                        help="a training run directory, an ONNX file, or a baseline")
    parser.add_argument("--data", required=True, help="dataset file (HDF5) with ground-truth quats")
    parser.add_argument("--protocol", default=None, help="sample filter, e.g. aflw2000 (|angles| <= 99 deg)")
    parser.add_argument("--json", default=None, help="write the summary to this JSON file")
    parser.add_argument("--csv", default=None, help="write per-sample errors to this CSV file")
    parser.add_argument("--model-timeout", type=float, default=None, metavar="S",
                        help=f"stop an ONNX model run after S seconds with one error line (default: 10 for a "
                             f"tracker pose model, {STUDY_MODEL_TIMEOUT_S:g} for a study export's batch)")
    parser.add_argument("--detector", choices=DETECTORS, default="hog", help="face detector of the pnp baseline")
    parser.add_argument("--train", default=None, help="training file (for the mean-pose baseline)")
    parser.add_argument("--focal-widths", type=float, default=None,
                        help="pnp baselines: focal length in image widths instead of the file's camera (default: "
                             "the protocol's, e.g. 30 for aflw2000, whose labels are weak-perspective fits; else the "
                             "file's camera, else 1 width)")


def run(args: argparse.Namespace) -> None:
    for output in (args.json, args.csv):
        if output:
            check_writable(output, inputs=(args.data, args.train))  # fail before the slow part
    dataset = h5format.read_dataset(args.data)
    if args.focal_widths is not None and args.focal_widths <= 0:
        raise PosenetError(f"--focal-widths {args.focal_widths}: must be positive")
    focal_widths = args.focal_widths if args.focal_widths is not None else protocol_focal_widths(args.protocol)
    predictor = make_predictor(args.target, args.train, args.detector, focal_widths, args.model_timeout)
    evaluation = evaluate(predictor, dataset, args.protocol)
    written = [str(write(path, evaluation)) for path, write in ((args.csv, write_csv), (args.json, write_json)) if path]
    print(summary_line(evaluation))
    print(f"evaluated {evaluation.summary['n']} samples of {args.data}"
          + (f"; wrote {', '.join(written)}" if written else ""))
