"""Every rotation, frame and camera convention of the project, in one place.

Frame: right-handed, x right, y down, z into the screen (OpenCV camera frame). The head
frame equals it at identity rotation and the face looks toward -z (the camera).
Quaternions are (x, y, z, w), scalar last (scipy order), canonical w >= 0; a pose
quaternion rotates head-local points into the camera frame. Rotation vectors are
axis * angle in the same frame (what cv2.Rodrigues / cv2.solvePnP use).

Euler angles exist for reporting only: AFLW2000-3D / 300W-LP `Pose_Para` (pitch, yaw,
roll) maps to R = R_XYZ(-pitch, yaw, roll), intrinsic XYZ. Errors use the wrap-safe
per-axis difference and the geodesic angle computed with atan2 (never acos, which
loses all precision near 0 and 180 degrees).

All functions are vectorised over leading dimensions; angles are radians unless the
name ends in `_deg`. This module imports nothing from the project.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.spatial.transform import Rotation

HEAD_SIZE_MM = 100.0  # `coords` size: projected length of 100 mm at the head centre
AFLW_EULER_ORDER = "XYZ"  # intrinsic; only this module may name an Euler order
NECK_EULER_ORDER = "YXZ"  # intrinsic: turn about the vertical, nod about the turned ear axis, tilt


def _apply(fn, array: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Run a scipy Rotation conversion over arbitrary leading dimensions."""
    array = np.asarray(array, dtype=np.float64)
    lead = array.shape[: array.ndim - len(in_shape)]
    out = fn(array.reshape(-1, *in_shape))
    return out.reshape(*lead, *out.shape[1:])


