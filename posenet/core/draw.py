"""Drawing the head pose on an image: one axis drawer for contact sheets, TensorBoard and the tracker."""

from __future__ import annotations

import cv2
import numpy as np

from posenet.core.geometry import quat_to_matrix

AXIS_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))  # RGB: x red, y green, z blue


def _point(xy: np.ndarray) -> tuple[int, int]:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


def draw_axes(image: np.ndarray, quat: np.ndarray, center: np.ndarray, length: float,
              thickness: int = 2, colours: tuple = AXIS_COLOURS) -> None:
    """Draw the head's x, y, z axes (columns of R, projected orthographically) at `center`, in place.

    The axis pointing away from the camera is drawn first, so nearer axes stay on top.
    """
    rotation = quat_to_matrix(quat)
    for k in np.argsort(-rotation[2]):
        end = np.asarray(center, dtype=np.float64) + length * rotation[:2, k]
        cv2.line(image, _point(center), _point(end), colours[k], thickness, cv2.LINE_AA)
