"""Tiny tracker datasets with exact labels (dot faces, rectangle scenes), shared by the tracker and export tests."""

from __future__ import annotations

import cv2
import numpy as np

from posenet.core import geometry, h5format
from posenet.core.facemodel import LANDMARKS_68
from posenet.tracker import contract

IMAGE_SIZE = 256
DOT_RADIUS = 3


def face_labels(quat: np.ndarray, translation: np.ndarray, camera: np.ndarray) -> dict[str, np.ndarray]:
    """Exact labels of the mean face at pose (quat, translation mm) through a pinhole camera."""
    points_cam = geometry.transform(LANDMARKS_68, quat, translation)
    xy = geometry.project(points_cam, camera)
    depth = (points_cam[:, 2] - translation[2]) * camera[0] / translation[2]
    return {"quats": geometry.canonical_quat(quat), "coords": geometry.head_coords(translation, camera),
            "rois": np.concatenate([xy.min(0), xy.max(0)]), "pt3d_68": np.column_stack([xy, depth])}


def dot_image(labels: dict[str, np.ndarray], size: int = IMAGE_SIZE) -> np.ndarray:
    """A dark image with a bright disc on every landmark: image/label agreement becomes measurable."""
    image = np.full((size, size), 20, np.uint8)
    for x, y in labels["pt3d_68"][:, :2]:
        cv2.circle(image, (int(round(x * 16)), int(round(y * 16))), DOT_RADIUS * 16, 255, -1, cv2.LINE_AA, shift=4)
    return image


def random_pose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    quat = geometry.aflw_to_quat(np.radians(rng.uniform([-25, -50, -20], [25, 50, 20])))
    camera = np.array([300.0, 300.0, IMAGE_SIZE / 2, IMAGE_SIZE / 2])
    translation = np.array([*rng.uniform(-15, 15, 2), rng.uniform(380, 450)])
    return quat, translation, camera


def face_file(path, count: int, seed: int = 0):
    """A tiny face-mode dataset (dot faces with exact labels), written with the project's writer."""
    rng = np.random.default_rng(seed)
    rows = [face_labels(*random_pose(rng)) for _ in range(count)]
    fields = {name: np.stack([row[name] for row in rows]).astype(np.float32) for name in rows[0]}
    fields["images"] = [h5format.encode_image(cv2.cvtColor(dot_image(row), cv2.COLOR_GRAY2RGB), lossy=False) for row in rows]
    return h5format.write_dataset(path, fields, {"source": "test dots"}, lossy=False)


def scene_file(path, count: int, seed: int = 0):
    """A tiny localizer dataset: 288 x 224 frames, a bright rectangle where the face box is, or nothing."""
    rng = np.random.default_rng(seed)
    height, width = contract.LOCALIZER_INPUT_HW
    images, rois, hasface = [], [], []
    for i in range(count):
        frame = np.full((height, width, 3), 30, np.uint8)
        face = i % 3 != 0
        roi = np.zeros(4)
        if face:
            x0, y0 = rng.uniform([10, 10], [180, 120])
            roi = np.array([x0, y0, x0 + rng.uniform(40, 90), y0 + rng.uniform(50, 90)])
            cv2.rectangle(frame, tuple(int(v) for v in roi[:2]), tuple(int(v) - 1 for v in roi[2:]), (230, 230, 230), -1)
        images.append(h5format.encode_image(frame, lossy=False))
        rois.append(roi)
        hasface.append(face)
    return h5format.write_dataset(path, {"images": images, "rois": np.array(rois, np.float32),
                                         "hasface": np.array(hasface)}, lossy=False)
