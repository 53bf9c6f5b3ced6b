"""The one mirror and the one in-plane rotation of a labelled sample (image and labels together).

Every augmentation that moves pixels uses these, so labels follow the image exactly
(DESIGN.md §2): mirroring flips x about the image width and re-indexes the landmarks with the
iBUG flip permutation; an in-plane rotation composes Rz(angle) on the left of the pose, and
landmarks, head centre and box follow the same affine map. A sample is a dict of the HDF5
fields (DESIGN.md §3) for one image; fields it lacks are left alone.
"""

from __future__ import annotations

import cv2
import numpy as np

from posenet.core import geometry
from posenet.core.facemodel import FLIP_PERMUTATION_68

LANDMARK_FIELDS = ("pt3d_68", "pt2d_68")
Sample = dict[str, np.ndarray]


def rotated_box(roi: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Axis-aligned box of the ellipse inscribed in `roi` after the rotation `affine` (2x3): a
    box that stays as tight as the face inside it, where rotating the corners would grow it."""
    roi = np.asarray(roi, dtype=np.float64)
    center = geometry.apply_affine((roi[:2] + roi[2:]) / 2.0, affine)
    half = (roi[2:] - roi[:2]) / 2.0
    extent = np.sqrt((affine[:, :2] ** 2) @ (half**2))
    return np.concatenate([center - extent, center + extent])


def _has_face(sample: Sample) -> bool:
    return bool(sample.get("hasface", True))


def mirror_sample(sample: Sample, image: np.ndarray) -> tuple[Sample, np.ndarray]:
    """The sample and its image mirrored horizontally, landmarks re-indexed."""
    width = image.shape[1]
    out = dict(sample)
    if "quats" in sample:
        out["quats"] = geometry.mirror_quat(sample["quats"])
    if "coords" in sample:
        out["coords"] = geometry.mirror_x(sample["coords"], width)
    for name in LANDMARK_FIELDS:
        if name in sample:
            out[name] = geometry.mirror_x(sample[name], width)[FLIP_PERMUTATION_68]
    if "rois" in sample and _has_face(sample):
        out["rois"] = geometry.mirror_roi(sample["rois"], width)
    if "camera" in sample:
        camera = np.asarray(sample["camera"])
        out["camera"] = np.concatenate([camera[:2], geometry.mirror_x(camera[None, 2:], width)[0]])
    return out, np.ascontiguousarray(image[:, ::-1])


def rotate_sample(sample: Sample, image: np.ndarray, angle: float, center: np.ndarray,
                  border: int = cv2.BORDER_CONSTANT) -> tuple[Sample, np.ndarray]:
    """The sample and its image rotated by `angle` (radians, clockwise on screen) about `center`
    (edge coordinates, pixels). About the principal point this is exactly a camera roll; about
    another point it is the approximation every published augmentation makes."""
    center = np.asarray(center, dtype=np.float64)
    affine = geometry.inplane_affine(center, angle)
    out = dict(sample)
    if angle != 0.0:
        height, width = image.shape[:2]
        pixel_affine = geometry.inplane_affine(center - 0.5, angle)  # about pixel index c - 0.5
        image = cv2.warpAffine(image, pixel_affine, (width, height), flags=cv2.INTER_LINEAR, borderMode=border)
    if "quats" in sample:
        out["quats"] = geometry.rotate_quat_inplane(sample["quats"], angle)
    if "coords" in sample:
        coords = np.asarray(sample["coords"])
        out["coords"] = np.concatenate([geometry.apply_affine(coords[:2], affine), coords[2:]])
    for name in LANDMARK_FIELDS:
        if name in sample:
            out[name] = geometry.apply_affine(sample[name], affine)
    if "rois" in sample and _has_face(sample):
        out["rois"] = rotated_box(sample["rois"], affine)
    return out, image
