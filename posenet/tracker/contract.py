"""The Opentrack neuralnet-tracker contract (DESIGN.md §6), in numpy and ONNX only.

One module owns what a tracker model sees and says, so that training (`tracker_data`),
export, evaluation and the runtime (`track`) cannot drift apart:

- the pose net's input patch: a square of side max(w, h) centred on the face box, resized
  to 129 x 129 with INTER_AREA (`crop_patch`), brightness-normalised (`normalize_brightness`);
- patch units: the patch maps to [-1, 1] on both axes, so an image point is
  `centre + u * side / 2` (`patch_to_image`); `pos_size` = (centre x, centre y, size) in
  those units, where size is the `coords` size (projected 100 mm) divided by side / 2;
- the localizer's input: the grey frame resized to 288 x 224, pixel / 255 - 0.5, and its box
  in [-1, 1] over the frame (`frame_to_image`);
- the ONNX interface Opentrack's C++ reads: input `x` float32 [1, 1, H, W], named outputs
  with fixed shapes, model version 4 (`ModelProto.model_version`, what
  `Ort::ModelMetadata::GetVersion` returns) for the pose net.

The checkers return a list of problems (empty = the model follows the contract). This module
imports no TensorFlow, so the runtime can use it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from posenet.core.errors import PosenetError
from posenet.tracker.runtime import GuardedSession, ModelTimeout

POSE_INPUT_SIZE = 129  # pose patch side (H = W) in pixels
POSE_MODEL_VERSION = 4  # ModelProto.model_version that Opentrack reads
POSE_DOC_STRING = "Head pose prediction"  # what Opentrack's own pose file carries
LOCALIZER_DOC_STRING = "Head localizer"
LOCALIZER_INPUT_HW = (224, 288)  # localizer frame (H, W)
LOCALIZER_ASPECT = (4, 3)  # Opentrack crops camera frames to 4:3 before the localizer
INPUT_NAME = "x"

BRIGHTNESS_QUANTILE = 90  # percentile of the patch intensity used for amplification
BRIGHTNESS_GAIN = 0.45  # dark patches: scale so that the quantile maps to this
BRIGHTNESS_FLOOR = 5  # smallest quantile used as divisor
BRIGHTNESS_BRIGHT = 127  # at or above this quantile: plain pixel / 255
INPUT_OFFSET = -0.5  # added after scaling, for both nets


class OutputSpec(NamedTuple):
    name: str
    shape: tuple[int, ...]
    required: bool


POSE_OUTPUTS = (
    OutputSpec("pos_size", (1, 3), True),
    OutputSpec("quat", (1, 4), True),
    OutputSpec("box", (1, 4), True),
    OutputSpec("rotaxis_scales_tril", (1, 3, 3), False),
    OutputSpec("pos_size_scales_tril", (1, 3, 3), False),
)
LOCALIZER_OUTPUTS = (OutputSpec("logit_box", (1, 5), True),)


# --- preprocessing ------------------------------------------------------------------------

def brightness_scale(quantile: np.ndarray | float) -> np.ndarray:
    """The tracker's gain for a given 90th-percentile intensity (vectorised)."""
    quantile = np.asarray(quantile, dtype=np.float64)
    dark = BRIGHTNESS_GAIN / np.maximum(BRIGHTNESS_FLOOR, quantile)
    return np.where(quantile < BRIGHTNESS_BRIGHT, dark, 1.0 / 255.0)


def normalize_brightness(gray_uint8: np.ndarray) -> np.ndarray:
    """Pose-net input normalisation: gain from the 90th percentile p, then - 0.5.

    gain = 0.45 / max(5, p) if p < 127 else 1 / 255. The percentile is the smallest
    intensity with at least 90 % of the pixels at or below it (what a histogram lookup
    gives), computed over the whole patch. Works on (H, W) or batched (..., H, W) arrays.
    """
    gray = np.asarray(gray_uint8)
    flat = gray.reshape(*gray.shape[:-2], -1)
    quantile = np.percentile(flat, BRIGHTNESS_QUANTILE, axis=-1, method="inverted_cdf")
    scale = brightness_scale(quantile)[..., None, None]
    return (gray.astype(np.float32) * scale.astype(np.float32) + np.float32(INPUT_OFFSET)).astype(np.float32)


