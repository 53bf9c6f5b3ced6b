"""`posenet track`: the head tracker on ONNX Runtime alone (no TensorFlow, no Keras).

It runs any localizer and pose net that follow Opentrack's contract (DESIGN.md §6,
`posenet.tracker.contract`), ours or Opentrack's own, the way Opentrack's C++ neuralnet tracker
does (`ftnoir_tracker_neuralnet.cpp`, `model_adapters.cpp`):

- Localizer: the grey frame is centre-cropped to 4:3 (Opentrack crops every camera frame
  to 4:3 first), resized with INTER_AREA to 288 x 224 (a 3.6 % horizontal squeeze, as in
  Opentrack), fed as pixel / 255 - 0.5; `logit_box` gives the face probability
  sigmoid(logit) and a box in [-1, 1] over the crop, mapped back to frame pixels.
- Pose net: a square patch of side int(1.05 * max(w, h)) around the box centre (the centre
  clamped into the frame; Opentrack's 1.05 margin: without it the MAE on AFLW2000-3D
  grows from about 3 to 5 deg), border replicated, INTER_AREA to the model's H x W,
  brightness-normalised (Opentrack also halves frames wider than 640 px with pyrDown first;
  we keep the full frame, which only changes the patch's source resolution). Patch units [-1, 1] map to the patch: `pos_size` gives the head
  centre and size (projected 100 mm) in frame pixels, `box` the next tracking box.
- Quaternion: the contract's `quat` (x, y, z, w) is already in our camera frame (x right,
  y down, z into the screen), the frame Opentrack calls "image" frame and converts to its
  world frame only for output. Checked on the AFLW2000-3D samples: used as it comes, it
  matches `geometry.aflw_to_quat(Pose_Para)` to about 3 deg MAE (tests/test_track.py).

Tracking loop (Opentrack's `detect()` with roi_zoom = roi_filter_alpha = 1, its defaults).
The tracker keeps the tracked box and the box the localizer last returned. The localizer
runs when there is no tracked box, or when the tracked box has drifted so that its IoU
with the *stored* localizer box is below 0.25 (the IoU needs no new localizer run). Then:
the new localizer box overlaps the tracked box (IoU >= 0.25) with p > 0.5 -> only the
stored localizer box is renewed and tracking goes on; else p > 0.5 and the box is over
32 px -> the track restarts from it; else the track is dropped. Every other frame runs the
pose net alone on the box it predicted the frame before.

Face check (ours; Opentrack has none). Opentrack's loop never asks whether the tracked box
still holds a face: after a cut from a face to a giraffe the pose net keeps "tracking" the
giraffe, since its box does not drift. So "ok" would not mean a face. Here the localizer
also runs, with the same decision, when
- the track has gone `FACE_CHECK_FRAMES` frames without it (a backstop for any change);
- the pose patch no longer looks like the last frame's: the correlation of the two patches,
  downscaled to 32 x 32, falls below `PATCH_SIMILARITY` (a cut; a moving head stays
  above 0.45 even at a third of the frame rate);
- the pose net, when it gives `rotaxis_scales_tril`, is clearly unsure of the rotation:
  RMS standard deviation over `UNCERTAIN_ROTATION_RAD` (Opentrack's net: under 0.04 rad on
  the real and rendered videos, 1 of the 300 real faces of the dev split over 0.2; 0.12 to
  0.9 on animal photos. Ours, trained on rendered faces only, is less calibrated: up to
  0.14 on the real videos, 0.26 on real stills, 0.12 to 0.16 on the animals; so the
  threshold is kept high enough not to run the localizer on most real frames).
The last two cost a resize and a dot product per frame; only the first adds localizer
runs on a steady face (one in ten frames). The localizer stays the judge: a check that it
answers with a face keeps the track. `Tracker(face_check=False)` is Opentrack's loop.

Per frame: time, box, score (face probability of the last localizer run), quaternion,
yaw/pitch/roll (`geometry.ypr_deg`), head position in mm (z = f * 100 / size, f from a
horizontal field of view; x, y from the image position) and a status: "ok", "no face"
(no track and the localizer sees none) or "lost" (a track existed and was dropped).
"ok" also needs a usable pose-net output: finite values, a non-zero quaternion, a positive
head size and a finite head position; anything else counts as no face. Frames smaller
than `MIN_FACE_PX` are "no face" without a model run. Every model run is bounded in time
(`posenet.tracker.runtime`, `--model-timeout`).
Note that Opentrack's own field-of-view setting is diagonal; ours (`--fov`) is horizontal.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from posenet.core import geometry
from posenet.core.draw import draw_axes
from posenet.core.errors import PosenetError
from posenet.core.fileio import atomic_output, check_writable
from posenet.core.paths import OPENTRACK_MODELS, OUR_MODELS
from posenet.tracker.contract import (
    crop_square,
    frame_size,
    localizer_box,
    localizer_input,
    normalize_brightness,
    patch_square,
    patch_to_image,
    require_contract,
)
from posenet.tracker.runtime import MODEL_TIMEOUT_S, TIMEOUT_OPTION, GuardedSession, check_timeout
from posenet.tracker.udp import OpentrackSender, opentrack_values, parse_address

MODEL_FILES = {  # kind -> (our file, Opentrack's file)
    "localizer": ("localizer.onnx", "head-localizer.onnx"),
    "pose": ("pose_net.onnx", "head-pose-0.4-small-int8.onnx"),
}

RELOCALIZE_IOU = 0.25  # run the localizer when IoU(stored localizer box, tracked box) < this
FACE_PROBABILITY = 0.5  # accept a localizer face above this
MIN_FACE_PX = 32  # a new track needs a localizer box wider and taller than this
FACE_CHECK_FRAMES = 10  # the localizer confirms a track at least this often (frames)
PATCH_SIMILARITY = 0.3  # re-check the face when the patch's correlation with the last one falls below this
UNCERTAIN_ROTATION_RAD = 0.2  # re-check when the pose net's rotation RMS standard deviation exceeds this
SIGNATURE_PX = 32  # side of the downscaled patch compared between frames
FLAT_PATCH_STD = 1.0  # grey levels: a patch this uniform has no pattern to compare
MIN_QUAT_NORM = 1e-6  # a pose-net quaternion shorter than this has no direction: no pose
DEFAULT_FOV_DEG = 56.0  # horizontal field of view for the position (Opentrack's default value)
CAMERA_TIMEOUT_S = 5.0  # a camera that gives no first frame within this is "not there"
NOMINAL_FPS = 30.0  # frame rate assumed for image folders and videos without one
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
STATUSES = ("ok", "no face", "lost")
CSV_COLUMNS = ("frame", "time", "x0", "y0", "x1", "y1", "score", "qx", "qy", "qz", "qw",
               "yaw", "pitch", "roll", "x_mm", "y_mm", "z_mm", "status")


# --- models ---------------------------------------------------------------------------------

def sigmoid(logit: float) -> float:
    return float(1.0 / (1.0 + np.exp(-logit)))


class Localizer:
    """Face probability and box in a whole frame (Opentrack's head localizer contract)."""

    def __init__(self, path: str | os.PathLike, threads: int = 1, timeout_s: float | None = None):
        require_contract(path, "localizer", timeout_s)
        self.path = Path(path)
        self.session = GuardedSession(path, threads, timeout_s)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, gray: np.ndarray) -> tuple[float, np.ndarray]:
        """Grey uint8 frame -> (probability of a face, box x0, y0, x1, y1 in frame pixels)."""
        x, window = localizer_input(gray)
        logit_box = self.session.run(["logit_box"], {self.input_name: x[None, None]})[0][0]
        return sigmoid(logit_box[0]), localizer_box(logit_box[1:], window)


