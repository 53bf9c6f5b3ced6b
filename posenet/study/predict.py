"""Predictions of a study net: a run's checkpoint or its ONNX export, fed as training fed it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from posenet.core import geometry, h5format
from posenet.core.errors import PosenetError
from posenet.study import pipeline
from posenet.training.runs import CONFIG, Run

BATCH_SIZE = 64


def rotvec_predictions(network, dataset: h5format.Dataset, pipe, name: str) -> np.ndarray:
    """Run a rotvec network (a callable on float32 NHWC batches) over a dataset -> quaternions."""
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


def pipeline_config_of(run_dir: Path, config: dict):
    """The run's stored pipeline settings for evaluation (no augmentation, no shuffling)."""
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
        run_dir = Path(run_dir)
        run = Run(run_dir)
        self.model, config = run.load_model(), run.config()
        task = config["train"].get("task", "rotvec")
        if task != "rotvec":
            raise PosenetError(f"{run_dir}: a {task} (tracker) run; export it with `posenet export {run_dir} "
                               f"--out MODEL.onnx --opentrack` and evaluate the ONNX file")
        self.pipe = pipeline_config_of(run_dir, config)
        self.name = run_dir.name

    def predict(self, dataset: h5format.Dataset) -> np.ndarray:
        return rotvec_predictions(lambda batch: self.model(batch, training=False), dataset, self.pipe, self.name)


class OnnxRotvecPredictor:
    """A study net exported to ONNX (metadata posenet_task=rotvec), run with ONNX Runtime.

    The metadata gives the run's preprocessing; `boxes` (the face-box source it was trained with)
    defaults to "file" for exports made before it was stored.
    """

    def __init__(self, path: Path, session, props: dict[str, str]):
        self.session, self.name = session, path.stem
        self.input_name = session.get_inputs()[0].name
        self.pipe = pipeline.PipelineConfig(input_size=int(props["input_size"]),
                                            normalization=props.get("normalization", "resnet"),
                                            margin=float(props.get("margin", pipeline.PipelineConfig.margin)),
                                            boxes=props.get("boxes", "file"))

    def predict(self, dataset: h5format.Dataset) -> np.ndarray:
        run = lambda batch: self.session.run(None, {self.input_name: batch.astype(np.float32)})[0]  # noqa: E731
        return rotvec_predictions(run, dataset, self.pipe, self.name)
