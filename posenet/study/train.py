"""Fit one study net (C1_NET, C2_NET, C_RESNET, C_MOBILENET, MOBILENET_QUAT) on one loss, with full logging.

The run directory's format is `posenet.training.runs`', `--distribute` is
`posenet.training.strategy`'s. Here: the learning-rate schedule, the callbacks (TensorBoard
scalars, HParams, validation crops with their axes drawn, checkpoints, a BackupAndRestore
state so an interrupted run resumes at the next epoch), and the fit itself, on the tf.data pipeline or, for a net with a frozen backbone
(C_RESNET, C_MOBILENET), on its cached backbone features (`posenet.study.features`; no augmentation is possible then).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf

from posenet.core import draw, geometry, h5format
from posenet.core.errors import PosenetError
from posenet.core.fileio import private_tempdir
from posenet.study import pipeline
from posenet.study.config import TrainConfig, check_config
from posenet.study.features import backbone_features, feature_batches
from posenet.study.losses import LOSSES
from posenet.study.metrics import study_metrics
from posenet.study.nets import frozen
from posenet.training.registry import MODELS, build_model
from posenet.training.runs import CONFIG, Run
from posenet.training.strategy import make_strategy

ORIGINAL_EPOCHS = (50, 30)  # the original: 50 epochs, then 30 at a 5x lower rate
ORIGINAL_DECAY = 5.0
COSINE_FLOOR = 0.05  # "cosine" ends at 5 % of the initial rate
IMAGE_SAMPLES = 6  # validation crops drawn in TensorBoard each epoch


# --- schedule, model ---------------------------------------------------------------------

def learning_rate_schedule(config: TrainConfig) -> Callable[[int, float], float]:
    """Epoch -> learning rate: constant, the original's step down by 5x after 50 of 80 epochs,
    or a cosine decay to COSINE_FLOOR of the rate over the run (for short budgets)."""
    if config.schedule == "cosine":
        span = max(config.epochs - 1, 1)
        return lambda epoch, lr=None: config.learning_rate * (
            COSINE_FLOOR + (1.0 - COSINE_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * min(epoch, span) / span)))
    boundary = round(config.epochs * ORIGINAL_EPOCHS[0] / sum(ORIGINAL_EPOCHS))
    if config.schedule == "constant":
        boundary = config.epochs
    return lambda epoch, lr=None: config.learning_rate / (ORIGINAL_DECAY if epoch >= boundary else 1.0)


def compile_model(model: keras.Model, config: TrainConfig) -> None:
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=LOSSES[config.loss],
                  metrics=study_metrics())


def build(config: TrainConfig) -> tuple[keras.Model, keras.Model]:
    """(network, the part that is fitted): the whole network, or a frozen backbone's head alone.

    The fitted part comes compiled; call this inside the distribution strategy's scope.
    """
    network = build_model(config.model, config.net)
    fitted = network.get_layer(frozen.HEAD) if wants_cache(config, network) else network
    compile_model(fitted, config)
    return network, fitted


def wants_cache(config: TrainConfig, network: keras.Model) -> bool:
    """Whether to fit the head on cached backbone features: asked for, or by default when possible."""
    cacheable, trainable_from = frozen.is_frozen(network), config.net.trainable_from
    if config.cache_features and not cacheable:
        raise PosenetError(f"--cache-features: only a fully frozen backbone (C_RESNET with --trainable-from none, "
                           f"C_MOBILENET) can cache its features, not {config.model}"
                           + (f" with --trainable-from {trainable_from}" if trainable_from else ""))
    return cacheable if config.cache_features is None else config.cache_features

# --- callbacks ----------------------------------------------------------------------------
def draw_axes(image: np.ndarray, rotvec: np.ndarray, thickness: int) -> None:
    """Draw the head's axes (x red, y green, z blue) for a rotation vector at the image centre."""
    size = image.shape[0]
    draw.draw_axes(image, geometry.rotvec_to_quat(rotvec), (size / 2.0, size / 2.0), 0.4 * size, thickness)