class Face(NamedTuple):
    center: np.ndarray  # (2,) head centre, frame pixels
    size: float  # projected 100 mm at the head centre, pixels
    quat: np.ndarray  # (4,) x, y, z, w, camera frame, w >= 0
    box: np.ndarray  # (4,) next tracking box, frame pixels
    uncertainty: float  # RMS standard deviation of the rotation (rad); NaN when the model gives none
    signature: np.ndarray  # the patch downscaled, zero mean, unit norm (`patch_signature`)


def patch_signature(patch: np.ndarray) -> np.ndarray:
    """The patch at SIGNATURE_PX x SIGNATURE_PX, zero mean and unit norm (all zeros when flat),
    so that the dot product of two signatures is their correlation, blind to brightness and contrast.

    The patch is cut to a whole multiple of SIGNATURE_PX first (129 -> 128): OpenCV's INTER_AREA
    is six times faster for an integer factor, about 8 us per frame in all."""
    side = SIGNATURE_PX * max(1, min(patch.shape[:2]) // SIGNATURE_PX)
    small = cv2.resize(patch[:side, :side], (SIGNATURE_PX, SIGNATURE_PX), interpolation=cv2.INTER_AREA)
    mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(small))
    if std < FLAT_PATCH_STD:
        return np.zeros((SIGNATURE_PX, SIGNATURE_PX), np.float32)
    return (small.astype(np.float32) - np.float32(mean)) / np.float32(std * SIGNATURE_PX)  # norm: std * sqrt(N)