def normalize_frame(gray_uint8: np.ndarray) -> np.ndarray:
    """Localizer input normalisation: pixel / 255 - 0.5."""
    return np.asarray(gray_uint8, dtype=np.float32) / np.float32(255.0) + np.float32(INPUT_OFFSET)


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB (or already grey) uint8 image -> grey uint8 (H, W)."""
    image = np.asarray(image)
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


# --- patch geometry -----------------------------------------------------------------------

PATCH_SCALE = 1.05  # Opentrack's C++: patch side = int(1.05 * max(w, h)) around the box centre


def patch_square(box: np.ndarray, frame_wh: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Face box (..., 4) x0, y0, x1, y1 -> patch centre (..., 2) and side (...,).

    The side is Opentrack's: int(PATCH_SCALE * max(w, h)). Without the 5 % margin its own
    model loses almost 2 degrees on AFLW2000-3D, so training and runtime both use it. Given the
    frame's (width, height), the centre is clamped into the frame, as Opentrack's runtime does,
    so a box that drifted off the frame still gives a patch with the face in it.
    """
    box = np.asarray(box, dtype=np.float64)
    center = (box[..., :2] + box[..., 2:]) / 2.0
    if frame_wh is not None:
        center = np.clip(center, 0.0, np.asarray(frame_wh, dtype=np.float64))
    side = np.floor(PATCH_SCALE * np.maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]))
    return center, side


def patch_to_image(points: np.ndarray, center: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Patch units ([-1, 1] over the patch) -> image pixels; points (..., P, 2+), extra coords scale too."""
    points = np.asarray(points, dtype=np.float64)
    half = np.asarray(side, dtype=np.float64)[..., None, None] / 2.0
    out = points * half
    out[..., :2] += np.asarray(center, dtype=np.float64)[..., None, :]
    return out


def image_to_patch(points: np.ndarray, center: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Image pixels -> patch units; the inverse of `patch_to_image`."""
    points = np.array(points, dtype=np.float64, copy=True)
    points[..., :2] -= np.asarray(center, dtype=np.float64)[..., None, :]
    return points / (np.asarray(side, dtype=np.float64)[..., None, None] / 2.0)


def crop_square(gray: np.ndarray, center: np.ndarray, side: float, size: int = POSE_INPUT_SIZE) -> np.ndarray:
    """Square of `side` pixels around `center`, INTER_AREA-resized to size x size (uint8).

    Coordinates follow the pixel-edge convention (pixel i spans [i, i + 1)), hence the
    half-pixel shift for cv2.getRectSubPix, which samples at pixel centres. Pixels outside the
    frame replicate the border.
    """
    side_px = max(int(round(float(side))), 1)
    patch = cv2.getRectSubPix(np.ascontiguousarray(gray), (side_px, side_px),
                              (float(center[0]) - 0.5, float(center[1]) - 0.5))
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)


def crop_patch(gray: np.ndarray, box: np.ndarray, size: int = POSE_INPUT_SIZE) -> np.ndarray:
    """The tracker's pose-net patch for a face box (see `patch_square`), uint8 (size, size)."""
    center, side = patch_square(box, frame_size(gray))
    return crop_square(gray, center, float(side), size)


def frame_size(gray: np.ndarray) -> tuple[int, int]:
    """(width, height) of an image array."""
    return gray.shape[1], gray.shape[0]


