"""AFLW2000-3D: `imageNNNNN.jpg` + `imageNNNNN.mat` pairs -> the project's HDF5 format.

The `.mat` files hold `Pose_Para` (1x7: pitch, yaw, roll in radians, tx, ty, tz, scale),
`pt3d_68` (3x68: x, y in pixels, z depth in the same scale, pointing toward the viewer)
and `pt2d` (2x21 AFLW points here, 2x68 in 300W-LP). Fields written per sample:

- `quats`: `geometry.aflw_to_quat(Pose_Para[:3])` (DESIGN.md §2).
- `pose_para`: the raw (pitch, yaw, roll) in radians, float32, kept so that the
  evaluation protocol (`posenet.core.protocol`) filters on the raw values, as the
  literature does.
- `pt3d_68`: x, y as given; z negated (our z points into the screen) and shifted so
  that the head centre is at depth 0.
- `coords`: the face model (`facemodel.LANDMARKS_68`), rotated by the label pose, is
  fitted to the 68 landmarks' x, y by least squares over a scale s and a 2D shift t
  (orthographic: AFLW's fitted 3DMM is weak-perspective). The model origin, the head
  centre, lands at t, and 100 mm measure 100 s pixels: coords = (t_x, t_y, 100 s).
- `rois`: the tight box of the 68 landmarks (`ROI_MARGIN` = 0), exactly the rule of
  Opentrack's own AFLW training files (checked on `opentrack_format_sample.h5`); the
  crop margin is the input pipeline's business, not the label's.
- `camera`: the data has none; `geometry.camera_for_image` (f = image width, principal
  point at the centre) is stored so that PnP re-labelling and projection have one.

Items without a `.mat`, with an unreadable `.mat`, without `Pose_Para` or with a
corrupt image are skipped and counted.
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import scipy.io

from data_tools.convert.archive import Archive, Skip, read_image, stem
from posenet.core import geometry
from posenet.core.facemodel import LANDMARKS_68

SOURCE = "AFLW2000-3D"
ROI_MARGIN = 0.0  # fraction of the landmark box added on each side
IMAGE_SUFFIX = ".jpg"


def load_mat(archive: Archive, name: str) -> dict[str, np.ndarray]:
    """A MATLAB file member as a dict of arrays; `Skip` when missing or unreadable."""
    if name not in archive.names:
        raise Skip("no .mat for the image")
    try:
        return scipy.io.loadmat(io.BytesIO(archive.read(name)))
    except Skip:
        raise
    except Exception:  # scipy raises many types (ValueError, MatReadError, TypeError, ...)
        raise Skip("unreadable .mat") from None


def floats(value: object, what: str) -> np.ndarray:
    """A .mat entry as float64; `Skip` when it holds no numbers (text, a cell or struct array)."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Skip(f"malformed {what} in .mat") from None


def pose_para(mat: dict[str, np.ndarray]) -> np.ndarray:
    """Raw (pitch, yaw, roll) radians from `Pose_Para`; `Skip` when absent or malformed."""
    if "Pose_Para" not in mat:
        raise Skip("no Pose_Para in .mat")
    values = floats(mat["Pose_Para"], "Pose_Para").reshape(-1)
    if values.size < 3 or not np.all(np.isfinite(values[:3])):
        raise Skip("malformed Pose_Para in .mat")
    return values[:3]


def landmark_roi(points_xy: np.ndarray, margin: float = ROI_MARGIN) -> np.ndarray:
    """Box (x0, y0, x1, y1) of the points, grown by `margin` of its size on each side."""
    low, high = points_xy.min(axis=0), points_xy.max(axis=0)
    grow = margin * (high - low)
    return np.concatenate([low - grow, high + grow])


def fit_head(points_xy: np.ndarray, quat: np.ndarray) -> tuple[float, np.ndarray]:
    """Scale s and shift t with s * (R @ model)_xy + t ~ points (least squares).

    Returns (s, t): t is the image position of the head centre (the model origin) and
    s the pixels per millimetre at the head.
    """
    model = (LANDMARKS_68 @ geometry.quat_to_matrix(quat).T)[:, :2]
    model_c = model - model.mean(axis=0)
    points_c = points_xy - points_xy.mean(axis=0)
    scale = float((model_c * points_c).sum() / (model_c * model_c).sum())
    return scale, points_xy.mean(axis=0) - scale * model.mean(axis=0)


def model_depth(quat: np.ndarray, scale: float) -> np.ndarray:
    """Depth of the 68 fitted model points relative to the head centre, in pixels."""
    return scale * (LANDMARKS_68 @ geometry.quat_to_matrix(quat).T)[:, 2]


def labelled_record(image: np.ndarray, buffer: np.ndarray, angles: np.ndarray,
                    points_xy: np.ndarray, depth_toward_viewer: np.ndarray | None) -> dict[str, object]:
    """One sample from an AFLW-style label: raw angles and the 68 landmarks (x, y[, z]).

    Without a measured depth (300W-LP), z comes from the fitted face model.
    """
    quat = geometry.aflw_to_quat(angles)
    scale, centre = fit_head(points_xy, quat)
    if depth_toward_viewer is None:
        depth = model_depth(quat, scale)
    else:
        depth = -depth_toward_viewer
        depth = depth - np.mean(depth - model_depth(quat, scale))  # head centre at depth 0
    height, width = image.shape[:2]
    return {
        "images": buffer,
        "quats": quat.astype(np.float32),
        "pose_para": angles.astype(np.float32),
        "coords": np.array([*centre, scale * geometry.HEAD_SIZE_MM], np.float32),
        "rois": landmark_roi(points_xy).astype(np.float32),
        "pt3d_68": np.column_stack([points_xy, depth]).astype(np.float32),
        "camera": geometry.camera_for_image(width, height).astype(np.float32),
    }


def pt3d_from_mat(mat: dict[str, np.ndarray]) -> np.ndarray:
    """`pt3d_68` (3x68) as (68, 3); `Skip` when absent or of another shape."""
    points = floats(mat.get("pt3d_68", np.empty(0)), "pt3d_68")
    if points.shape != (3, 68) or not np.all(np.isfinite(points)):
        raise Skip("no 3x68 pt3d_68 in .mat")
    return points.T


class Converter:
    """Every `*.jpg` with a sibling `.mat`, anywhere in the archive."""

    source = SOURCE

    def __init__(self, archive: Archive, args: argparse.Namespace | None = None) -> None:
        self.archive = archive

    def items(self) -> list[str]:
        return [n for n in self.archive.names if n.lower().endswith(IMAGE_SUFFIX)]

    def convert(self, item: str) -> list[dict[str, object]]:
        mat = load_mat(self.archive, stem(item) + ".mat")
        angles = pose_para(mat)
        points = pt3d_from_mat(mat)
        image, buffer = read_image(self.archive, item)
        return [labelled_record(image, buffer, angles, points[:, :2], points[:, 2])]

    def attrs(self) -> dict[str, object]:
        return {"camera_note": "no calibration in the data: f = image width, centre principal point"}