def patch_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two signatures in [-1, 1]: two flat patches are alike, flat and patterned are not."""
    flat_a, flat_b = not a.any(), not b.any()
    if flat_a or flat_b:
        return 1.0 if flat_a and flat_b else 0.0
    return float(np.vdot(a, b))


def rotation_uncertainty(scales_tril: np.ndarray) -> float:
    """RMS standard deviation (rad) of the rotation from its covariance's Cholesky factor L (L L^T)."""
    return float(np.linalg.norm(scales_tril) / np.sqrt(3.0))


class PoseEstimator:
    """Head pose, position and next box from a face box (Opentrack's pose-net contract)."""

    OUTPUTS = ["pos_size", "quat", "box"]
    UNCERTAINTY = "rotaxis_scales_tril"  # optional in the contract

    def __init__(self, path: str | os.PathLike, threads: int = 1, timeout_s: float | None = None):
        require_contract(path, "pose", timeout_s)
        self.path = Path(path)
        self.session = GuardedSession(path, threads, timeout_s)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        height, width = model_input.shape[2:]
        if height != width:
            raise PosenetError(f"{path}: input is {height}x{width}; the tracker feeds square patches")
        self.input_size = int(height)
        has_uncertainty = self.UNCERTAINTY in {o.name for o in self.session.get_outputs()}
        self.outputs = self.OUTPUTS + ([self.UNCERTAINTY] if has_uncertainty else [])

    def __call__(self, gray: np.ndarray, box: np.ndarray) -> Face | None:
        """Grey uint8 frame and face box -> Face, or None when the box is degenerate or the
        model's output is no pose (not finite, a zero quaternion, a head size <= 0)."""
        box = np.asarray(box, dtype=np.float64)
        if not np.all(np.isfinite(box)):
            return None
        center, side = patch_square(box, frame_size(gray))
        if side < 1:
            return None
        patch = crop_square(gray, center, side, self.input_size)
        pos_size, quat, out_box, *scales = (o[0] for o in self.session.run(
            self.outputs, {self.input_name: normalize_brightness(patch)[None, None]}))
        if not is_pose(pos_size, quat, out_box):
            return None
        center_size = patch_to_image(pos_size[None], center, side)[0]
        corners = patch_to_image(out_box.reshape(2, 2), center, side).reshape(4)
        uncertainty = rotation_uncertainty(scales[0]) if scales else float("nan")
        return Face(center_size[:2], float(center_size[2]), geometry.canonical_quat(quat), corners,
                    uncertainty, patch_signature(patch))


def is_pose(pos_size: np.ndarray, quat: np.ndarray, box: np.ndarray) -> bool:
    """Whether the pose net's outputs describe a head: all finite, a quaternion with a direction,
    a positive size (a NaN or zero quaternion would crash the angle conversion, a size <= 0
    gives an infinite or negative distance)."""
    finite = all(np.all(np.isfinite(v)) for v in (pos_size, quat, box))
    return finite and float(np.linalg.norm(quat)) > MIN_QUAT_NORM and float(pos_size[2]) > 0.0


# --- tracking ------------------------------------------------------------------------------

@dataclass
class TrackResult:
    """What the tracker says about one frame; the pose fields are None unless status is "ok"."""

    frame: int
    time: float
    status: str
    score: float = float("nan")
    box: np.ndarray | None = None
    center: np.ndarray | None = None
    size: float | None = None
    quat: np.ndarray | None = None
    ypr: np.ndarray | None = None
    position_mm: np.ndarray | None = None
    localized: bool = False  # whether the localizer ran on this frame


