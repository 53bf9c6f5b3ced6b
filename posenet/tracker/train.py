"""Training of the tracker's nets (registry tasks "pose" and "localizer").

`posenet train --model pose_net|localizer` lands here (posenet.train delegates). A run
directory has the same layout as a study run (config.json, best.keras, last.keras,
history.csv, backup/ while unfinished, done, TensorBoard events), so
`posenet.training.runs.Run` and `posenet export` read both; an interrupted run resumes at
the next epoch. The saved checkpoints are the plain functional nets; the training wrapper below
exists only while fitting.

Losses (each logged on its own; `loss` is their weighted sum):
- pose net: `quat` geodesic angle (radians, sign-invariant: q and -q are one rotation),
  `pos_size` L1, `box` L1, `keypoints` L1 on points inside the patch, and `nll`: the Gaussian
  negative log-likelihood of the (gradient-stopped) rotation and pos_size residuals under the
  predicted lower-triangular scale factors, which trains the uncertainty outputs alone;
- localizer: binary cross-entropy on the face logit, and box L1 on frames with a face.
Metrics without weight: `geodesic_deg` (pose) and `face_accuracy` (localizer).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import keras
from keras import ops

from posenet.core.errors import PosenetError
from posenet.core.fileio import private_tempdir
from posenet.core.values import check_positive, check_seed
from posenet.tracker import data as tracker_data
from posenet.training.registry import ModelConfig, build_model, model_entry
from posenet.training.rotations import conjugate, quat_angle, quat_to_rotvec, relative_quat
from posenet.training.runs import CONFIG, Run, check_run_name, check_splits
from posenet.training.strategy import check_strategy, make_strategy

TRACKER_TASKS = ("pose", "localizer")
POSE_WEIGHTS = {"quat": 1.0, "pos_size": 1.0, "box": 1.0, "keypoints": 0.5, "nll": 0.02, "geodesic_deg": 0.0}
LOCALIZER_WEIGHTS = {"bce": 1.0, "box": 2.0, "face_accuracy": 0.0}
MIN_LR_FRACTION = 0.05  # cosine decay ends at this share of the initial rate
EXECUTION = ("distribute",)  # settings of how a run is computed, not of what: a run may resume under another


# --- losses ------------------------------------------------------------------------------

def tril_nll(residual, tril):
    """Gaussian NLL (constant dropped) of residuals (B, 3) with covariance L L^T, L (B, 3, 3) lower."""
    z0 = residual[:, 0] / tril[:, 0, 0]
    z1 = (residual[:, 1] - tril[:, 1, 0] * z0) / tril[:, 1, 1]
    z2 = (residual[:, 2] - tril[:, 2, 0] * z0 - tril[:, 2, 1] * z1) / tril[:, 2, 2]
    log_det = ops.log(tril[:, 0, 0]) + ops.log(tril[:, 1, 1]) + ops.log(tril[:, 2, 2])
    return 0.5 * (z0**2 + z1**2 + z2**2) + log_det


def pose_loss_terms(y: dict, y_pred: dict) -> dict:
    """Per-batch means of every pose-net loss term and metric."""
    angle = quat_angle(relative_quat(y["quat"], y_pred["quat"]))
    weights = y["keypoint_weights"][..., None]
    keypoint_error = ops.sum(ops.abs(y_pred["keypoints"] - y["keypoints"]) * weights, axis=(1, 2))
    rotation_residual = ops.stop_gradient(quat_to_rotvec(relative_quat(conjugate(y["quat"]), conjugate(y_pred["quat"]))))
    pos_size_residual = ops.stop_gradient(y["pos_size"] - y_pred["pos_size"])
    return {
        "quat": ops.mean(angle),
        "pos_size": ops.mean(ops.abs(y_pred["pos_size"] - y["pos_size"])),
        "box": ops.mean(ops.abs(y_pred["box"] - y["box"])),
        "keypoints": ops.mean(keypoint_error / (3.0 * ops.maximum(ops.sum(weights, axis=(1, 2)), 1.0))),
        "nll": ops.mean(tril_nll(rotation_residual, y_pred["rotaxis_scales_tril"])
                        + tril_nll(pos_size_residual, y_pred["pos_size_scales_tril"])),
        "geodesic_deg": ops.mean(angle) * (180.0 / math.pi),
    }


def localizer_loss_terms(y: dict, y_pred: dict) -> dict:
    """BCE on the face logit, box L1 on frames with a face, and the face accuracy at p = 0.5."""
    target, output = y["logit_box"], y_pred["logit_box"]
    face, logit = target[:, 0], output[:, 0]
    box_error = ops.mean(ops.abs(output[:, 1:] - target[:, 1:]), axis=-1)
    return {
        "bce": ops.mean(ops.binary_crossentropy(face, logit, from_logits=True)),
        "box": ops.sum(box_error * face) / ops.maximum(ops.sum(face), 1.0),
        "face_accuracy": ops.mean(ops.cast(ops.equal(logit > 0.0, face > 0.5), "float32")),
    }


LOSS_TERMS: dict[str, tuple[Callable, dict]] = {
    "pose": (pose_loss_terms, POSE_WEIGHTS),
    "localizer": (localizer_loss_terms, LOCALIZER_WEIGHTS),
}
DATASETS = {"pose": tracker_data.pose_dataset, "localizer": tracker_data.localizer_dataset}


class TrackerTraining(keras.Model):
    """Wraps a multi-output net; the loss is a weighted sum of named terms, each logged as a metric."""

    def __init__(self, net: keras.Model, task: str):
        super().__init__(name=f"{net.name}_training")
        self.net = net
        self.terms, self.weights_by_term = LOSS_TERMS[task]
        self.trackers = [keras.metrics.Mean(name=name) for name in self.weights_by_term]

    def call(self, inputs, training=False):
        return self.net(inputs, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        terms = self.terms(y, y_pred)
        for tracker in self.trackers:
            tracker.update_state(terms[tracker.name])
        return sum(self.weights_by_term[name] * value for name, value in terms.items())


# --- the run -----------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackerTrainConfig:
    """Everything one tracker training run depends on; `data` holds the batch size and the seed."""

    model: str  # "pose_net", "pose_mobilenet" or "localizer"
    train: str
    val: str
    logdir: str = "runs"
    run_name: str | None = None  # default: the model's name
    epochs: int = 10
    learning_rate: float = 1e-4  # cosine decay to MIN_LR_FRACTION of it over the run
    weights: str | None = None  # pose_mobilenet's trunk: None (random), "imagenet" or a legacy .pth file
    distribute: str | None = None  # None (one device), "mirrored" or "multiworker" (posenet.training.strategy)
    data: tracker_data.TrackerDataConfig = field(default_factory=tracker_data.TrackerDataConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.logdir) / (self.run_name or self.model)

    def settings(self) -> dict:
        """config.json's "train" (its "tracker_data" is `data` whole)."""
        return {"model": self.model, "task": model_entry(self.model).task, "train": self.train, "val": self.val,
                "epochs": self.epochs, "batch_size": self.data.batch_size, "learning_rate": self.learning_rate,
                "seed": self.data.seed, "weights": self.weights, "distribute": self.distribute}


