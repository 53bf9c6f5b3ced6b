"""`posenet train`: fit one study net (C1_NET, C2_NET, C_RESNET) on one loss, with full logging.

A run lives in `logdir/run_name/`:

    config.json     the TrainConfig and the PipelineConfig (evaluation preprocesses the same way)
    best.keras      the model with the lowest val_loss so far
    last.keras      the model after the last finished epoch
    history.csv     one row per epoch (loss, val_loss and every metric)
    train/, validation/, images/   TensorBoard events: scalars, and validation crops with the
                    true (thin) and predicted (thick) head axes drawn; the HParams session is
                    written in the run directory, the experiment config in `logdir`
    backup/         keras BackupAndRestore state: rerunning an interrupted run resumes at the
                    next epoch; removed when the fit completes
    done            written last, with the final figures: the run finished

A C_RESNET whose backbone is fully frozen computes the backbone features once per dataset
(cached under `logdir/feature_cache` as .npy files written and read as memory maps, keyed by
the file's content hash, input size, preprocessing and weights) and trains the head alone on
them; no augmentation is possible in that mode. The saved checkpoints are still the whole network, image to rotation vector.
Models whose registry task is not "rotvec" (the tracker's) are trained by
`posenet.train_tracker`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import cv2
import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from data_tools import h5format, show
from posenet import geometry, pipeline
from posenet.errors import PosenetError
from posenet.fileio import atomic_output
from posenet.losses import LOSSES
from posenet.metrics import study_metrics
from posenet.models import c_resnet
from posenet.models.registry import MODELS, ModelConfig, build_model, builder_module, model_entry

SCHEDULES = ("constant", "original", "cosine")
ORIGINAL_EPOCHS = (50, 30)  # the original: 50 epochs, then 30 at a 5x lower rate
ORIGINAL_DECAY = 5.0
COSINE_FLOOR = 0.05  # "cosine" ends at 5 % of the initial rate
STRATEGIES = ("mirrored", "multiworker")
IMAGE_SAMPLES = 6  # validation crops drawn in TensorBoard each epoch
DONE, CONFIG, HISTORY, BEST, LAST, BACKUP = "done", "config.json", "history.csv", "best.keras", "last.keras", "backup"


@dataclass
class TrainConfig:
    """Everything one training run depends on (written to config.json)."""

    model: str = "C1_NET"
    loss: str = "mse"
    train: str = ""
    val: str = ""
    logdir: str = "runs"
    run_name: str | None = None  # default "<model>-<loss>"
    epochs: int = 10  # total; the "original" schedule splits them 50:30
    learning_rate: float = 1e-4
    batch_size: int = pipeline.PipelineConfig.batch_size
    input_size: int = pipeline.PipelineConfig.input_size
    schedule: str = "constant"
    weights: str | None = None  # C_RESNET backbone: None, "imagenet" (Keras cache only) or a file
    trainable_from: str | None = None  # C_RESNET: None = frozen backbone, or "conv4_block4"
    cache_features: bool | None = None  # None = auto: yes for a fully frozen C_RESNET
    distribute: str | None = None  # None, "mirrored" or "multiworker"
    seed: int = pipeline.PipelineConfig.seed
    # input pipeline settings, flat like the CLI flags; defaults are the pipeline's own
    augment: bool = pipeline.PipelineConfig.augment
    rotation_deg: float = pipeline.PipelineConfig.rotation_deg
    flip: bool = pipeline.PipelineConfig.flip
    photometric: bool = pipeline.PipelineConfig.photometric
    margin: float = pipeline.PipelineConfig.margin
    boxes: str = pipeline.PipelineConfig.boxes
    normalization: str = pipeline.PipelineConfig.normalization  # the original's preprocessing, for every net

    @property
    def run_dir(self) -> Path:
        return Path(self.logdir) / (self.run_name or f"{self.model}-{self.loss}")


def pipeline_config(config: TrainConfig) -> pipeline.PipelineConfig:
    """The input pipeline settings of a run (also what evaluation must use)."""
    shared = {f.name for f in fields(pipeline.PipelineConfig)} & {f.name for f in fields(TrainConfig)}
    return pipeline.PipelineConfig(**{name: getattr(config, name) for name in shared})


def check_config(config: TrainConfig) -> None:
    """One clear line for each bad choice, before anything slow happens."""
    if model_entry(config.model).task != "rotvec":
        raise PosenetError(f"--model {config.model}: a tracker model; train it with posenet.train_tracker")
    choices = {"loss": (config.loss, tuple(LOSSES)), "schedule": (config.schedule, SCHEDULES),
               "distribute": (config.distribute, (None, *STRATEGIES))}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise PosenetError(f"--{name} {value}: choose from {', '.join(str(a) for a in allowed if a)}")
    if config.epochs < 1 or config.batch_size < 1 or config.learning_rate <= 0:
        raise PosenetError("--epochs, --batch-size and --lr must be positive")
    for name in ("train", "val"):
        if not Path(getattr(config, name)).is_file():
            raise PosenetError(f"{getattr(config, name) or '(none)'}: no such {name} dataset file (--{name})")
    if Path(config.train).resolve() == Path(config.val).resolve():
        raise PosenetError(f"{config.val}: the validation file is the training file (leakage)")
    if config.model == "C_RESNET" and config.input_size < c_resnet.MIN_INPUT_SIZE:
        raise PosenetError(f"--input-size {config.input_size}: C_RESNET needs at least "
                           f"{c_resnet.MIN_INPUT_SIZE} pixels")
    pipeline_config(config)  # bad --boxes, --normalization, ... fail here, before any run directory exists


# --- distribution, schedule, model --------------------------------------------------------

def make_strategy(name: str | None) -> tf.distribute.Strategy:
    """The tf.distribute strategy: default (one device), all local devices, or multi-worker (TF_CONFIG)."""
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


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
    """(network, the part that is fitted): the whole network, or a frozen C_RESNET's head alone.

    The fitted part comes compiled; call this inside the distribution strategy's scope.
    """
    model_config = ModelConfig(input_size=config.input_size, weights=config.weights,
                               trainable_from=config.trainable_from)
    network = build_model(config.model, model_config)
    fitted = network.get_layer(c_resnet.HEAD) if wants_cache(config, network) else network
    compile_model(fitted, config)
    return network, fitted


def wants_cache(config: TrainConfig, network: keras.Model) -> bool:
    """Whether to fit the head on cached backbone features: asked for, or by default when possible."""
    frozen = c_resnet.is_frozen(network)
    if config.cache_features and not frozen:
        raise PosenetError(f"--cache-features: only a fully frozen C_RESNET (--trainable-from none) can cache "
                           f"backbone features, not {config.model}"
                           + (f" with --trainable-from {config.trainable_from}" if config.trainable_from else ""))
    return frozen if config.cache_features is None else config.cache_features


# --- feature cache (fully frozen C_RESNET) ------------------------------------------------

def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def feature_cache_path(path: str | Path, config: TrainConfig) -> Path:
    """Where the backbone features of `path` are cached for this preprocessing and these weights
    (a .npy array; the labels sit beside it, `labels_path`).

    Random weights (None) differ per seed, so the seed is part of the key then.
    """
    weights = config.weights if config.weights in (None, "imagenet") else file_digest(config.weights)
    key = json.dumps([file_digest(path), config.input_size, config.normalization, config.margin,
                      config.boxes, weights, config.seed if config.weights is None else None])
    return Path(config.logdir) / "feature_cache" / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"


def labels_path(cache: Path) -> Path:
    """The rotation vectors that go with the features cached at `cache`."""
    return cache.with_name(cache.stem + ".labels.npy")


def backbone_features(backbone: keras.Model, dataset: h5format.Dataset,
                      config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(features, rotvecs) of every sample of `dataset` (read from a file), computed once and cached on disk.

    The features are a read-only memmap: at 20k images of 7x7x2048 float32 they are ~16 GB,
    so they are written batch by batch while extracted and never held in memory whole.
    """
    cache = feature_cache_path(dataset.path, config)
    if not (cache.is_file() and labels_path(cache).is_file()):
        cache.parent.mkdir(parents=True, exist_ok=True)
        extract_features(backbone, dataset, config, cache)
    return np.load(cache, mmap_mode="r", allow_pickle=False), np.load(labels_path(cache), allow_pickle=False)