AUTO_SMOOTH = "auto"  # --smooth auto: the uncertainty-weighted filter
HEAD_MOTION_RAD = np.radians(0.5)  # auto: standard deviation of a still head's true rotation per frame
MOTION_GATE = 3.0  # auto: a change beyond this many standard deviations is motion, followed at once
FALLBACK_UNCERTAINTY_RAD = 0.05  # auto: the rotation noise assumed for a pose net without rotaxis_scales_tril


def parse_smooth(text: str) -> float | None:
    """`--smooth` value: a gain ALPHA in (0, 1] (1 = off), or None for "auto"."""
    if str(text).strip().lower() == AUTO_SMOOTH:
        return None
    try:
        return float(text)
    except ValueError:
        raise PosenetError(f"--smooth {text}: expected a value in (0, 1] or '{AUTO_SMOOTH}'") from None


class Smoother:
    """Filter on the output pose: s <- s + gain * (new - s), for the rotation (quaternion) and position.

    `alpha` in (0, 1]: a fixed gain (exponential smoothing; 1 = off). `alpha` None ("auto"): the gain of a
    Kalman filter on a slowly wandering pose, per frame, from the pose net's own rotation uncertainty
    (`Face.uncertainty`, from `rotaxis_scales_tril`) as the measurement noise R and HEAD_MOTION_RAD as
    the process noise Q: a sure net is followed closely, an unsure one is averaged more. A change that
    the filter's variance cannot explain (beyond MOTION_GATE standard deviations) is motion: the
    variance is raised to it, so the filter catches up within a frame or two instead of lagging.
    """

    def __init__(self, alpha: float | None = 1.0):
        if alpha is not None and not 0.0 < alpha <= 1.0:
            raise PosenetError(f"--smooth {alpha}: expected a value in (0, 1] or '{AUTO_SMOOTH}'")
        self.alpha = alpha
        self.state: tuple[np.ndarray, np.ndarray] | None = None
        self.variance = 0.0  # auto: variance (rad^2) of the filtered rotation

    def reset(self) -> None:
        self.state = None

    @staticmethod
    def _noise(uncertainty: float) -> float:
        """The measurement noise (rad): the pose net's rotation uncertainty, or the fallback without one."""
        return uncertainty if np.isfinite(uncertainty) and uncertainty > 0 else FALLBACK_UNCERTAINTY_RAD

    def _gain(self, change_rad: float, uncertainty: float) -> float:
        """The fixed gain, or the Kalman gain for a rotation change and the measurement's uncertainty (rad)."""
        if self.alpha is not None:
            return self.alpha
        noise = self._noise(uncertainty)
        prior = self.variance + HEAD_MOTION_RAD ** 2
        if change_rad ** 2 > MOTION_GATE ** 2 * (prior + noise ** 2):
            prior = change_rad ** 2  # motion, not noise
        gain = prior / (prior + noise ** 2)
        self.variance = (1.0 - gain) * prior
        return gain

    def __call__(self, quat: np.ndarray, position: np.ndarray,
                 uncertainty: float = float("nan")) -> tuple[np.ndarray, np.ndarray]:
        if self.state is None:
            self.variance = self._noise(uncertainty) ** 2  # the first measurement, as sure as the net says
        else:
            old_quat, old_position = self.state
            quat = quat if np.dot(quat, old_quat) >= 0 else -quat  # same hemisphere before blending
            gain = self._gain(float(geometry.geodesic_rad(old_quat, quat)), uncertainty)
            quat = geometry.canonical_quat(old_quat + gain * (quat - old_quat))
            position = old_position + gain * (position - old_position)
        self.state = (quat, position)
        return quat, position


def focal_px(width: int, fov_deg: float) -> float:
    """Focal length in pixels for a horizontal field of view."""
    return width / 2.0 / np.tan(np.radians(fov_deg) / 2.0)


def head_position_mm(center: np.ndarray, size: float, camera: np.ndarray) -> np.ndarray:
    """Head centre in the camera frame (mm) from its image position and size (projected 100 mm)."""
    fx, fy, cx, cy = camera
    z = fx * geometry.HEAD_SIZE_MM / size
    return np.array([(center[0] - cx) * z / fx, (center[1] - cy) * z / fy, z])


