"""BIWI Kinect Head Pose: `NN/frame_XXXXX_rgb.png` + pose files + `NN/rgb.cal` -> HDF5.

Pose files, per frame (the depth camera's frame: x right, y down, z forward, mm, which
is already our camera frame; a head centre of (65, 34, 878) projects onto the face):

- `frame_XXXXX_pose.txt`: three rows of a 3x3 rotation M, then the head centre. M, read
  row by row, is our pose matrix as it stands. Why: the angles every BIWI evaluation
  uses (Hopenet/FSA-Net: R = M^T, pitch = atan2(R32, R33), yaw = -atan2(-R31,
  hypot(R32, R33)), roll = -atan2(R21, R11)) are AFLW (pitch, yaw, roll), and solving
  those formulas gives M = R_XYZ(-pitch, yaw, roll), i.e. `geometry.aflw_to_quat`
  (verified numerically in tests/test_convert_biwi.py).
- `frame_XXXXX_pose.bin` (what the shared sample has): 6 float32, head centre x, y, z
  (mm) then pitch, yaw, roll (degrees) in Fanelli's signs: pitch is the negated AFLW
  pitch, yaw and roll are AFLW's. Checked on sequence 01 frames 166-175 against the
  opal23 annotations (AFLW pitch = opal pitch, yaw = -opal yaw, roll = opal roll):
  pitch and yaw agree within 0.25 deg; roll within 1.2 deg, the gap growing with
  pitch x yaw (opal23 composes its Euler angles in another order), geodesic <= 1.2 deg;
  a wrong sign would be off by about 20 deg. `.txt` is preferred when both exist.

`rgb.cal` holds the RGB intrinsics K (3x3), 4 distortion values (ignored: they are
zero in BIWI), then R and T mapping depth-camera points into the RGB camera:
X_rgb = R X_depth + T. The pose becomes (R M, R c + T) in the RGB camera. Without
`rgb.cal` the default RGB camera `DEFAULT_CAMERA` (BIWI's usual fx = fy = 517.679,
cx = 320, cy = 240) is used with no extrinsics; the head centre then lands about 10 px
right of the face (the Kinect's RGB camera sits about 25 mm beside the depth camera).

Fields: `quats`, `coords` = `geometry.head_coords` of the head centre, `camera`, and
`rois` = the box of the face model's 68 landmarks (`facemodel.LANDMARKS_68`) posed with
the label and projected: the same "tight landmark box" meaning as AFLW's rois (BIWI's
head centre is the centroid of the subject's head template, close to the model origin).
Frames are re-encoded as JPEG (quality 90) to keep files small.
"""

from __future__ import annotations

import argparse
import posixpath
import re

import numpy as np

from data_tools.convert.aflw2000 import landmark_roi
from data_tools.convert.archive import Archive, Skip, read_image
from posenet.core import geometry
from posenet.core.facemodel import LANDMARKS_68

SOURCE = "BIWI Kinect Head Pose"
FRAME = re.compile(r"(?:^|/)\d+/frame_\d+_rgb\.png$")
RGB_SUFFIX = "_rgb.png"
CALIBRATION = "rgb.cal"
DEFAULT_CAMERA = np.array([517.679, 517.679, 320.0, 240.0])
BIN_FLOATS = 6
CAL_NUMBERS = 9 + 4 + 9 + 3


def _numbers(data: bytes, count: int, what: str) -> np.ndarray:
    """The first `count` numbers of a text member; `Skip` when there are fewer."""
    try:
        values = np.array(data.decode("ascii").split(), dtype=np.float64)
    except (UnicodeDecodeError, ValueError):
        raise Skip(f"unreadable {what}") from None
    if values.size < count or not np.all(np.isfinite(values[:count])):
        raise Skip(f"unreadable {what}")
    return values[:count]


def parse_pose_txt(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """`_pose.txt` -> (rotation matrix in our frame, head centre mm), depth camera."""
    values = _numbers(data, 12, "_pose.txt")
    return values[:9].reshape(3, 3), values[9:12]


def parse_pose_bin(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """`_pose.bin` -> (rotation matrix in our frame, head centre mm), depth camera."""
    if len(data) < 4 * BIN_FLOATS:
        raise Skip("unreadable _pose.bin")
    values = np.frombuffer(data[: 4 * BIN_FLOATS], dtype="<f4").astype(np.float64)
    pitch, yaw, roll = np.radians(values[3:6])
    return geometry.quat_to_matrix(geometry.aflw_to_quat([-pitch, yaw, roll])), values[:3]


def parse_calibration(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`rgb.cal` -> (camera fx, fy, cx, cy; R; T) with X_rgb = R X_depth + T."""
    values = _numbers(data, CAL_NUMBERS, CALIBRATION)
    k = values[:9].reshape(3, 3)
    return np.array([k[0, 0], k[1, 1], k[0, 2], k[1, 2]]), values[13:22].reshape(3, 3), values[22:25]


def model_roi(quat: np.ndarray, centre: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Box of the face model's 68 landmarks posed at (quat, centre) and projected."""
    return landmark_roi(geometry.project(geometry.transform(LANDMARKS_68, quat, centre), camera))


class Converter:
    """Every `NN/frame_XXXXX_rgb.png` with a `_pose.txt` or `_pose.bin` beside it."""

    source = SOURCE

    def __init__(self, archive: Archive, args: argparse.Namespace | None = None) -> None:
        self.archive = archive
        self._calibrations: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def items(self) -> list[str]:
        return [n for n in self.archive.names if FRAME.search(n)]

    def calibration(self, folder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The sequence's (camera, R, T), read once; defaults when `rgb.cal` is absent."""
        if folder not in self._calibrations:
            path = posixpath.join(folder, CALIBRATION)
            found = path in self.archive.names
            self._calibrations[folder] = (parse_calibration(self.archive.read(path)) if found
                                          else (DEFAULT_CAMERA, np.eye(3), np.zeros(3)))
        return self._calibrations[folder]

    def pose(self, item: str) -> tuple[np.ndarray, np.ndarray]:
        base = item.removesuffix(RGB_SUFFIX)
        if base + "_pose.txt" in self.archive.names:
            return parse_pose_txt(self.archive.read(base + "_pose.txt"))
        if base + "_pose.bin" in self.archive.names:
            return parse_pose_bin(self.archive.read(base + "_pose.bin"))
        raise Skip("no _pose.txt or _pose.bin for the frame")

    def convert(self, item: str) -> list[dict[str, object]]:
        rotation_depth, centre_depth = self.pose(item)
        camera, rotation, translation = self.calibration(posixpath.dirname(item))
        if abs(np.linalg.det(rotation_depth) - 1.0) > 1e-3:
            raise Skip("pose matrix is not a rotation")
        quat = geometry.matrix_to_quat(rotation @ rotation_depth)
        centre = rotation @ centre_depth + translation
        _, buffer = read_image(self.archive, item)
        return [{
            "images": buffer,
            "quats": quat.astype(np.float32),
            "coords": geometry.head_coords(centre, camera).astype(np.float32),
            "rois": model_roi(quat, centre, camera).astype(np.float32),
            "camera": camera.astype(np.float32),
        }]

    def attrs(self) -> dict[str, object]:
        return {"camera_note": "rgb.cal per sequence; default fx=fy=517.679, cx=320, cy=240 without it"}
