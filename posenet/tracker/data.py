"""tf.data for the tracker's nets: crops and frames exactly as the tracker feeds them.

Pose net. Each sample (an HDF5 face image with quats, coords, rois, pt3d_68) becomes the
patch the tracker would cut (`posenet.tracker.contract.crop_patch`: a square of side
1.05 max(w, h) around a box, INTER_AREA to 129 x 129) with labels in that patch's units:
- mirror (x -> W - x, iBUG re-indexing, quaternion (qx, -qy, -qz, qw)) and in-plane rotation
  about the face centre (Rz(a) R; points through the same affine; the box becomes the
  bounding box of the ellipse inscribed in the rotated box, so its size does not grow);
- crop jitter: the tracker's box is never exact, so the patch box is the face box shifted
  (normal, `shift` x side) and scaled (log-normal, `scale`);
- photometric noise (gain, offset, gamma, blur, sensor noise) on the uint8 patch;
- the tracker's brightness normalisation, in TensorFlow (`normalize_brightness_tf`, the
  twin of `contract.normalize_brightness`).
Targets: quat (4), pos_size (3), box (4), keypoints (68, 3), keypoint_weights (68,)
(1 for points inside the patch).

Localizer. A scene frame (any size, resized to 288 x 224, INTER_AREA) with a zoom window that
keeps the face whole, a mirror and photometric noise, normalised as pixel / 255 - 0.5; target
`logit_box` = (hasface, box x0, y0, x1, y1 in [-1, 1] over the frame; zeros without a face).

Geometry and photometry run in numpy/OpenCV inside `tf.numpy_function`, in parallel; each
sample draws from its own generator seeded by `tf.data.Dataset.random(seed)`, so a seed gives
the same stream on every run and a fresh one every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from posenet.core import geometry, h5format, transforms
from posenet.core.errors import PosenetError
from posenet.tracker import contract

POSE_FIELDS = ("quats", "coords", "rois", "pt3d_68")
LOCALIZER_FIELDS = ("rois",)
NUM_KEYPOINTS = 68
FRAME_H, FRAME_W = contract.LOCALIZER_INPUT_HW
LOCALIZER_MAX_ZOOM = 1.4  # the zoom window is at least 1 / this of the frame


@dataclass(frozen=True)
class TrackerDataConfig:
    """Batching and augmentation of the tracker's training data (augmentation only when training)."""

    batch_size: int = 32
    seed: int = 0
    shift: float = 0.08  # std of the patch-box centre shift, in face-box sides
    scale: float = 0.12  # std of the log of the patch-box size factor
    rotation_deg: float = 30.0  # in-plane angle drawn uniformly in [-r, r]
    mirror: bool = True
    photometric: bool = True


# --- brightness normalisation (TF twin of contract.normalize_brightness) -----------------------

def normalize_brightness_tf(gray: tf.Tensor) -> tf.Tensor:
    """uint8 patches (..., H, W, 1) -> float32, exactly as `contract.normalize_brightness`.

    The 90th percentile is the inverted-CDF quantile: the sorted value at ceil(0.9 n) - 1.
    """
    pixels = tf.cast(gray, tf.float32)
    flat = tf.reshape(pixels, tf.concat([tf.shape(pixels)[:-3], [-1]], 0))
    count = tf.shape(flat)[-1]
    rank = (count * contract.BRIGHTNESS_QUANTILE + 99) // 100 - 1  # ceil(q n / 100) - 1 in integers
    quantile = tf.gather(tf.sort(flat, axis=-1), rank, axis=-1)
    dark = contract.BRIGHTNESS_GAIN / tf.maximum(float(contract.BRIGHTNESS_FLOOR), quantile)
    scale = tf.where(quantile < contract.BRIGHTNESS_BRIGHT, dark, 1.0 / 255.0)
    return pixels * scale[..., None, None, None] + contract.INPUT_OFFSET


# --- shared numpy helpers -------------------------------------------------------------------