class Tracker:
    """Opentrack's tracking loop over grey frames, plus our face check (see the module docstring)."""

    def __init__(self, localizer: Localizer, pose: PoseEstimator, fov_deg: float = DEFAULT_FOV_DEG,
                 smooth: float | None = 1.0, face_check: bool = True):
        if not 1.0 <= fov_deg < 180.0:
            raise PosenetError(f"--fov {fov_deg}: expected a horizontal field of view in degrees, 1..179")
        self.localizer, self.pose, self.fov_deg = localizer, pose, fov_deg
        self.smoother = Smoother(smooth)
        self.face_check = face_check
        self.localizer_runs = 0
        self.face_checks = 0  # localizer runs made only to confirm a tracked face
        self.reset()

    def reset(self) -> None:
        self.roi: np.ndarray | None = None
        self.localizer_roi: np.ndarray | None = None
        self.score = float("nan")
        self.signature: np.ndarray | None = None  # the last "ok" frame's patch signature
        self.frames_unchecked = 0  # frames since the localizer last ran
        self.smoother.reset()

    def _localize(self, gray: np.ndarray) -> None:
        """Opentrack's decision on a localizer run: renew, restart or drop the track."""
        probability, box = self.localizer(gray)
        self.localizer_runs += 1
        self.frames_unchecked = 0
        self.score = probability
        width, height = box[2] - box[0], box[3] - box[1]
        renews_track = self.roi is not None and geometry.box_iou(box, self.roi) >= RELOCALIZE_IOU
        if renews_track and probability > FACE_PROBABILITY:
            self.localizer_roi = box
        elif probability > FACE_PROBABILITY and width > MIN_FACE_PX and height > MIN_FACE_PX:
            self.localizer_roi = self.roi = box
        else:
            self.roi = self.localizer_roi = None

    def _drifted(self) -> bool:
        """Opentrack's reason to run the localizer: no track, or the track left the localizer's box."""
        return (self.roi is None or self.localizer_roi is None
                or geometry.box_iou(self.localizer_roi, self.roi) < RELOCALIZE_IOU)

    def _doubtful(self, face: Face) -> bool:
        """Whether the pose net's view suggests the face is gone: a cut, or an unsure pose net."""
        if face.uncertainty > UNCERTAIN_ROTATION_RAD:
            return True
        return self.signature is not None and patch_similarity(face.signature, self.signature) < PATCH_SIMILARITY

    def _pose(self, gray: np.ndarray) -> Face | None:
        return self.pose(gray, self.roi) if self.roi is not None else None

    def _confirm(self, gray: np.ndarray, face: Face) -> Face | None:
        """Let the localizer judge a doubtful face: keep it, restart on the localizer's box, or drop it."""
        self.face_checks += 1
        roi = self.roi
        self._localize(gray)
        return face if self.roi is roi else self._pose(gray)

    def _measure(self, gray: np.ndarray, face: Face) -> np.ndarray | None:
        """The head position in mm, or None when it is not finite (a head size too small to invert)."""
        height, width = gray.shape[:2]
        camera = geometry.camera_for_image(width, height, focal_px(width, self.fov_deg))
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            position = head_position_mm(face.center, face.size, camera)
        return position if np.all(np.isfinite(position)) else None

    def step(self, gray: np.ndarray, frame: int = 0, timestamp: float = 0.0) -> TrackResult:
        """Track one grey uint8 frame."""
        had_track = self.roi is not None
        if min(gray.shape[:2]) < MIN_FACE_PX:  # no face the localizer could accept fits in the frame
            self.reset()
            return TrackResult(frame, timestamp, "lost" if had_track else "no face")
        self.frames_unchecked += 1
        drifted = self._drifted()
        localized = drifted or (self.face_check and self.frames_unchecked >= FACE_CHECK_FRAMES)
        if localized:
            self.face_checks += not drifted
            self._localize(gray)
        face = self._pose(gray)
        if face is not None and self.face_check and not localized and self._doubtful(face):
            localized = True
            face = self._confirm(gray, face)
        position = self._measure(gray, face) if face is not None else None
        if position is None:
            score = self.score if localized else float("nan")
            self.reset()
            return TrackResult(frame, timestamp, "lost" if had_track else "no face", score, localized=localized)
        self.roi, self.signature = face.box, face.signature
        quat, position = self.smoother(face.quat, position, face.uncertainty)
        return TrackResult(frame, timestamp, "ok", self.score, face.box, face.center, face.size, quat,
                           geometry.ypr_deg(quat), position, localized)