def canonical_quat(q: np.ndarray) -> np.ndarray:
    """Normalise and flip sign so that w >= 0 (q and -q are the same rotation)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., 3:4] < 0, -q, q)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    return _apply(lambda a: Rotation.from_quat(a).as_matrix(), q, (4,))


def matrix_to_quat(matrix: np.ndarray) -> np.ndarray:
    return canonical_quat(_apply(lambda a: Rotation.from_matrix(a).as_quat(), matrix, (3, 3)))


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    return _apply(lambda a: Rotation.from_quat(a).as_rotvec(), canonical_quat(q), (4,))


def rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    return canonical_quat(_apply(lambda a: Rotation.from_rotvec(a).as_quat(), rotvec, (3,)))


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    return _apply(lambda a: Rotation.from_rotvec(a).as_matrix(), rotvec, (3,))


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    return _apply(lambda a: Rotation.from_matrix(a).as_rotvec(), matrix, (3, 3))


def quat_multiply(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """The rotation q1 * q2 (apply q2 first, then q1)."""
    q1, q2 = np.broadcast_arrays(np.asarray(q1, float), np.asarray(q2, float))
    product = Rotation.from_quat(q1.reshape(-1, 4)) * Rotation.from_quat(q2.reshape(-1, 4))
    return canonical_quat(product.as_quat().reshape(q1.shape))


def _euler_to_quat(order: str, angles: np.ndarray) -> np.ndarray:
    """Intrinsic Euler angles (radians, scipy's `order`) -> canonical quaternion."""
    return canonical_quat(_apply(lambda a: Rotation.from_euler(order, a).as_quat(), angles, (3,)))


def aflw_to_quat(pitch_yaw_roll: np.ndarray) -> np.ndarray:
    """AFLW2000-3D / 300W-LP `Pose_Para[:3]` (pitch, yaw, roll, radians) -> quaternion."""
    pyr = np.asarray(pitch_yaw_roll, dtype=np.float64)
    return _euler_to_quat(AFLW_EULER_ORDER, np.stack([-pyr[..., 0], pyr[..., 1], pyr[..., 2]], axis=-1))


def neck_to_quat(yaw_pitch_roll: np.ndarray) -> np.ndarray:
    """A head turned (yaw), then nodded about its own ear-to-ear axis (pitch), then tilted (roll).

    The order of the neck's joints: the nod happens in the already turned head, so a profile
    that looks down nods in the image plane. In AFLW's order (`aflw_to_quat`) pitch turns about
    the camera's horizontal axis instead; both agree for near-frontal faces. Signs as AFLW's
    (pitch > 0 looks up, yaw > 0 turns to the image's left); radians.
    """
    ypr = np.asarray(yaw_pitch_roll, dtype=np.float64)
    return _euler_to_quat(NECK_EULER_ORDER, np.stack([ypr[..., 0], -ypr[..., 1], ypr[..., 2]], axis=-1))


def quat_to_aflw(q: np.ndarray) -> np.ndarray:
    """Quaternion -> AFLW (pitch, yaw, roll) in radians; the inverse of `aflw_to_quat`."""
    with warnings.catch_warnings():  # gimbal lock at |yaw| = 90 deg is inherent to AFLW angles
        warnings.simplefilter("ignore", UserWarning)
        angles = _apply(lambda a: Rotation.from_quat(a).as_euler(AFLW_EULER_ORDER), q, (4,))
    return np.stack([-angles[..., 0], angles[..., 1], angles[..., 2]], axis=-1)


def ypr_deg(q: np.ndarray) -> np.ndarray:
    """(yaw, pitch, roll) in degrees, AFLW convention: the literature's reporting angles."""
    pitch, yaw, roll = np.moveaxis(np.degrees(quat_to_aflw(q)), -1, 0)
    return np.stack([yaw, pitch, roll], axis=-1)


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Map angles (radians) to (-pi, pi]."""
    angle = np.asarray(angle, dtype=np.float64)
    return np.arctan2(np.sin(angle), np.cos(angle))


def signed_euler_errors_deg(q_true: np.ndarray, q_pred: np.ndarray) -> np.ndarray:
    """Wrap-safe signed (yaw, pitch, roll) errors in degrees: prediction minus truth, in (-180, 180]."""
    diff = np.radians(ypr_deg(q_pred) - ypr_deg(q_true))
    return np.degrees(wrap_angle(diff))


def euler_errors_deg(q_true: np.ndarray, q_pred: np.ndarray) -> np.ndarray:
    """Wrap-safe absolute (yaw, pitch, roll) errors in degrees."""
    return np.abs(signed_euler_errors_deg(q_true, q_pred))


def geodesic_rad(q_true: np.ndarray, q_pred: np.ndarray) -> np.ndarray:
    """Angle of the relative rotation R_true^T R_pred, via atan2 (stable at 0 and pi)."""
    conjugate = canonical_quat(q_true) * np.array([-1.0, -1.0, -1.0, 1.0])
    relative = quat_multiply(conjugate, q_pred)
    return 2.0 * np.arctan2(np.linalg.norm(relative[..., :3], axis=-1), relative[..., 3])


def geodesic_deg(q_true: np.ndarray, q_pred: np.ndarray) -> np.ndarray:
    return np.degrees(geodesic_rad(q_true, q_pred))


# --- mirror (horizontal image flip) -------------------------------------------------

def mirror_quat(q: np.ndarray) -> np.ndarray:
    """Pose of the mirrored image: M R M with M = diag(-1, 1, 1), i.e. (qx, -qy, -qz, qw)."""
    return canonical_quat(np.asarray(q, dtype=np.float64) * np.array([1.0, -1.0, -1.0, 1.0]))


def mirror_rotvec(rotvec: np.ndarray) -> np.ndarray:
    """Rotation vector of the mirrored image: (rx, -ry, -rz)."""
    return np.asarray(rotvec, dtype=np.float64) * np.array([1.0, -1.0, -1.0])


def mirror_x(points: np.ndarray, width: float) -> np.ndarray:
    """x -> W - x on the first coordinate (pixel-edge convention); other coordinates kept.

    Landmark arrays must also be re-indexed with `facemodel.FLIP_PERMUTATION_68`.
    """
    points = np.array(points, dtype=np.float64, copy=True)
    points[..., 0] = width - points[..., 0]
    return points


def mirror_roi(roi: np.ndarray, width: float) -> np.ndarray:
    """Box (x0, y0, x1, y1) of the mirrored image, still with x0 <= x1."""
    roi = np.asarray(roi, dtype=np.float64)
    return np.stack([width - roi[..., 2], roi[..., 1], width - roi[..., 0], roi[..., 3]], axis=-1)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


# --- in-plane rotation ------------------------------------------------------------------

def rotate_quat_inplane(q: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Pose after rotating the image by `angle` (radians, clockwise on screen): Rz(angle) * R."""
    angle = np.asarray(angle, dtype=np.float64)
    half = angle / 2.0
    rz = np.stack([np.zeros_like(half), np.zeros_like(half), np.sin(half), np.cos(half)], axis=-1)
    return quat_multiply(rz, q)


def inplane_affine(center_xy: np.ndarray, angle: float) -> np.ndarray:
    """2x3 affine (for cv2.warpAffine) that rotates the image as Rz(angle) rotates the scene.

    With y pointing down, a positive angle turns the image clockwise on screen.
    """
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    center = np.asarray(center_xy, dtype=np.float64)
    return np.hstack([rotation, (center - rotation @ center)[:, None]])


def apply_affine(points_xy: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Map (..., 2+) points with a 2x3 affine; extra coordinates (depth) are kept."""
    points = np.array(points_xy, dtype=np.float64, copy=True)
    points[..., :2] = points[..., :2] @ affine[:, :2].T + affine[:, 2]
    return points


# --- camera -------------------------------------------------------------------------------

def camera_for_image(width: float, height: float, focal: float | None = None) -> np.ndarray:
    """(fx, fy, cx, cy) for an uncalibrated image: f = width (about 53 deg horizontal FOV)."""
    f = float(width if focal is None else focal)
    return np.array([f, f, width / 2.0, height / 2.0])


def intrinsics(camera: np.ndarray) -> np.ndarray:
    """(fx, fy, cx, cy) -> 3x3 camera matrix K (what cv2.solvePnP takes)."""
    fx, fy, cx, cy = np.asarray(camera, dtype=np.float64)
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def transform(points_model: np.ndarray, q: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Head-frame points (..., P, 3) -> camera frame, with pose (q, t) of shape (..., 4), (..., 3)."""
    rotation = quat_to_matrix(q)
    points = np.asarray(points_model, dtype=np.float64)
    return np.einsum("...ij,...pj->...pi", rotation, points) + np.asarray(t, float)[..., None, :]


def project(points_cam: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera-frame points (..., P, 3) -> (..., P, 2).

    `camera` is (fx, fy, cx, cy), either shape (4,) or (..., 4) with one camera per
    leading index of `points_cam` (the point axis P excluded).
    """
    points = np.asarray(points_cam, dtype=np.float64)
    camera = np.asarray(camera, dtype=np.float64)[..., None, :]
    z = points[..., 2]
    u = camera[..., 0] * points[..., 0] / z + camera[..., 2]
    v = camera[..., 1] * points[..., 1] / z + camera[..., 3]
    return np.stack([u, v], axis=-1)


def head_coords(center_cam: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """`coords` (x, y, size) from the head centre in camera frame (..., 3) and its camera."""
    center = np.asarray(center_cam, dtype=np.float64)
    camera = np.asarray(camera, dtype=np.float64)
    xy = project(center[..., None, :], camera)[..., 0, :]
    size = camera[..., 0] * HEAD_SIZE_MM / center[..., 2]
    return np.concatenate([xy, size[..., None]], axis=-1)
