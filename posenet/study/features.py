"""The feature cache of a frozen backbone (C_RESNET, C_MOBILENET): features computed once per dataset, on disk.

A fully frozen backbone gives the same features every epoch, so they are computed once (as
.npy memory maps keyed by the net, the file's content hash, input size, preprocessing and weights)
and the head alone trains on them, about 14x faster on a CPU. Never pickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from posenet.core import h5format
from posenet.core.fileio import atomic_output, file_digest
from posenet.study import pipeline
from posenet.study.config import TrainConfig


def feature_cache_path(path: str | Path, config: TrainConfig) -> Path:
    """Where the backbone features of `path` are cached for this preprocessing and these weights
    (a .npy array; the labels sit beside it, `labels_path`).

    Random weights (None) differ per seed, so the seed is part of the key then.
    """
    pipe, given = config.pipeline, config.net.weights
    weights = given if given in (None, "imagenet") else file_digest(given)
    key = json.dumps([config.model, file_digest(path), pipe.input_size, pipe.normalization, pipe.margin,
                      pipe.boxes, weights, pipe.seed if given is None else None])
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
    batches = pipeline.make_dataset(dataset, config.pipeline, training=False)
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
        indices = indices.shuffle(len(labels), seed=config.pipeline.seed, reshuffle_each_iteration=True)

    def gather(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = np.sort(batch)  # ascending reads from the memmap
        return np.asarray(features[batch], np.float32), np.asarray(labels[batch], np.float32)

    def load(batch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        feature, label = tf.numpy_function(gather, [batch], (tf.float32, tf.float32), stateful=False)
        feature.set_shape((None, *features.shape[1:]))
        label.set_shape((None, *labels.shape[1:]))
        return feature, label

    return indices.batch(config.pipeline.batch_size).map(load).prefetch(tf.data.AUTOTUNE)