# --- evaluation on datasets ------------------------------------------------------------------

class OnnxPosePredictor:
    """A contract pose model as a predictor for `posenet evaluate`: fed exactly as Opentrack does.

    Each sample's grey image is cut to the tracker's patch around the dataset's face box
    (`rois`), brightness-normalised; the model's `quat` is the prediction. For AFLW2000-3D
    the face box is the extent of the 68 landmarks (x, y of `pt3d_68`), the box Opentrack's
    training files store as `rois`.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1, timeout_s: float | None = None):
        self.estimator = PoseEstimator(path, threads, timeout_s)
        self.name = Path(path).stem

    def predict(self, dataset) -> np.ndarray:
        """Quaternions (N, 4); a row of NaN where the face box is degenerate."""
        if "rois" not in dataset:
            raise PosenetError(f"{dataset.path}: field 'rois' is missing; the pose model needs face boxes")
        quats = np.full((len(dataset), 4), np.nan)
        for i in tqdm(range(len(dataset)), desc=self.name, unit="img", leave=False):
            face = self.estimator(cv2.cvtColor(dataset.image(i), cv2.COLOR_RGB2GRAY), dataset["rois"][i])
            if face is not None:
                quats[i] = face.quat
        return quats


# --- frame sources -----------------------------------------------------------------------------

class Frame(NamedTuple):
    index: int
    time: float
    bgr: np.ndarray


class Source(NamedTuple):
    frames: Iterator[Frame]
    fps: float
    total: int | None  # frame count when known
    name: str


def _read_video(capture: cv2.VideoCapture, first: np.ndarray, fps: float) -> Iterator[Frame]:
    index, image = 0, first
    try:
        while image is not None:
            yield Frame(index, index / fps, image)
            index += 1
            ok, image = capture.read()
            image = image if ok else None
    finally:
        capture.release()


def open_video(path: str | os.PathLike) -> Source:
    path = Path(path)
    if not path.is_file():
        raise PosenetError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise PosenetError(f"{path}: not a readable video (OpenCV cannot decode a first frame)")
    fps = capture.get(cv2.CAP_PROP_FPS) or NOMINAL_FPS
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    return Source(_read_video(capture, first, fps), fps, count, str(path))


def _camera_frames(capture: cv2.VideoCapture, first: np.ndarray) -> Iterator[Frame]:
    start, index, image = time.monotonic(), 0, first
    try:
        while image is not None:
            yield Frame(index, time.monotonic() - start, image)
            index += 1
            ok, image = capture.read()
            image = image if ok else None
    finally:
        capture.release()


def open_camera(index: int, timeout_s: float = CAMERA_TIMEOUT_S) -> Source:
    """Open camera `index`; fail with one line when it gives no frame within `timeout_s`."""
    result: dict[str, object] = {}

    def first_frame() -> None:
        capture = cv2.VideoCapture(index)
        result["capture"] = capture
        result["frame"] = capture.read() if capture.isOpened() else (False, None)

    worker = threading.Thread(target=first_frame, daemon=True)
    worker.start()
    worker.join(timeout_s)
    ok, first = result.get("frame", (False, None))
    if worker.is_alive() or not ok:
        if "frame" in result:
            result["capture"].release()
        reason = f"no frame within {timeout_s:g} s" if worker.is_alive() else "cannot be opened"
        raise PosenetError(f"--camera {index}: camera not available ({reason})")
    capture = result["capture"]
    fps = capture.get(cv2.CAP_PROP_FPS) or NOMINAL_FPS
    return Source(_camera_frames(capture, first), fps, None, f"camera {index}")


def _read_images(paths: list[Path], fps: float) -> Iterator[Frame]:
    for index, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise PosenetError(f"{path}: not a readable image")
        yield Frame(index, index / fps, image)


def open_images(folder: str | os.PathLike) -> Source:
    """Images of a folder in name order, as frames at a nominal 30 frames/s."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PosenetError(f"{folder}: no such image folder")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise PosenetError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
    return Source(_read_images(paths, NOMINAL_FPS), NOMINAL_FPS, len(paths), str(folder))


