"""Face boxes from classic detectors behind one interface: dlib HOG, dlib CNN, OpenCV Haar.

`detect_faces(image, detector)` returns every face as a `Detection(box, score)` with the box
as (x0, y0, x1, y1) pixels; `best_face` picks one (the highest score, or the best overlap
with a known face box). A miss is an empty list or None, never an exception: the landmark
baseline counts misses as failures. Degenerate images (empty, 1x1, flat grey) are "no face".

- "hog": `dlib.get_frontal_face_detector()` (the default; finds faces of about 80 px, 40 px
  with one upsampling). Score: the SVM margin.
- "cnn": dlib's MMOD CNN (`mmod_human_face_detector.dat`, shipped by face_recognition_models,
  never downloaded); slower, more tolerant of pose. Score: the detector confidence.
- "haar": OpenCV's frontal-face Haar cascade (requirements.txt pins OpenCV 4.x, which ships
  it; OpenCV 5 moved the cascades out of the main package). When `cv2.CascadeClassifier` or its XML file is missing, asking for "haar" raises
  one clear `PosenetError` (the fallback chain simply skips it).

`fallback_box` is the chain behind `--boxes dlib`: HOG, then Haar, then the dataset's own box,
returning which source was used so that misses can be counted.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path
from typing import Callable, NamedTuple

import cv2
import dlib
import numpy as np

from posenet.core.errors import PosenetError
from posenet.core.geometry import box_iou

DETECTORS = ("hog", "cnn", "haar")
MODEL_PACKAGE = "face_recognition_models"  # ships dlib's model files (never downloaded)
CNN_MODEL_FILE = "mmod_human_face_detector.dat"
HAAR_CASCADE_FILE = "haarcascade_frontalface_default.xml"
MIN_IMAGE_SIDE = 20  # below this no detector can find a face (and dlib's CNN aborts on < 12 px)
SAME_FACE_IOU = 0.1  # a detection overlapping a known face box less than this is another face
HAAR_MIN_NEIGHBORS = 5


class Detection(NamedTuple):
    box: np.ndarray  # (x0, y0, x1, y1) pixels, float64
    score: float  # detector-specific: higher is more confident


# --- model files ----------------------------------------------------------------------------

def packaged_model(filename: str) -> Path:
    """Path of a dlib model file shipped by face_recognition_models; one clear error if absent."""
    try:
        path = Path(str(importlib.resources.files(MODEL_PACKAGE) / "models" / filename))
    except ModuleNotFoundError:
        raise PosenetError(f"{MODEL_PACKAGE}/models/{filename}: package {MODEL_PACKAGE} is not installed "
                           f"(pip install face-recognition-models)") from None
    if not path.is_file():
        raise PosenetError(f"{path}: dlib model file not found (reinstall {MODEL_PACKAGE})")
    return path


def haar_cascade_path() -> Path:
    """The frontal-face cascade XML: cv2.data.haarcascades, else anywhere inside the cv2 package."""
    package = Path(cv2.__file__).parent
    listed = getattr(getattr(cv2, "data", None), "haarcascades", None)
    for root in ([Path(listed)] if listed else []) + [package]:
        found = sorted(root.rglob(HAAR_CASCADE_FILE)) if root.is_dir() else []
        if found:
            return found[0]
    raise PosenetError(f"{HAAR_CASCADE_FILE}: not shipped with OpenCV {cv2.__version__} "
                       f"(looked under {package}); use --detector hog or cnn")


def haar_available() -> bool:
    """True when OpenCV has the cascade classifier and its frontal-face XML."""
    try:
        _haar_model()
    except PosenetError:
        return False
    return True


@functools.cache
def _hog_model() -> Callable:
    return dlib.get_frontal_face_detector()


@functools.cache
def _cnn_model() -> Callable:
    return dlib.cnn_face_detection_model_v1(str(packaged_model(CNN_MODEL_FILE)))


@functools.cache
def _haar_model() -> "cv2.CascadeClassifier":
    if not hasattr(cv2, "CascadeClassifier"):
        raise PosenetError(f"haar: OpenCV {cv2.__version__} has no CascadeClassifier "
                           f"(moved out of OpenCV 5's main package); use --detector hog or cnn")
    path = haar_cascade_path()
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise PosenetError(f"{path}: OpenCV cannot load this Haar cascade")
    return cascade


# --- detectors -------------------------------------------------------------------------------

def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Any uint8 grey / RGB / RGBA image -> contiguous RGB (what dlib expects)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise PosenetError(f"image: expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise PosenetError(f"image: expected (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    image = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image[..., :3]
    return np.ascontiguousarray(image)


def _rect_box(rect: "dlib.rectangle") -> np.ndarray:
    """dlib's inclusive rectangle -> (x0, y0, x1, y1) with an exclusive far edge."""
    return np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], dtype=np.float64)


