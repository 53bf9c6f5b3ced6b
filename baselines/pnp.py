"""The landmark baseline: dlib's 68 landmarks + cv2.solvePnP against the project's mean face.

Every head-pose paper compares against "dlib 68 landmarks + PnP" (published MAE on
AFLW2000-3D: yaw 23.1, pitch 13.6, roll 10.5, mean 15.8 deg) and against "oracle
landmarks + PnP" (the annotated landmarks instead of dlib's: 8.65 deg). Both are here:

    landmarks_68(image, box)              dlib's shape predictor inside a face box -> (68, 2)
    estimate_pose(points_2d, camera)      solvePnP with `facemodel.LANDMARKS_68` -> PnPResult
    PnPPredictor("dlib" | "oracle").predict(dataset) -> (N, 4) quaternions, NaN rows = failures

The camera is the dataset's `camera` field when present, otherwise
`geometry.camera_for_image` (f = image width, principal point at the centre). solvePnP
with a non-planar model has mirror-like local minima where the head sits behind the
camera or the face looks away from it; such back-facing solutions are rejected and the
solve is retried with the other methods and a frontal initial guess.

Figures (`posenet bench pnp`, 2 shared CPU cores; details in results/bench/pnp.md):
- Exact synthetic landmarks (|yaw| <= 75, |pitch| <= 60, |roll| <= 45 deg): error ~1e-14 deg
  with every method. Gaussian noise 0.5 / 1 / 2 / 4 px on a 100-180 px face (1000 poses):
  median 0.15 / 0.30 / 0.61 / 1.21 deg, 95th percentile 0.31 / 0.63 / 1.27 / 2.54 deg
  (linear in the noise).
- The 16 AFLW2000-3D samples, f = image width: dlib HOG + PnP MAE 4.54 deg on the 12 faces HOG
  finds (the 4 misses are profiles, |yaw| >= 55); with the landmark box instead of detection
  (`use_roi_boxes`) 13.1 deg on all 16 (dlib's landmarks fail on profiles). Oracle (pt3d_68 x, y)
  + PnP: 4.17 deg (pitch 8.7). Published: 15.8 (dlib) and 8.65 (oracle) on all 2000 images.
  AFLW's labels are weak-perspective 3DMM fits; a near-orthographic camera (f = 10 x width)
  lowers the oracle MAE to 3.0 deg (its +5.9 deg pitch bias vanishes) but raises dlib's to
  5.1 deg, so the default stays f = image width (DESIGN.md), and `focal_widths` overrides it
  (the `aflw2000` evaluation protocol sets 30).
- Per 640x480 BIWI frame (2 cores shared with other jobs, so +-50%): HOG 26-57 ms (upsample 0),
  106-171 ms (upsample 1), CNN (MMOD, upsample 0) 3.3-3.6 s, landmarks 4.7 ms, PnP 0.3-2.3 ms.
- Back-facing first solutions do occur with dlib's landmarks (2 of 16 AFLW samples, 9 of 60
  synthetic crops with `use_roi_boxes`); the retries recovered every one of them.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import cv2
import dlib
import numpy as np
from tqdm import tqdm

from baselines.detect import DETECTORS, as_rgb_uint8, choose_face, detect_faces, packaged_model
from posenet.core import geometry
from posenet.core.errors import PosenetError
from posenet.core.facemodel import LANDMARKS_68
from posenet.core.h5format import Dataset

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
METHODS = {"iterative": cv2.SOLVEPNP_ITERATIVE, "epnp": cv2.SOLVEPNP_EPNP, "sqpnp": cv2.SOLVEPNP_SQPNP}
MIN_POINTS = 6  # solvePnP needs at least this many non-coplanar points (ITERATIVE's DLT start)
MAX_VIEW_ANGLE_DEG = 105.0  # beyond this the face looks away from the camera: no landmarks visible
PUBLISHED_DLIB_PNP_MAE = 15.8  # AFLW2000-3D, yaw 23.1 / pitch 13.6 / roll 10.5 (the literature's row)
PUBLISHED_ORACLE_PNP_MAE = 8.65
STAGES = ("detect", "landmarks", "pnp")


class PnPResult(NamedTuple):
    quat: np.ndarray  # (4,) x, y, z, w: head frame -> camera frame
    translation: np.ndarray  # (3,) head centre in the camera frame, mm
    reprojection_px: float  # RMS distance between the landmarks and the reprojected model


# --- landmarks -------------------------------------------------------------------------------

def predictor_path() -> Path:
    """dlib's 68-point model, shipped by face_recognition_models (found, never downloaded)."""
    return packaged_model(PREDICTOR_FILE)