def decode_gray(buffer: np.ndarray, source: str) -> np.ndarray:
    """Encoded image buffer -> grey uint8 (H, W), converted from RGB as the tracker does."""
    return contract.to_gray(h5format.decode_image(buffer, source=source))


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random gain, offset, gamma, blur and sensor noise on a grey uint8 image (a new array)."""
    x = image.astype(np.float32) / 255.0
    x = np.clip(x * rng.uniform(0.25, 1.3) + rng.uniform(-0.1, 0.1), 0.0, 1.0) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.4, 1.5))
    x = x + rng.normal(0.0, rng.uniform(0.0, 0.04), x.shape).astype(np.float32)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def jitter_box(roi: np.ndarray, rng: np.random.Generator, shift: float, scale: float) -> np.ndarray:
    """The face box the tracker might hold: the true box shifted and rescaled at random."""
    center = (roi[:2] + roi[2:]) / 2.0
    extent = roi[2:] - roi[:2]
    center = center + rng.normal(0.0, shift, 2) * extent.max()
    half = extent * np.exp(rng.normal(0.0, scale)) / 2.0
    return np.concatenate([center - half, center + half])


def pose_targets(labels: dict[str, np.ndarray], patch_box: np.ndarray,
                 frame_wh: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Labels in the units of the patch cut around `patch_box` in a frame of `frame_wh`
    (`contract.crop_patch`: the same clamped centre and side)."""
    center, side = contract.patch_square(patch_box, frame_wh)
    half = side / 2.0
    points = np.array(labels["pt3d_68"], dtype=np.float64, copy=True)
    points[:, 2] -= points[:, 2].mean()  # depth relative to the face, not the camera
    keypoints = contract.image_to_patch(points, center, side)
    coords = labels["coords"]
    return {
        "quat": geometry.canonical_quat(labels["quats"]),
        "pos_size": np.concatenate([(coords[:2] - center) / half, coords[2:] / half]),
        "box": contract.image_to_patch(labels["rois"].reshape(2, 2), center, side).reshape(4),
        "keypoints": keypoints,
        "keypoint_weights": np.all(np.abs(keypoints[:, :2]) <= 1.0, axis=-1).astype(np.float64),
    }