def _detect_hog(image: np.ndarray, upsample: int) -> list[Detection]:
    rects, scores, _ = _hog_model().run(image, upsample, 0.0)
    return [Detection(_rect_box(r), float(s)) for r, s in zip(rects, scores)]


def _detect_cnn(image: np.ndarray, upsample: int) -> list[Detection]:
    return [Detection(_rect_box(d.rect), float(d.confidence)) for d in _cnn_model()(image, upsample)]


def _detect_haar(image: np.ndarray, upsample: int) -> list[Detection]:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    scale = 2 ** upsample
    if scale > 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    boxes, _, weights = _haar_model().detectMultiScale3(grey, minNeighbors=HAAR_MIN_NEIGHBORS,
                                                        outputRejectLevels=True)
    return [Detection(np.array([x, y, x + w, y + h], np.float64) / scale, float(weight))
            for (x, y, w, h), weight in zip(np.reshape(boxes, (-1, 4)), np.ravel(weights))]


_DETECT = {"hog": _detect_hog, "cnn": _detect_cnn, "haar": _detect_haar}


def detect_faces(image_rgb: np.ndarray, detector: str = "hog", upsample: int = 1) -> list[Detection]:
    """All faces found by `detector` in an RGB (or grey) uint8 image, best score first.

    `upsample` doubles the image that many times before detecting (finds smaller faces,
    costs about 4x per step). An image too small to hold a face gives an empty list.
    """
    if detector not in _DETECT:
        raise PosenetError(f"--detector {detector}: unknown face detector; choose from {', '.join(DETECTORS)}")
    image = as_rgb_uint8(image_rgb)
    if min(image.shape[:2]) < MIN_IMAGE_SIDE:
        return []
    return sorted(_DETECT[detector](image, upsample), key=lambda d: -d.score)


def choose_face(detections: list[Detection], roi: np.ndarray | None = None) -> Detection | None:
    """The detection of the face in `roi` (best IoU, at least SAME_FACE_IOU), else the best score."""
    if roi is None:
        return max(detections, key=lambda d: d.score, default=None)
    overlaps = [(box_iou(d.box, np.asarray(roi, float)), d) for d in detections]
    iou, detection = max(overlaps, key=lambda pair: pair[0], default=(0.0, None))
    return detection if iou >= SAME_FACE_IOU else None


def best_face(image_rgb: np.ndarray, detector: str = "hog", upsample: int = 1,
              roi: np.ndarray | None = None) -> Detection | None:
    """The one face to use: highest score, or the best match to a known face box `roi`; None if missed."""
    return choose_face(detect_faces(image_rgb, detector, upsample), roi)


def fallback_box(image_rgb: np.ndarray, roi: np.ndarray | None, upsample: int = 1) -> tuple[np.ndarray | None, str]:
    """Box for `--boxes dlib`: dlib HOG, then Haar (when OpenCV has it), then the dataset's `roi`.

    Returns (box, source) with source "hog", "haar", "roi", or "none" (no detection and no roi),
    so that callers can count how often each detector missed.
    """
    for detector in ("hog", "haar") if haar_available() else ("hog",):
        found = best_face(image_rgb, detector, upsample, roi)
        if found is not None:
            return found.box, detector
    if roi is None:
        return None, "none"
    return np.asarray(roi, dtype=np.float64), "roi"