@functools.cache
def load_shape_predictor(path: Path | None = None) -> "dlib.shape_predictor":
    """The shape predictor at `path` (default: the packaged one); one clear error if unusable."""
    path = Path(path) if path is not None else predictor_path()
    if not path.is_file():
        raise PosenetError(f"{path}: dlib 68-landmark shape predictor file not found")
    try:
        return dlib.shape_predictor(str(path))
    except RuntimeError as error:
        raise PosenetError(f"{path}: not a dlib shape predictor ({str(error).strip().splitlines()[0]})") from None


def landmarks_68(image_rgb: np.ndarray, box: np.ndarray, predictor: "dlib.shape_predictor | None" = None) -> np.ndarray:
    """The 68 iBUG landmarks (x, y pixels) that dlib finds inside face box (x0, y0, x1, y1)."""
    predictor = predictor or load_shape_predictor()
    x0, y0, x1, y1 = np.round(np.asarray(box, dtype=np.float64)).astype(int)
    shape = predictor(as_rgb_uint8(image_rgb), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


# --- pose -------------------------------------------------------------------------------------

def _faces_camera(rotation: np.ndarray, translation: np.ndarray) -> bool:
    """Head in front of the camera and the face turned towards it (within MAX_VIEW_ANGLE_DEG)."""
    if translation[2] <= 0:
        return False
    forward = -rotation[:, 2]  # the face looks toward -z of the head frame
    to_camera = -translation / np.linalg.norm(translation)
    return float(forward @ to_camera) > np.cos(np.radians(MAX_VIEW_ANGLE_DEG))


def _frontal_guess(points_2d: np.ndarray, model: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rvec, tvec) of a frontal face at the distance that matches the landmark spread."""
    spread_px = np.linalg.norm(points_2d.std(axis=0))
    spread_mm = np.linalg.norm(model[:, :2].std(axis=0))
    depth = k[0, 0] * spread_mm / max(spread_px, 1e-6)
    centre = (points_2d.mean(axis=0) - k[:2, 2]) * depth / k[0, 0]
    return np.zeros(3), np.array([centre[0], centre[1], depth])


def _solve(points_2d: np.ndarray, model: np.ndarray, k: np.ndarray, method: str,
           guess: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """One cv2.solvePnP call -> (rotation matrix, translation), or None when it fails."""
    rvec, tvec = (np.array(v, np.float64).reshape(3, 1) for v in guess) if guess else (None, None)
    try:
        ok, rvec, tvec = cv2.solvePnP(model, points_2d, k, None, rvec, tvec,
                                      useExtrinsicGuess=guess is not None, flags=METHODS[method])
    except cv2.error:
        return None
    if not ok or not np.all(np.isfinite(rvec)) or not np.all(np.isfinite(tvec)):
        return None
    return cv2.Rodrigues(rvec)[0], tvec.ravel()


def _reprojection_px(points_2d: np.ndarray, model: np.ndarray, quat: np.ndarray,
                     translation: np.ndarray, camera: np.ndarray) -> float:
    projected = geometry.project(geometry.transform(model, quat, translation), camera)
    return float(np.sqrt(np.mean(np.sum((projected - points_2d) ** 2, axis=-1))))


def estimate_pose(landmarks_2d: np.ndarray, camera: np.ndarray, method: str = "iterative",
                  model_points: np.ndarray = LANDMARKS_68) -> PnPResult | None:
    """Head pose from 68 image landmarks with solvePnP; None when no front-facing solution exists.

    Rows of `landmarks_2d` that are not finite (missing points) are left out. `method` is
    tried first; if its solution is back-facing, the iterative solver from a frontal guess
    and the other methods are tried in turn, and the first front-facing solution is returned.
    """
    if method not in METHODS:
        raise PosenetError(f"--method {method}: unknown PnP method; choose from {', '.join(METHODS)}")
    points = np.asarray(landmarks_2d, dtype=np.float64)
    visible = np.all(np.isfinite(points), axis=-1)
    if visible.sum() < MIN_POINTS:
        return None
    points, model = np.ascontiguousarray(points[visible]), np.ascontiguousarray(model_points[visible], np.float64)
    k = geometry.intrinsics(camera)
    attempts = [(method, None), ("iterative", _frontal_guess(points, model, k))]
    attempts += [(other, None) for other in METHODS if other != method]
    for name, guess in attempts:
        solution = _solve(points, model, k, name, guess)
        if solution is not None and _faces_camera(*solution):
            rotation, translation = solution
            quat = geometry.matrix_to_quat(rotation)
            return PnPResult(quat, translation, _reprojection_px(points, model, quat, translation, camera))
    return None


# --- the predictor used by `posenet evaluate pnp | pnp-oracle` ------------------------------------

class PnPPredictor:
    """Landmarks + PnP over a whole dataset: (N, 4) quaternions, NaN rows where it failed.

    landmarks="dlib": detect faces with `detector`, take the detection that overlaps the
    sample's `rois` box best (a miss, or a detection of another face, is a failure: the roi
    is never used silently); `use_roi_boxes=True` instead feeds the roi straight to the
    landmark step (the "--boxes roi" setting, which measures landmarks + PnP alone).
    landmarks="oracle": the dataset's own landmarks (`pt2d_68`, else `pt3d_68` x, y), the
    literature's "oracle landmarks + PnP" row. `timings` holds mean ms per stage and face.
    """

    def __init__(self, landmarks: str = "dlib", detector: str = "hog", method: str = "iterative",
                 upsample: int = 1, use_roi_boxes: bool = False, focal_widths: float | None = None) -> None:
        if landmarks not in ("dlib", "oracle"):
            raise PosenetError(f"landmarks={landmarks!r}: choose 'dlib' or 'oracle'")
        if detector not in DETECTORS:
            raise PosenetError(f"--detector {detector}: unknown face detector; choose from {', '.join(DETECTORS)}")
        if method not in METHODS:
            raise PosenetError(f"--method {method}: unknown PnP method; choose from {', '.join(METHODS)}")
        self.landmarks, self.detector, self.method = landmarks, detector, method
        self.upsample, self.use_roi_boxes, self.focal_widths = upsample, use_roi_boxes, focal_widths
        if landmarks == "oracle":
            self.name = "pnp-oracle"
        else:
            self.name = "pnp-roi" if use_roi_boxes else ("pnp" if detector == "hog" else f"pnp-{detector}")
        self.timings: dict[str, float] = {}
        self.failures = 0

    def _camera(self, dataset: Dataset, index: int, image: np.ndarray) -> np.ndarray:
        """The file's camera, else (or when `focal_widths` is given) f = `focal_widths` x the image
        width, 1 by default."""
        if "camera" in dataset and self.focal_widths is None:
            return np.asarray(dataset["camera"][index], dtype=np.float64)
        height, width = image.shape[:2]
        return geometry.camera_for_image(width, height, None if self.focal_widths is None else self.focal_widths * width)

    def _oracle_points(self, dataset: Dataset, index: int) -> np.ndarray:
        if "pt2d_68" in dataset:
            return np.asarray(dataset["pt2d_68"][index], dtype=np.float64)
        if "pt3d_68" in dataset:
            return np.asarray(dataset["pt3d_68"][index], dtype=np.float64)[:, :2]
        raise PosenetError(f"{dataset.path}: pnp-oracle needs field 'pt2d_68' or 'pt3d_68'")

    def _dlib_points(self, image: np.ndarray, roi: np.ndarray | None, clock: dict[str, list[float]]) -> np.ndarray | None:
        if self.use_roi_boxes:
            box = roi
        else:
            start = time.perf_counter()
            found = choose_face(detect_faces(image, self.detector, self.upsample), roi)
            clock["detect"].append(time.perf_counter() - start)
            box = None if found is None else found.box
        if box is None:
            return None
        start = time.perf_counter()
        points = landmarks_68(image, box)
        clock["landmarks"].append(time.perf_counter() - start)
        return points

    def predict(self, dataset: Dataset) -> np.ndarray:
        """Quaternions (N, 4) for every sample of `dataset`; NaN rows for failures (no face, no pose)."""
        if self.landmarks == "dlib" and self.use_roi_boxes and "rois" not in dataset:
            raise PosenetError(f"{dataset.path}: --boxes roi needs the field 'rois'")
        if self.landmarks == "dlib":
            load_shape_predictor()  # a missing model file fails before the loop, in one line
        quats = np.full((len(dataset), 4), np.nan)
        clock: dict[str, list[float]] = defaultdict(list)
        for index in tqdm(range(len(dataset)), desc=self.name, unit="img", leave=False):
            image = dataset.image(index)
            if self.landmarks == "oracle":
                points = self._oracle_points(dataset, index)
            else:
                roi = np.asarray(dataset["rois"][index], np.float64) if "rois" in dataset else None
                points = self._dlib_points(image, roi, clock)
            if points is None:
                continue
            start = time.perf_counter()
            result = estimate_pose(points, self._camera(dataset, index, image), self.method)
            clock["pnp"].append(time.perf_counter() - start)
            if result is not None:
                quats[index] = result.quat
        self.failures = int(np.isnan(quats[:, 0]).sum())
        self.timings = {stage: 1000.0 * float(np.mean(clock[stage])) for stage in STAGES if clock[stage]}
        return quats


# --- accuracy with known landmarks ------------------------------------------------------------

SWEEP_CAMERA = geometry.camera_for_image(640, 480)  # a 640x480 frame, f = width
SWEEP_DEPTH_MM = (500.0, 900.0)  # face about 100-180 px wide in that frame
SWEEP_MAX_YPR_DEG = (75.0, 60.0, 45.0)  # |yaw|, |pitch|, |roll|: where PnP on 68 points is well-posed
NOISE_LEVELS_PX = (0.0, 0.5, 1.0, 2.0, 4.0)


def synthetic_views(n: int, seed: int = 0, noise_px: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Random poses of the mean face projected into SWEEP_CAMERA: (quats (n, 4), landmarks (n, 68, 2)).

    Uniform yaw, pitch, roll within SWEEP_MAX_YPR_DEG, depth within SWEEP_DEPTH_MM, the head
    anywhere in the middle half of the frame; Gaussian noise of `noise_px` (per coordinate)
    on the projected points.
    """
    rng = np.random.default_rng(seed)
    yaw, pitch, roll = (rng.uniform(-limit, limit, n) for limit in SWEEP_MAX_YPR_DEG)
    quats = geometry.aflw_to_quat(np.radians(np.stack([pitch, yaw, roll], axis=-1)))
    depth = rng.uniform(*SWEEP_DEPTH_MM, n)
    offset = rng.uniform(-0.25, 0.25, (n, 2)) * SWEEP_CAMERA[2:] * 2 / SWEEP_CAMERA[0]
    translation = np.column_stack([offset * depth[:, None], depth])
    points = geometry.project(geometry.transform(LANDMARKS_68, quats, translation), SWEEP_CAMERA)
    return quats, points + rng.normal(0.0, noise_px, points.shape)


def pose_errors_deg(quats: np.ndarray, landmarks_2d: np.ndarray, camera: np.ndarray = SWEEP_CAMERA,
                    method: str = "iterative") -> np.ndarray:
    """Geodesic error (deg) of PnP on each set of landmarks; NaN where PnP found no pose."""
    estimates = [estimate_pose(points, camera, method) for points in landmarks_2d]
    predicted = np.array([r.quat if r is not None else np.full(4, np.nan) for r in estimates])
    errors = np.full(len(quats), np.nan)
    found = ~np.isnan(predicted[:, 0])
    errors[found] = geometry.geodesic_deg(quats[found], predicted[found])
    return errors


def noise_sweep(noise_levels: tuple[float, ...] = NOISE_LEVELS_PX, n: int = 200, seed: int = 0,
                method: str = "iterative") -> list[tuple[float, float, float, int]]:
    """(noise px, median deg, 95th percentile deg, failures) of PnP on noisy synthetic landmarks."""
    rows = []
    for noise in noise_levels:
        errors = pose_errors_deg(*synthetic_views(n, seed, noise), method=method)
        rows.append((noise, float(np.nanmedian(errors)), float(np.nanpercentile(errors, 95)),
                     int(np.isnan(errors).sum())))
    return rows