def pose_sample(gray: np.ndarray, labels: dict[str, np.ndarray], config: TrackerDataConfig,
                rng: np.random.Generator | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One (uint8 patch, targets) pair; augmented when `rng` is given, the exact face box otherwise."""
    if rng is None:
        return contract.crop_patch(gray, labels["rois"]), pose_targets(labels, labels["rois"], contract.frame_size(gray))
    if config.mirror and rng.random() < 0.5:
        labels, gray = transforms.mirror_sample(labels, gray)
    if config.rotation_deg:
        angle = np.radians(rng.uniform(-config.rotation_deg, config.rotation_deg))
        center = (labels["rois"][:2] + labels["rois"][2:]) / 2.0  # the face-box centre
        labels, gray = transforms.rotate_sample(labels, gray, angle, center, border=cv2.BORDER_REFLECT_101)
    box = jitter_box(labels["rois"], rng, config.shift, config.scale)
    patch = contract.crop_patch(gray, box)
    if config.photometric:
        patch = photometric(patch, rng)
    return patch, pose_targets(labels, box, contract.frame_size(gray))


# --- localizer samples -------------------------------------------------------------------------

def zoom_window(width: int, height: int, roi: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """A random window (x0, y0, x1, y1) with the frame's aspect that keeps the face box whole."""
    zoom = rng.uniform(1.0, LOCALIZER_MAX_ZOOM)
    size = np.array([width, height]) / zoom
    low, high = np.zeros(2), np.array([width, height]) - size
    if roi is not None:  # the window must contain the face: x0 <= roi x0 and x0 + w >= roi x1
        low = np.maximum(low, roi[2:] - size)
        high = np.minimum(high, roi[:2])
    if np.any(low > high):
        return np.array([0.0, 0.0, width, height])
    origin = rng.uniform(low, high)
    return np.concatenate([origin, origin + size])


def localizer_sample(gray: np.ndarray, hasface: bool, roi: np.ndarray,
                     rng: np.random.Generator | None, config: TrackerDataConfig) -> tuple[np.ndarray, np.ndarray]:
    """One (uint8 288 x 224 frame, target (hasface, box in frame units)) pair."""
    height, width = gray.shape
    window = np.array([0, 0, width, height])
    if rng is not None:
        window = np.round(zoom_window(width, height, roi if hasface else None, rng)).astype(int)
    x0, y0, x1, y1 = window
    frame = cv2.resize(gray[y0:y1, x0:x1], (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA)
    scale = np.array([FRAME_W / (x1 - x0), FRAME_H / (y1 - y0)] * 2)
    box = (roi - np.array([x0, y0, x0, y0])) * scale
    if rng is not None and config.mirror and rng.random() < 0.5:
        frame, box = np.ascontiguousarray(frame[:, ::-1]), geometry.mirror_roi(box, FRAME_W)
    if rng is not None and config.photometric:
        frame = photometric(frame, rng)
    target = np.concatenate([[float(hasface)], contract.image_to_frame(box, FRAME_W, FRAME_H) if hasface else np.zeros(4)])
    return frame, target


# --- tf.data -------------------------------------------------------------------------------------

def _labels_at(dataset: h5format.Dataset, names: tuple[str, ...], index: int) -> dict[str, np.ndarray]:
    return {name: np.asarray(dataset[name][index], dtype=np.float64) for name in names}


def load(path: str | Path | h5format.Dataset, fields: tuple[str, ...]) -> h5format.Dataset:
    """Read a dataset file (every field) and check it has what a tracker net needs."""
    dataset = path if isinstance(path, h5format.Dataset) else h5format.read_dataset(path)
    missing = [name for name in fields if name not in dataset]
    if missing:
        raise PosenetError(f"{dataset.path}: field '{missing[0]}' is missing (a tracker net needs {', '.join(fields)})")
    if len(dataset) == 0:
        raise PosenetError(f"{dataset.path}: the dataset is empty")
    return dataset


def _indexed(count: int, config: TrackerDataConfig, training: bool) -> tf.data.Dataset:
    """(index, per-sample seed) pairs: shuffled and freshly seeded each epoch when training."""
    indices = tf.data.Dataset.range(count)
    if training:
        indices = indices.shuffle(count, seed=config.seed, reshuffle_each_iteration=True)
    return tf.data.Dataset.zip(indices, tf.data.Dataset.random(seed=config.seed))


def _finish(data: tf.data.Dataset, config: TrackerDataConfig, training: bool) -> tf.data.Dataset:
    return data.batch(config.batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


def pose_dataset(path: str | Path | h5format.Dataset, config: TrackerDataConfig, training: bool) -> tf.data.Dataset:
    """Batches of (patch (129, 129, 1) float32, {quat, pos_size, box, keypoints, keypoint_weights})."""
    dataset = load(path, POSE_FIELDS)
    source = str(dataset.path)

    def sample(index: np.int64, seed: np.int64):
        rng = np.random.default_rng(int(seed) & 0x7FFFFFFFFFFFFFFF) if training else None
        gray = decode_gray(dataset["images"][index], f"{source}[{index}]")
        patch, targets = pose_sample(gray, _labels_at(dataset, POSE_FIELDS, index), config, rng)
        return (patch, *(targets[name].astype(np.float32) for name in POSE_TARGETS))

    def to_tensors(index, seed):
        size = contract.POSE_INPUT_SIZE
        patch, *targets = tf.numpy_function(sample, [index, seed], [tf.uint8] + [tf.float32] * len(POSE_TARGETS))
        patch = tf.ensure_shape(patch, (size, size))[..., None]
        targets = {name: tf.ensure_shape(t, shape) for (name, shape), t in zip(POSE_TARGETS.items(), targets)}
        return normalize_brightness_tf(patch), targets

    data = _indexed(len(dataset), config, training).map(to_tensors, num_parallel_calls=tf.data.AUTOTUNE,
                                                        deterministic=True)
    return _finish(data, config, training)


POSE_TARGETS = {"quat": (4,), "pos_size": (3,), "box": (4,), "keypoints": (NUM_KEYPOINTS, 3),
                "keypoint_weights": (NUM_KEYPOINTS,)}


def localizer_dataset(path: str | Path | h5format.Dataset, config: TrackerDataConfig, training: bool) -> tf.data.Dataset:
    """Batches of (frame (224, 288, 1) float32, {"logit_box": (hasface, x0, y0, x1, y1)})."""
    dataset = load(path, LOCALIZER_FIELDS)
    source = str(dataset.path)
    hasface = np.asarray(dataset["hasface"], bool) if "hasface" in dataset else np.ones(len(dataset), bool)

    def sample(index: np.int64, seed: np.int64):
        rng = np.random.default_rng(int(seed) & 0x7FFFFFFFFFFFFFFF) if training else None
        gray = decode_gray(dataset["images"][index], f"{source}[{index}]")
        roi = np.asarray(dataset["rois"][index], np.float64)
        frame, target = localizer_sample(gray, bool(hasface[index]), roi, rng, config)
        return frame, target.astype(np.float32)

    def to_tensors(index, seed):
        frame, target = tf.numpy_function(sample, [index, seed], [tf.uint8, tf.float32])
        frame = tf.ensure_shape(frame, (FRAME_H, FRAME_W))[..., None]
        return tf.cast(frame, tf.float32) / 255.0 + contract.INPUT_OFFSET, {"logit_box": tf.ensure_shape(target, (5,))}

    data = _indexed(len(dataset), config, training).map(to_tensors, num_parallel_calls=tf.data.AUTOTUNE,
                                                        deterministic=True)
    return _finish(data, config, training)