def aspect_crop(width: int, height: int, aspect: tuple[int, int] = LOCALIZER_ASPECT) -> tuple[int, int, int, int]:
    """Centred crop (x0, y0, w, h) of a frame to `aspect`, as Opentrack's `make_crop_rect_for_aspect`."""
    ax, ay = aspect
    crop_w, crop_h = min(width, height * ax // ay), min(height, width * ay // ax)
    return (width - crop_w) // 2, (height - crop_h) // 2, crop_w, crop_h


def localizer_input(gray: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The localizer's input for a grey uint8 frame: the centred crop to the localizer's aspect,
    INTER_AREA-resized and normalised (float32 H x W), and the crop (x0, y0, w, h) that maps
    its box back into the frame (`localizer_box`)."""
    window = aspect_crop(*frame_size(gray))
    x0, y0, width, height = window
    small = cv2.resize(gray[y0:y0 + height, x0:x0 + width], LOCALIZER_INPUT_HW[::-1], interpolation=cv2.INTER_AREA)
    return normalize_frame(small), window


def localizer_box(box: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """The localizer's box output ([-1, 1] over its input) -> frame pixels x0, y0, x1, y1."""
    x0, y0, width, height = window
    return frame_to_image(box, width, height) + np.array([x0, y0, x0, y0], dtype=np.float64)


def frame_to_image(box: np.ndarray, width: float, height: float) -> np.ndarray:
    """Localizer box in [-1, 1] over the frame (..., 4) -> pixels x0, y0, x1, y1."""
    box = np.asarray(box, dtype=np.float64)
    scale = np.array([width, height, width, height]) / 2.0
    return (box + 1.0) * scale


def image_to_frame(box: np.ndarray, width: float, height: float) -> np.ndarray:
    """Pixel box (..., 4) -> [-1, 1] over the frame; the inverse of `frame_to_image`."""
    scale = np.array([width, height, width, height]) / 2.0
    return np.asarray(box, dtype=np.float64) / scale - 1.0


# --- ONNX interface checks ----------------------------------------------------------------

def _dims(value_info) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]


def _load(path: str | os.PathLike):
    """(onnx model, problems) for `path`; model is None when it cannot be read."""
    import onnx

    path = Path(path)
    if not path.is_file():
        return None, [f"{path}: no such model file"]
    try:
        return onnx.load(str(path)), []
    except Exception as error:  # onnx raises DecodeError, ValueError, ...: all mean "not ONNX"
        return None, [f"{path}: not a readable ONNX model ({type(error).__name__})"]


def _check_input(path: Path, model, hw: tuple[int, int] | None) -> list[str]:
    import onnx

    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        return [f"{path}: expected exactly one input, found {len(inputs)}"]
    value = inputs[0]
    problems = []
    if value.name != INPUT_NAME:
        problems.append(f"{path}: input is named '{value.name}', expected '{INPUT_NAME}'")
    if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        problems.append(f"{path}: input '{value.name}' is not float32")
    dims = _dims(value)
    if len(dims) != 4:
        return problems + [f"{path}: input '{value.name}' has rank {len(dims)}, expected 4 (N, C, H, W)"]
    if dims[0] != 1 or dims[1] != 1:
        problems.append(f"{path}: input '{value.name}' has shape {dims}, expected batch 1 and 1 channel [1, 1, H, W]")
    if not all(isinstance(d, int) and d > 0 for d in dims[2:]):
        problems.append(f"{path}: input '{value.name}' has shape {dims}, H and W must be fixed")
    elif hw is not None and tuple(dims[2:]) != hw:
        problems.append(f"{path}: input '{value.name}' has shape {dims}, expected [1, 1, {hw[0]}, {hw[1]}]")
    return problems


def _check_outputs(path: Path, model, specs: tuple[OutputSpec, ...]) -> list[str]:
    import onnx

    outputs = {o.name: o for o in model.graph.output}
    problems = []
    for spec in specs:
        value = outputs.get(spec.name)
        if value is None:
            if spec.required:
                problems.append(f"{path}: output '{spec.name}' is missing (outputs: {', '.join(outputs) or 'none'})")
            continue
        if value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            problems.append(f"{path}: output '{spec.name}' is not float32")
        if tuple(_dims(value)) != spec.shape:
            problems.append(f"{path}: output '{spec.name}' has shape {_dims(value)}, expected {list(spec.shape)}")
    return problems


def _check_runs(path: Path, specs: tuple[OutputSpec, ...], timeout_s: float | None) -> list[str]:
    """Run the model once on a zero input with ONNX Runtime; check the actual output shapes.

    A run past the time limit raises `ModelTimeout` (one line) instead of counting as a problem."""
    try:
        session = GuardedSession(path, threads=1, timeout_s=timeout_s)
        shape = session.get_inputs()[0].shape
        names = [o.name for o in session.get_outputs()]
        results = dict(zip(names, session.run(None, {session.get_inputs()[0].name: np.zeros(shape, np.float32)})))
    except ModelTimeout:
        raise
    except PosenetError as error:  # any runtime failure means Opentrack cannot run it either
        return [str(error)]
    problems = []
    for spec in specs:
        if spec.name in results:
            value = results[spec.name]
            if value.shape != spec.shape:
                problems.append(f"{path}: output '{spec.name}' comes out with shape {list(value.shape)}, expected {list(spec.shape)}")
            elif not np.all(np.isfinite(value)):
                problems.append(f"{path}: output '{spec.name}' is not finite on a blank input")
    return problems


def _check(path: str | os.PathLike, specs: tuple[OutputSpec, ...], hw: tuple[int, int] | None,
           version: int | None, timeout_s: float | None) -> list[str]:
    path = Path(path)
    model, problems = _load(path)
    if model is None:
        return problems
    problems += _check_input(path, model, hw)
    problems += _check_outputs(path, model, specs)
    if version is not None and model.model_version != version:
        problems.append(f"{path}: model version is {model.model_version}, expected {version} (ModelProto.model_version)")
    if not problems:
        problems += _check_runs(path, specs, timeout_s)
    return problems


def check_pose_model(path: str | os.PathLike, timeout_s: float | None = None) -> list[str]:
    """Every way the file breaks Opentrack's pose-net contract; [] when it follows it.

    The test run stops after `timeout_s` (default `runtime.MODEL_TIMEOUT_S`) with a `ModelTimeout`."""
    return _check(path, POSE_OUTPUTS, None, POSE_MODEL_VERSION, timeout_s)


def check_localizer(path: str | os.PathLike, timeout_s: float | None = None) -> list[str]:
    """Every way the file breaks Opentrack's localizer contract; [] when it follows it."""
    return _check(path, LOCALIZER_OUTPUTS, LOCALIZER_INPUT_HW, None, timeout_s)


def require_contract(path: str | os.PathLike, kind: str, timeout_s: float | None = None) -> None:
    """Raise one PosenetError line when the model (`kind` "pose" or "localizer") breaks the contract."""
    checker = {"pose": check_pose_model, "localizer": check_localizer}[kind]
    problems = checker(path, timeout_s)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PosenetError(f"{problems[0]}: not an Opentrack {kind} model{more}")