class AxesImages(keras.callbacks.Callback):
    """Each epoch: validation crops with true (thin) and predicted (thick) axes, as tf.summary.image."""

    DISPLAY = 160  # pixels; small study inputs are enlarged so the axes stay readable

    def __init__(self, log_dir: Path, crops: np.ndarray, inputs: np.ndarray, rotvecs: np.ndarray,
                 network: keras.Model):
        super().__init__()
        self.crops, self.inputs, self.rotvecs, self.network = crops, inputs, rotvecs, network
        self.writer = tf.summary.create_file_writer(str(log_dir))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        predicted = np.asarray(self.network(self.inputs, training=False))
        size = max(self.DISPLAY, self.crops.shape[1])
        panels = []
        for crop, true, pred in zip(self.crops, self.rotvecs, predicted):
            panel = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
            draw_axes(panel, true, thickness=1)
            draw_axes(panel, pred, thickness=3)
            panels.append(panel)
        with self.writer.as_default():
            tf.summary.image("validation_axes (thin: true, thick: predicted)", np.stack(panels), step=epoch,
                             max_outputs=len(panels))
        self.writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.writer.close()


def axes_images(config: TrainConfig, network: keras.Model, val: h5format.Dataset) -> AxesImages:
    """The image callback on the first validation samples, preprocessed as the pipeline does."""
    pipe = config.pipeline
    count = min(IMAGE_SAMPLES, len(val))
    rois = pipeline.face_boxes(val, pipe)[:count]
    images = [val.image(i) for i in range(count)]
    crops = np.stack([pipeline.crop_letterbox(im, roi, pipe.input_size, pipe.margin)[0]
                      for im, roi in zip(images, rois)])
    inputs = np.stack([pipeline.preprocess_numpy(im, roi, pipe) for im, roi in zip(images, rois)])
    rotvecs = geometry.quat_to_rotvec(np.asarray(val["quats"][:count]))
    return AxesImages(config.run_dir / "images", crops, inputs, rotvecs, network)


def write_hparams(config: TrainConfig) -> None:
    """HParams dashboard: the experiment config in `logdir`, this run's values in its directory."""
    from tensorboard.plugins.hparams import api as hp

    pipe = config.pipeline
    values = {"model": config.model, "loss": config.loss, "learning_rate": config.learning_rate,
              "input_size": pipe.input_size, "epochs": config.epochs, "schedule": config.schedule,
              "batch_size": pipe.batch_size, "augment": pipe.augment,
              "trainable_from": str(config.net.trainable_from), "data": Path(config.train).name}
    hparams = [hp.HParam("model", hp.Discrete(sorted(MODELS))), hp.HParam("loss", hp.Discrete(sorted(LOSSES))),
               *(hp.HParam(name) for name in values if name not in ("model", "loss"))]
    metrics = [hp.Metric("epoch_loss", group="train", display_name="train loss"),
               hp.Metric("epoch_loss", group="validation", display_name="val loss"),
               *(hp.Metric(f"epoch_{name}", group="validation", display_name=f"val {name}")
                 for name in ("geodesic_deg", "acc10", "mae_yaw", "mae_pitch", "mae_roll"))]
    with tf.summary.create_file_writer(str(config.logdir)).as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)
    with tf.summary.create_file_writer(str(config.run_dir)).as_default():
        hp.hparams(values, trial_id=config.run_dir.name)

def callbacks(config: TrainConfig, network: keras.Model, val: h5format.Dataset) -> list[keras.callbacks.Callback]:
    """The standard callbacks. The backup comes last: an interruption before it re-runs the epoch
    (its history row is then replaced), so no epoch is ever skipped."""
    run_dir = config.run_dir
    return [
        keras.callbacks.LearningRateScheduler(learning_rate_schedule(config)),
        keras.callbacks.TensorBoard(str(run_dir), write_graph=False),
        *Run(run_dir).checkpoint_callbacks(network, resume=True),
        axes_images(config, network, val),
        Run(run_dir).backup_callback(),  # a damaged state falls back to its copy
    ]


# --- the run ------------------------------------------------------------------------------

RESUME_KEYS = ("model", "loss", "input_size", "train", "val")  # what `posenet train` must keep to resume a run


def changed_setting(run_dir: Path, config: TrainConfig,
                    keys: Sequence[str] | None = None) -> tuple[str, object, object] | None:
    """(key, stored, asked) for the first of `keys` (default: every setting the run stored)
    whose value in the run's config.json differs from `config`'s; None when all agree."""
    stored = Run(run_dir).config()["train"]
    asked = config.settings()
    for key in keys if keys is not None else [key for key in asked if key in stored]:
        if stored.get(key) != asked[key]:
            return key, stored.get(key), asked[key]
    return None