# --- outputs ---------------------------------------------------------------------------------

def _fmt(value: float) -> str:
    return f"{value:.6g}"


def csv_row(result: TrackResult) -> list[str]:
    """One CSV row; pose columns are empty unless the status is "ok"."""
    row = [str(result.frame), f"{result.time:.4f}"]
    box = [] if result.box is None else [_fmt(v) for v in result.box]
    row += box or [""] * 4
    row.append("" if np.isnan(result.score) else f"{result.score:.4f}")
    for values, count in ((result.quat, 4), (result.ypr, 3), (result.position_mm, 3)):
        row += [""] * count if values is None else [_fmt(v) for v in values]
    return row + [result.status]


AXIS_COLORS = ((0, 0, 255), (0, 255, 0), (255, 0, 0))  # BGR: x red, y green, z blue
STATUS_COLORS = {"ok": (0, 200, 0), "no face": (0, 0, 220), "lost": (0, 140, 255)}


def annotate(bgr: np.ndarray, result: TrackResult) -> np.ndarray:
    """A copy of the frame with the box, the head axes (length = head size) and the status."""
    image = bgr.copy()
    color = STATUS_COLORS[result.status]
    text = result.status
    if result.status == "ok":
        x0, y0, x1, y1 = np.round(result.box).astype(int)
        cv2.rectangle(image, (x0, y0), (x1, y1), color, 2)
        draw_axes(image, result.quat, result.center, result.size, colours=AXIS_COLORS)
        yaw, pitch, roll = result.ypr
        text = f"yaw {yaw:+.0f} pitch {pitch:+.0f} roll {roll:+.0f}  z {result.position_mm[2] / 10:.0f} cm"
    cv2.putText(image, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, color, 2, cv2.LINE_AA)
    return image


class VideoOutput:
    """Annotated mp4v video, written under a temporary name with the .mp4 extension OpenCV needs."""

    def __init__(self, path: Path, tmp: Path, fps: float):
        self.path, self.fps = path, fps
        self.video_tmp = tmp.with_name(tmp.name + path.suffix)
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None

    def write(self, bgr: np.ndarray) -> None:
        if self.writer is None:
            self.size = (bgr.shape[1], bgr.shape[0])
            self.writer = cv2.VideoWriter(str(self.video_tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self.size)
            if not self.writer.isOpened():
                raise PosenetError(f"{self.path}: OpenCV cannot write an mp4v video here")
        if (bgr.shape[1], bgr.shape[0]) != self.size:  # image folders may mix sizes
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        self.writer.write(bgr)

    def finish(self, tmp: Path) -> None:
        if self.writer is not None:
            self.writer.release()
            os.replace(self.video_tmp, tmp)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.release()
        with contextlib.suppress(FileNotFoundError):
            self.video_tmp.unlink()


@contextlib.contextmanager
def video_output(path: Path, fps: float) -> Iterator[VideoOutput]:
    with atomic_output(path) as tmp:
        video = VideoOutput(path, tmp, fps)
        try:
            yield video
            video.finish(tmp)
        finally:
            video.discard()


# --- command line ------------------------------------------------------------------------------

def default_model(kind: str) -> Path:
    """Our exported model if present, else Opentrack's published one, else a clear error."""
    ours, theirs = MODEL_FILES[kind]
    for candidate in (OUR_MODELS / ours, OPENTRACK_MODELS / theirs):
        if candidate.is_file():
            return candidate
    flag = "--localizer" if kind == "localizer" else "--pose"
    raise PosenetError(f"no {kind} model: neither {OUR_MODELS / ours} nor {OPENTRACK_MODELS / theirs} exists; "
                       f"pass {flag} F.onnx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", type=Path, help="video file to track")
    source.add_argument("--camera", type=int, metavar="N", help="camera index (OpenCV); Ctrl-C ends tracking")
    source.add_argument("--images", type=Path, metavar="DIR", help="folder of frames, in name order")
    parser.add_argument("--localizer", type=Path, metavar="F.onnx",
                        help="localizer model; when omitted work/models/localizer.onnx, else Opentrack's")
    parser.add_argument("--pose", type=Path, metavar="F.onnx",
                        help="pose model; when omitted work/models/pose_net.onnx, else Opentrack's")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="per-frame results")
    parser.add_argument("--out", type=Path, metavar="VIDEO.mp4", help="annotated video (box and head axes)")
    parser.add_argument("--udp", nargs="?", const="", metavar="HOST:PORT",
                        help="send poses to Opentrack's UDP input; HOST:PORT omitted: 127.0.0.1:4242")
    parser.add_argument("--smooth", type=parse_smooth, default=1.0, metavar="ALPHA",
                        help=f"output filter: exponential smoothing with gain ALPHA (1 = none), or "
                             f"'{AUTO_SMOOTH}': weighted by the pose net's rotation uncertainty")
    parser.add_argument("--fov", type=float, default=DEFAULT_FOV_DEG, metavar="DEG",
                        help="horizontal camera field of view, for the position")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument(TIMEOUT_OPTION, type=float, default=MODEL_TIMEOUT_S, metavar="SECONDS",
                        help="stop with an error when one model run takes longer than this")


