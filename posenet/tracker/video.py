"""A synthetic moving-head video with a known trajectory, for testing and benchmarking the tracker.

One person (appearance) and one background stay fixed while the head follows a smooth
loop: a yaw sweep of +-40 deg, with slower pitch (+-15 deg) and roll (+-10 deg) swings and
a small drift of the head centre (out of phase with the yaw, so that the face itself moves in
the image), at about 60 cm from a 640 x 480 camera with f = width (DESIGN §2:
about 53 deg horizontal field of view). Frames are rendered by the project's renderer
(`data_tools.synth.render_view`), so every frame's pose is exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import cv2
import numpy as np

from data_tools.synth import SynthConfig, make_background, render_view, sample_appearance
from posenet.core import geometry

FRAME_SIZE = (640, 480)  # width, height
FPS = 30.0
AMPLITUDE_DEG = {"yaw": 40.0, "pitch": 15.0, "roll": 10.0}
DISTANCE_MM = 600.0
DRIFT_MM = np.array([40.0, 15.0, 50.0])  # x, y, z amplitudes of the head centre's loop


class SyntheticVideo(NamedTuple):
    frames: list[np.ndarray]  # RGB uint8 (height, width, 3)
    quats: np.ndarray  # (N, 4) true pose per frame
    translations: np.ndarray  # (N, 3) true head centre, camera frame, mm
    camera: np.ndarray  # (fx, fy, cx, cy)
    fps: float

    @property
    def fov_deg(self) -> float:
        """Horizontal field of view of the camera, to pass to the tracker."""
        return float(np.degrees(2.0 * np.arctan(self.camera[2] / self.camera[0])))


def head_trajectory(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The known smooth loop: quaternions (N, 4) and head centres (N, 3) in mm."""
    phase = 2.0 * np.pi * np.arange(n_frames) / n_frames
    yaw = AMPLITUDE_DEG["yaw"] * np.sin(phase)
    pitch = AMPLITUDE_DEG["pitch"] * np.sin(2.0 * phase)
    roll = AMPLITUDE_DEG["roll"] * np.sin(phase + 1.0)
    quats = geometry.aflw_to_quat(np.radians(np.stack([pitch, yaw, roll], axis=-1)))
    wave = np.stack([np.sin(2.0 * phase), np.sin(phase), np.cos(phase) - 1.0], axis=-1)
    translations = np.array([0.0, 0.0, DISTANCE_MM]) + DRIFT_MM * wave
    return quats, translations


def render_moving_head(n_frames: int = 72, size: tuple[int, int] = FRAME_SIZE, seed: int = 0) -> SyntheticVideo:
    """Render the trajectory for one random person over one random background."""
    rng = np.random.default_rng(seed)
    config = SynthConfig(mode="scene", expression_scale=0.0)
    appearance = sample_appearance(config, rng)
    width, height = size
    background = make_background(rng, width, height)
    camera = geometry.camera_for_image(width, height)
    quats, translations = head_trajectory(n_frames)
    frames = [render_view(appearance, q, t, camera, size, background)[0] for q, t in zip(quats, translations)]
    return SyntheticVideo(frames, quats, translations, camera, FPS)


def read_frames(path: str | Path, max_frames: int,
                convert: Callable[[np.ndarray], np.ndarray] = lambda frame: frame) -> list[np.ndarray]:
    """Up to `max_frames` frames of a real video file, each passed through `convert` (BGR in; empty
    when the file cannot be read): the benchmarks' clips."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(convert(frame))
    capture.release()
    return frames