def extract_features(backbone: keras.Model, dataset: h5format.Dataset, config: TrainConfig, cache: Path) -> None:
    """Run the backbone over `dataset` once, writing the features straight into a .npy memmap
    (renamed onto `cache` only when complete; the labels file is written first)."""
    batches = pipeline.make_dataset(dataset, pipeline_config(config), training=False)
    extract = tf.function(lambda images: backbone(images, training=False))  # one device, also under a strategy
    shape = (len(dataset), *backbone.output.shape[1:])
    labels = np.zeros((len(dataset), 3), np.float32)
    with atomic_output(cache) as tmp:
        features = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        start = 0
        for images, rotvecs in tqdm(batches, desc=f"backbone features {dataset.path.name}", unit="batch"):
            stop = start + len(rotvecs)
            features[start:stop] = extract(images).numpy()
            labels[start:stop] = rotvecs.numpy()
            start = stop
        features.flush()
        del features
        with atomic_output(labels_path(cache)) as labels_tmp, open(labels_tmp, "wb") as handle:
            np.save(handle, labels, allow_pickle=False)


def feature_batches(features: np.ndarray, labels: np.ndarray, config: TrainConfig, training: bool) -> tf.data.Dataset:
    """Batches of (features, rotvecs) read from the (memory-mapped) arrays by index, so only about
    one batch is in memory; training shuffles the indices with the seed, anew each epoch."""
    indices = tf.data.Dataset.range(len(labels))
    if training:
        indices = indices.shuffle(len(labels), seed=config.seed, reshuffle_each_iteration=True)

    def gather(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.sort(batch)  # ascending reads from the memmap
        return np.asarray(features[batch], np.float32), np.asarray(labels[batch], np.float32)

    def load(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        feature, label = tf.numpy_function(gather, [batch], (tf.float32, tf.float32), stateful=False)
        feature.set_shape((None, *features.shape[1:]))
        label.set_shape((None, *labels.shape[1:]))
        return feature, label

    return indices.batch(config.batch_size).map(load).prefetch(tf.data.AUTOTUNE)


# --- callbacks ----------------------------------------------------------------------------

class CheckpointOf(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that saves `target` (the whole network) while another model is fitted
    (the C_RESNET head on cached features); the two share their head layers."""

    def __init__(self, target: keras.Model, filepath: Path, **kwargs):
        super().__init__(str(filepath), **kwargs)
        self.target = target

    def set_model(self, model: keras.Model) -> None:
        super().set_model(self.target)


def draw_axes(image: np.ndarray, rotvec: np.ndarray, thickness: int) -> None:
    """Draw the head's axes (x red, y green, z blue) for a rotation vector at the image centre."""
    size = image.shape[0]
    show.draw_axes(image, geometry.rotvec_to_quat(rotvec), (size / 2.0, size / 2.0), 0.4 * size, thickness)


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
    pipe = pipeline_config(config)
    count = min(IMAGE_SAMPLES, len(val))
    rois = pipeline.face_boxes(val, pipe)[:count]
    images = [val.image(i) for i in range(count)]
    crops = np.stack([pipeline.crop_letterbox(im, roi, config.input_size, config.margin)[0]
                      for im, roi in zip(images, rois)])
    inputs = np.stack([pipeline.preprocess_numpy(im, roi, pipe) for im, roi in zip(images, rois)])
    rotvecs = geometry.quat_to_rotvec(np.asarray(val["quats"][:count]))
    return AxesImages(config.run_dir / "images", crops, inputs, rotvecs, network)


def write_hparams(config: TrainConfig) -> None:
    """HParams dashboard: the experiment config in `logdir`, this run's values in its directory."""
    from tensorboard.plugins.hparams import api as hp

    values = {"model": config.model, "loss": config.loss, "learning_rate": config.learning_rate,
              "input_size": config.input_size, "epochs": config.epochs, "schedule": config.schedule,
              "batch_size": config.batch_size, "augment": config.augment,
              "trainable_from": str(config.trainable_from), "data": Path(config.train).name}
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


def best_so_far(run_dir: Path) -> float:
    """Lowest val_loss in an interrupted run's history (so a resumed ModelCheckpoint keeps it)."""
    rows = read_history(run_dir)
    return min((float(row["val_loss"]) for row in rows), default=float("inf"))


def callbacks(config: TrainConfig, network: keras.Model, val: h5format.Dataset) -> list[keras.callbacks.Callback]:
    """The standard callbacks. The backup comes last: an interruption before it re-runs the epoch
    (its history row is then replaced), so no epoch is ever skipped."""
    run_dir = config.run_dir
    return [
        keras.callbacks.LearningRateScheduler(learning_rate_schedule(config)),
        keras.callbacks.TensorBoard(str(run_dir), write_graph=False),
        CheckpointOf(network, run_dir / BEST, monitor="val_loss", save_best_only=True,
                     initial_value_threshold=best_so_far(run_dir)),
        CheckpointOf(network, run_dir / LAST),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY), append=True),
        axes_images(config, network, val),
        keras.callbacks.BackupAndRestore(str(run_dir / BACKUP)),
    ]


# --- the run ------------------------------------------------------------------------------

def read_history(run_dir: Path) -> list[dict[str, str]]:
    """history.csv rows, one per epoch (the last row wins if an epoch was logged twice)."""
    path = Path(run_dir) / HISTORY
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        rows = {row["epoch"]: row for row in csv.DictReader(handle) if row.get("epoch")}
    return sorted(rows.values(), key=lambda row: int(row["epoch"]))


RESUME_KEYS = ("model", "loss", "input_size", "train", "val")  # what `posenet train` must keep to resume a run


def changed_setting(run_dir: Path, config: TrainConfig,
                    keys: Sequence[str] | None = None) -> tuple[str, object, object] | None:
    """(key, stored, asked) for the first of `keys` (default: every setting the run stored)
    whose value in the run's config.json differs from `config`'s; None when all agree."""
    stored = read_config(run_dir)["train"]
    asked = asdict(config)
    for key in keys if keys is not None else [key for key in asked if key in stored]:
        if stored.get(key) != asked[key]:
            return key, stored.get(key), asked[key]
    return None


def prepare_run_dir(config: TrainConfig) -> Path:
    """Create the run directory, or check that an unfinished one belongs to the same run."""
    run_dir = config.run_dir
    if (run_dir / DONE).exists():
        raise PosenetError(f"{run_dir}: this run already finished; choose another --run-name or delete it")
    if (run_dir / CONFIG).is_file():
        changed = changed_setting(run_dir, config, RESUME_KEYS)
        if changed:
            key, stored, asked = changed
            raise PosenetError(f"{run_dir}: holds an unfinished run with {key}={stored!r}, "
                               f"not {asked!r}; choose another --run-name")
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(run_dir / CONFIG) as tmp:
        tmp.write_text(json.dumps({"train": asdict(config), "pipeline": asdict(pipeline_config(config))}, indent=2))
    return run_dir


def fit(config: TrainConfig, network: keras.Model, fitted: keras.Model, train_data: h5format.Dataset,
        val_data: h5format.Dataset, extra: Sequence[keras.callbacks.Callback]) -> None:
    """Fit the whole network on the pipeline, or a frozen C_RESNET's head on cached backbone features.

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
        pipe = pipeline_config(config)
        train = pipeline.make_dataset(train_data, pipe, training=True)
        val = pipeline.make_dataset(val_data, pipe, training=False)
    else:
        if config.augment:
            print("note: backbone features are cached (frozen C_RESNET), so augmentation is off; "
                  "pass --no-cache-features to augment")
        backbone = network.get_layer(c_resnet.BACKBONE)
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
    keras.utils.set_random_seed(config.seed)
    with make_strategy(config.distribute).scope():
        network, fitted = build(config)  # bad weights fail here, before the run directory exists
    run_dir = prepare_run_dir(config)
    write_hparams(config)
    fit(config, network, fitted, train_data, val_data, extra_callbacks)
    rows = read_history(run_dir)
    best = min(rows, key=lambda row: float(row["val_loss"]))
    summary = {"epochs": len(rows), "best_epoch": int(best["epoch"]), "best_val_loss": float(best["val_loss"]),
               "val_geodesic_deg": float(best["val_geodesic_deg"]), "val_acc10": float(best["val_acc10"]),
               "parameters": network.count_params()}
    with atomic_output(run_dir / HISTORY) as tmp:  # drop rows an interruption logged twice
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    with atomic_output(run_dir / DONE) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return run_dir


def load_run(run_dir: str | Path) -> tuple[keras.Model, dict]:
    """The best (else last) checkpoint of a run and its config.json ({"train": ..., "pipeline": ...})."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise PosenetError(f"{run_dir}: no such run directory")
    checkpoint = next((run_dir / name for name in (BEST, LAST) if (run_dir / name).is_file()), None)
    if checkpoint is None:
        raise PosenetError(f"{run_dir}: no checkpoint ({BEST} or {LAST}); train it first with posenet train")
    config = read_config(run_dir)
    try:
        builder_module(config["train"]["model"])  # custom layers must be registered before loading
        model = keras.models.load_model(checkpoint, compile=False)
    except (OSError, ValueError, KeyError) as error:
        raise PosenetError(f"{checkpoint}: cannot load the run ({error})") from None
    return model, config


def read_config(run_dir: Path) -> dict:
    """A run's config.json, checked to hold the "train" settings; one line naming the file otherwise."""
    path = run_dir / CONFIG
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PosenetError(f"{path}: cannot read the run's settings ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("train"), dict):
        raise PosenetError(f"{path}: no 'train' settings (not a config.json written by posenet train)")
    return config


# --- benchmark ----------------------------------------------------------------------------

class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds = time.perf_counter() - self.start


def _bench_file(path: Path, count: int) -> Path:
    """A small dataset of smooth random images (the content does not matter for timing)."""
    rng = np.random.default_rng(0)
    images = [h5format.encode_image(cv2.GaussianBlur(rng.integers(0, 255, (160, 160, 3), np.uint8), (7, 7), 0))
              for _ in range(count)]
    quats = geometry.rotvec_to_quat(rng.normal(0, 0.4, (count, 3)))
    return h5format.write_dataset(path, {"images": images, "quats": quats.astype(np.float32),
                                         "rois": np.tile([[20.0, 20.0, 140.0, 140.0]], (count, 1))})


def benchmark_feature_cache(quick: bool) -> list[str]:
    """Seconds per epoch of a frozen C_RESNET: recomputing the backbone vs the head on cached features.

    Each is timed on its second epoch (the first includes tracing); same samples, batch and size.
    The ratio has a ceiling near 14x on a CPU: training the per-position Dense(1024) head costs
    3 x 2048 x 1024 MACs per feature position (forward, weight and input gradients; the input
    gradient feeds the head's BatchNorm), about 1/14 of ResNet50's forward pass at any input size.
    """
    import tempfile

    count, size = (128, 128) if quick else (256, 224)
    with tempfile.TemporaryDirectory() as tmp:
        data = pipeline.load_split(_bench_file(Path(tmp) / "bench.h5", count))
        config = TrainConfig(model="C_RESNET", logdir=tmp, input_size=size, cache_features=False)
        model, _ = build(config)
        pipe = pipeline_config(config)
        timer = EpochTimer()
        model.fit(pipeline.make_dataset(data, pipe, training=True), epochs=2, callbacks=[timer], verbose=0,
                  shuffle=False)
        recomputed = timer.seconds
        start = time.perf_counter()
        features = backbone_features(model.get_layer(c_resnet.BACKBONE), data, config)
        extraction = time.perf_counter() - start
        head = model.get_layer(c_resnet.HEAD)
        compile_model(head, config)
        head.fit(feature_batches(*features, config, training=True), epochs=2, callbacks=[timer], verbose=0,
                 shuffle=False)
        cached = timer.seconds
    ratio = recomputed / cached
    print(f"frozen C_RESNET, {count} samples at {size} px: recomputed {recomputed:.2f} s/epoch, cached "
          f"{cached:.3f} s/epoch, ratio {ratio:.0f}x (target >= 20x); one-off extraction {extraction:.2f} s")
    return [
        f"{count} samples, {size} px, batch 32, random backbone weights (timing only).",
        "",
        "| frozen C_RESNET epoch | seconds |",
        "|---|---|",
        f"| backbone recomputed every epoch | {recomputed:.2f} |",
        f"| head on cached features | {cached:.3f} |",
        f"| one-off feature extraction | {extraction:.2f} |",
        "",
        f"Ratio: **{ratio:.0f}x** (target >= 20x). Ceiling about 14x: training the per-position Dense(1024) "
        "head costs 3 x 2048 x 1024 MACs per feature position, about 1/14 of the ResNet50 forward pass.",
    ]


# --- command line -------------------------------------------------------------------------

def _optional(value: str) -> str | None:
    return None if value.lower() == "none" else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("--model", required=True, help=f"network: {', '.join(MODELS)}")
    parser.add_argument("--loss", default=defaults.loss, help=f"training loss: {', '.join(LOSSES)}")
    parser.add_argument("--train", required=True, help="training split (HDF5)")
    parser.add_argument("--val", required=True, help="validation split (HDF5), never seen in training")
    parser.add_argument("--logdir", default=defaults.logdir, help="TensorBoard / runs directory")
    parser.add_argument("--run-name", default=None, help="run directory name (default: MODEL-LOSS)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="total epochs")
    parser.add_argument("--lr", type=float, default=defaults.learning_rate, help="Adam learning rate")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--input-size", type=int, default=defaults.input_size, help="square input side, pixels")
    parser.add_argument("--schedule", default=defaults.schedule,
                        help="constant; original (the rate drops 5x after 50/80 of the epochs); or cosine (decays to 5%% of --lr)")
    parser.add_argument("--weights", type=_optional, default=None,
                        help="C_RESNET backbone: none, imagenet (from the Keras cache; never downloads) or a .h5 file")
    parser.add_argument("--trainable-from", type=_optional, default=None,
                        help="C_RESNET: none (frozen backbone) or conv4_block4 (the original's partial unfreeze)")
    parser.add_argument("--cache-features", action=argparse.BooleanOptionalAction, default=None,
                        help="train a frozen C_RESNET's head on cached backbone features (default: when frozen)")
    parser.add_argument("--distribute", default=None, help="tf.distribute strategy: mirrored or multiworker")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--augment", action="store_true", help="in-plane rotation, mirror and photometric jitter")
    parser.add_argument("--rotation-deg", type=float, default=defaults.rotation_deg, help="max in-plane rotation")
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="no mirror augmentation")
    parser.add_argument("--no-photometric", dest="photometric", action="store_false", help="no colour jitter")
    parser.add_argument("--margin", type=float, default=defaults.margin, help="crop margin, share of the box side")
    parser.add_argument("--boxes", default=defaults.boxes, help="face boxes: file (rois) or dlib")
    parser.add_argument("--normalization", default=defaults.normalization, help="resnet (caffe-style) or unit")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return TrainConfig(**values, learning_rate=args.lr)


def run(args: argparse.Namespace) -> None:
    if model_entry(args.model).task != "rotvec":
        from posenet import train_tracker

        return train_tracker.run(args)
    run_dir = train(config_from_args(args))
    done = json.loads((run_dir / DONE).read_text())
    print(f"trained {args.model} ({args.loss}): {run_dir} (best val_loss {done['best_val_loss']:.4f} at epoch "
          f"{done['best_epoch'] + 1}/{done['epochs']}, val geodesic {done['val_geodesic_deg']:.1f} deg, "
          f"acc@10 {done['val_acc10']:.1%})")