def open_source(args: argparse.Namespace) -> Source:
    if args.video is not None:
        return open_video(args.video)
    if args.images is not None:
        return open_images(args.images)
    if args.camera < 0:  # OpenCV crashes the process on a negative index
        raise PosenetError(f"--camera {args.camera}: a camera index is 0 or more")
    return open_camera(args.camera)


def check_arguments(args: argparse.Namespace) -> None:
    """One PosenetError line for a numeric option out of its range."""
    if args.threads < 1:
        raise PosenetError(f"--threads {args.threads}: expected at least 1")
    if args.max_frames is not None and args.max_frames < 1:
        raise PosenetError(f"--max-frames {args.max_frames}: expected at least 1")
    check_timeout(args.model_timeout)


def run(args: argparse.Namespace) -> None:
    check_arguments(args)
    for path in (args.csv, args.out):
        if path is not None:
            check_writable(path, inputs=(args.video, args.localizer, args.pose))
    localizer = Localizer(args.localizer or default_model("localizer"), args.threads, args.model_timeout)
    pose = PoseEstimator(args.pose or default_model("pose"), args.threads, args.model_timeout)
    tracker = Tracker(localizer, pose, args.fov, args.smooth)
    address = parse_address(args.udp) if args.udp is not None else None
    source = open_source(args)
    total = min(filter(None, (source.total, args.max_frames)), default=None)
    counts = dict.fromkeys(STATUSES, 0)
    with contextlib.ExitStack() as stack:
        rows = None
        if args.csv is not None:
            handle = stack.enter_context(open(stack.enter_context(atomic_output(args.csv)), "w", newline=""))
            rows = csv.writer(handle)
            rows.writerow(CSV_COLUMNS)
        video = stack.enter_context(video_output(args.out, source.fps)) if args.out is not None else None
        sender = stack.enter_context(OpentrackSender(address)) if address is not None else None
        start = time.perf_counter()
        try:
            for frame in tqdm(source.frames, total=total, desc=f"track {source.name}", unit="frame"):
                if args.max_frames is not None and frame.index >= args.max_frames:
                    break
                result = tracker.step(cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2GRAY), frame.index, frame.time)
                counts[result.status] += 1
                if rows is not None:
                    rows.writerow(csv_row(result))
                if video is not None:
                    video.write(annotate(frame.bgr, result))
                if sender is not None and result.status == "ok":
                    sender.send(opentrack_values(result.position_mm, result.ypr))
        except KeyboardInterrupt:
            if source.total is not None:  # a file or folder cut short: partial outputs are removed
                raise
            # a camera runs until Ctrl-C: that is its normal end, and its outputs are kept
        elapsed = time.perf_counter() - start
    frames = sum(counts.values())
    wrote = [str(p) for p in (args.csv, args.out) if p is not None]
    if address is not None:
        wrote.append(f"{sender.sent} UDP packets to {address[0]}:{address[1]}")
    print(f"tracked {frames} frames ({counts['ok']} ok, {counts['no face']} no face, {counts['lost']} lost) "
          f"at {frames / max(elapsed, 1e-9):.0f} frames/s with {pose.path.name}; localizer ran "
          f"{tracker.localizer_runs} times ({tracker.face_checks} face checks); wrote {', '.join(wrote) or 'nothing'}")