def check_config(config: TrackerTrainConfig) -> str:
    """The run's task; one clear line for each bad choice, before anything slow happens."""
    task = model_entry(config.model).task
    if task not in TRACKER_TASKS:
        raise PosenetError(f"--model {config.model}: not a tracker model (task {task}); use posenet.study.train")
    check_run_name(config.run_name)
    check_splits(config.train, config.val)
    if config.epochs < 1 or config.data.batch_size < 1:
        raise PosenetError("--epochs, --batch-size and --lr must be positive")
    check_positive(config.learning_rate, "--lr")  # NaN passes a `<= 0` test
    check_seed(config.data.seed)
    check_strategy(config.distribute)
    return task


def fit_tracker_model(config: TrackerTrainConfig) -> Path:
    """Train the pose net or the localizer; returns the run directory (best.keras, last.keras, ...)."""
    task = check_config(config)
    run = Run(config.run_dir)
    run.check_unfinished()
    strategy = make_strategy(config.distribute)  # before any other TensorFlow work (multiworker needs that)
    make = DATASETS[task]
    train = make(config.train, config.data, training=True)
    val = make(config.val, config.data, training=False)
    steps = int(train.cardinality())
    if steps < 1:
        raise PosenetError(f"{config.train}: fewer samples than one batch of {config.data.batch_size}; "
                           "lower --batch-size")
    # a failure before the first saved epoch removes the new run folder; autograph's files go with the fit
    with run.attempt(), private_tempdir("autograph"):
        prepare_run_dir(run, config)
        keras.utils.set_random_seed(config.data.seed)
        with strategy.scope():  # the net, its wrapper and the optimizer: fit then splits each batch across replicas
            net = build_model(config.model, ModelConfig(weights=config.weights))
            model = TrackerTraining(net, task)
            model.build(net.input_shape)  # BackupAndRestore restores into a built model only
            schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps,
                                                              alpha=MIN_LR_FRACTION)
            model.compile(optimizer=keras.optimizers.Adam(schedule))
        callbacks = [keras.callbacks.TensorBoard(str(run.path), write_graph=False),
                     *run.checkpoint_callbacks(net, resume=True), run.backup_callback()]  # resumes at the next epoch
        start = time.perf_counter()
        model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks, verbose=2, shuffle=False)
        run.finish({"parameters": net.count_params(), "train_seconds": round(time.perf_counter() - start, 1)},
                   best_columns=[f"val_{name}" for name in LOSS_TERMS[task][1]])
    return run.path


def prepare_run_dir(run: Run, config: TrackerTrainConfig) -> None:
    """Write config.json, or check that an unfinished run there is this one (then it resumes),
    and that its resume state can be read (one line offering to start over when it cannot).

    Every setting but EXECUTION's must match; one the run did not store (written before that
    setting existed) counts as its default, None."""
    if (run.path / CONFIG).is_file():
        stored = run.config()["train"]
        for key, asked in config.settings().items():
            if key not in EXECUTION and stored.get(key) != asked:
                raise PosenetError(f"{run.path}: holds an unfinished run with {key}={stored.get(key)!r}, "
                                   f"not {asked!r}; choose another --run-name")
    run.write_config({"train": config.settings(), "tracker_data": asdict(config.data)})
    run.check_resume_state()


def run(config: TrackerTrainConfig) -> None:
    """`posenet train` for a tracker model (posenet.train maps the flags into `config`)."""
    run_dir = fit_tracker_model(config)
    done = Run(run_dir).summary()
    figures = ", ".join(f"{key[4:]} {value:.3f}" for key, value in done.items() if key.startswith("val_"))
    print(f"trained {config.model}: {run_dir} (best val_loss {done['best_val_loss']:.4f} at epoch "
          f"{done['best_epoch'] + 1}/{done['epochs']}; val {figures})")