def prepare_run_dir(config: TrainConfig) -> Run:
    """Create the run directory, or check that an unfinished one belongs to the same run."""
    run = Run(config.run_dir)
    run.check_unfinished()
    if (run.path / CONFIG).is_file():
        changed = changed_setting(run.path, config, RESUME_KEYS)
        if changed:
            key, stored, asked = changed
            raise PosenetError(f"{run.path}: holds an unfinished run with {key}={stored!r}, "
                               f"not {asked!r}; choose another --run-name")
    run.write_config({"train": config.settings(), "pipeline": asdict(config.pipeline)})
    return run


def fit(config: TrainConfig, network: keras.Model, fitted: keras.Model, train_data: h5format.Dataset,
        val_data: h5format.Dataset, extra: Sequence[keras.callbacks.Callback]) -> None:
    """Fit the whole network on the pipeline, or a frozen backbone's head on cached backbone features.

    An image TensorFlow cannot decode becomes one line naming its file, not a traceback from fit.
    """
    try:
        fit_datasets(config, network, fitted, train_data, val_data, extra)
    except tf.errors.InvalidArgumentError as error:
        located = undecodable_image(error, {config.train: train_data, config.val: val_data})
        if located is None:
            raise
        raise located from None


def fit_datasets(config: TrainConfig, network: keras.Model, fitted: keras.Model, train_data: h5format.Dataset,
                 val_data: h5format.Dataset, extra: Sequence[keras.callbacks.Callback]) -> None:
    """`fit` itself: build the training and validation batches and run keras' fit."""
    if fitted is network:
        train = pipeline.make_dataset(train_data, config.pipeline, training=True)
        val = pipeline.make_dataset(val_data, config.pipeline, training=False)
    else:
        if config.pipeline.augment:
            print(f"note: backbone features are cached (frozen {config.model} backbone), so augmentation is off; "
                  "pass --no-cache-features to augment")
        backbone = frozen.backbone_of(network)
        train = feature_batches(*backbone_features(backbone, train_data, config), config, training=True)
        val = feature_batches(*backbone_features(backbone, val_data, config), config, training=False)
    fitted.fit(train, validation_data=val, epochs=config.epochs, verbose=2, shuffle=False,
               callbacks=[*callbacks(config, network, val_data), *extra])


def undecodable_image(error: tf.errors.OpError, datasets: dict[str, h5format.Dataset]) -> PosenetError | None:
    """The one-line error for the first image (in these files, in order) that TensorFlow cannot
    decode, quoting `error`'s first line; None when every image decodes (another problem).

    Run only after a failure: it decodes every image once, to name the file the fit cannot tell.
    """
    text = (error.message or str(error)).strip()
    reason = text.splitlines()[0] if text else type(error).__name__
    for path, dataset in datasets.items():
        for index, buffer in enumerate(dataset["images"]):
            try:
                tf.io.decode_image(np.asarray(buffer, np.uint8).tobytes(), channels=3, expand_animations=False)
            except tf.errors.InvalidArgumentError:
                return PosenetError(f"{path}: cannot decode an image (sample {index}: {reason})")
    return None


def train(config: TrainConfig, extra_callbacks: Sequence[keras.callbacks.Callback] = ()) -> Path:
    """Train one run (resuming it if it was interrupted) and return its directory.

    `extra_callbacks` run after the standard ones (tests use one to simulate an interruption).
    """
    check_config(config)
    train_data, val_data = pipeline.load_split(config.train), pipeline.load_split(config.val)  # read once
    keras.utils.set_random_seed(config.pipeline.seed)
    with make_strategy(config.distribute).scope():
        network, fitted = build(config)  # bad weights fail here, before the run directory exists
    # a failure before the first saved epoch removes the new run folder; autograph's files go with the fit
    with Run(config.run_dir).attempt(), private_tempdir("autograph"):
        run = prepare_run_dir(config)
        run.check_resume_state()  # a state damaged by a kill: its copy, or one line offering to start over
        write_hparams(config)
        start = time.perf_counter()
        fit(config, network, fitted, train_data, val_data, extra_callbacks)
        run.finish({"parameters": network.count_params(), "train_seconds": round(time.perf_counter() - start, 1)},
                   best_columns=("val_geodesic_deg", "val_acc10"))
    return run.path
