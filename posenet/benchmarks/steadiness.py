"""Steadiness benchmark (`posenet bench steadiness`): frame-to-frame rotation on a near-still head.

Opentrack users complain most about jitter. On a clip where the head barely moves
(../shared/data/video/obama.mp4, a speech to camera), every degree the output rotates between
consecutive frames is mostly noise. For each model set (Opentrack's published models, and our
pose net with our localizer or Opentrack's) the tracker runs over the clip with each output
filter: none (`--smooth 1`), exponential smoothing (`--smooth ALPHA`), and the
uncertainty-weighted filter (`--smooth auto`, `track.Smoother`). Reported: the median and
95th percentile of the angle between consecutive "ok" output quaternions (deg per frame) and
the frames tracked. Without ../shared the synthetic moving head stands in (it moves, so its
figures mix motion with noise, and it says so). Figures only: nothing here is a pass/fail test.
The price of a filter is lag; measured once on the synthetic moving head (72 frames, true poses,
median geodesic error, no filter -> --smooth 0.3 -> auto): Opentrack's pose net 4.9 -> 7.1 -> 4.9
deg, ours (trained on 6000 rendered faces) 5.7 -> 8.0 -> 7.4 deg.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from posenet.core import geometry
from posenet.core.paths import SHARED
from posenet.tracker import track

STILL_VIDEO = SHARED / "data" / "video" / "obama.mp4"
MAX_FRAMES = {True: 40, False: 400}  # quick: fewer frames
SYNTH_FRAMES = {True: 24, False: 72}
SMOOTHING = ("1", "0.5", "0.3", track.AUTO_SMOOTH)  # --smooth values compared; 1 = no filter
PERCENTILE = 95


class Steadiness(NamedTuple):
    median_deg: float  # median angle between consecutive output quaternions
    p95_deg: float  # its 95th percentile
    pairs: int  # consecutive pairs of "ok" frames measured
    tracked: int  # "ok" frames


def frame_rotations(quats: list[np.ndarray | None]) -> np.ndarray:
    """Angles (deg) between consecutive quaternions; pairs with a missing frame (None) are skipped."""
    pairs = [(a, b) for a, b in zip(quats, quats[1:]) if a is not None and b is not None]
    if not pairs:
        return np.zeros(0)
    first, second = (np.array(side) for side in zip(*pairs))
    return geometry.geodesic_deg(first, second)


def summarize(quats: list[np.ndarray | None]) -> Steadiness:
    angles = frame_rotations(quats)
    if len(angles) == 0:
        return Steadiness(float("nan"), float("nan"), 0, sum(q is not None for q in quats))
    return Steadiness(float(np.median(angles)), float(np.percentile(angles, PERCENTILE)), len(angles),
                      sum(q is not None for q in quats))


def measure(localizer: track.Localizer, pose: track.PoseEstimator, frames: list[np.ndarray], fov_deg: float,
            smooth: str) -> Steadiness:
    """Track grey `frames` with a fresh tracker using output filter `smooth`; the steadiness of its poses."""
    tracker = track.Tracker(localizer, pose, fov_deg, track.parse_smooth(smooth))
    results = [tracker.step(frame, index) for index, frame in enumerate(frames)]
    return summarize([r.quat if r.status == "ok" else None for r in results])


def model_sets(pose: Path | None) -> list[tuple[str, Path, Path]]:
    """(label, localizer, pose): Opentrack's models and ours (`pose`, else work/models), those that exist."""
    theirs = {kind: track.OPENTRACK_MODELS / track.MODEL_FILES[kind][1] for kind in ("localizer", "pose")}
    ours = {kind: track.OUR_MODELS / track.MODEL_FILES[kind][0] for kind in ("localizer", "pose")}
    ours["pose"] = pose or ours["pose"]
    sets = []
    if theirs["pose"].is_file() and theirs["localizer"].is_file():
        sets.append(("Opentrack", theirs["localizer"], theirs["pose"]))
    if ours["pose"].is_file():
        localizer, label = ours["localizer"], "ours"
        if not localizer.is_file():
            localizer, label = theirs["localizer"], "ours pose + Opentrack localizer"
        if localizer.is_file():
            sets.append((label, localizer, ours["pose"]))
    return sets


def clip(quick: bool) -> tuple[str, list[np.ndarray], float]:
    """(name, grey frames, horizontal field of view): the still real head, else the synthetic one."""
    from posenet.tracker.video import read_frames

    to_grey = lambda frame: cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)  # noqa: E731
    frames = read_frames(STILL_VIDEO, MAX_FRAMES[quick], to_grey) if STILL_VIDEO.is_file() else []
    if frames:
        return f"{STILL_VIDEO.name} ({len(frames)} frames, near-still head)", frames, track.DEFAULT_FOV_DEG
    from posenet.tracker.video import render_moving_head

    video = render_moving_head(SYNTH_FRAMES[quick])
    frames = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in video.frames]
    return (f"synthetic moving head ({len(frames)} frames; {STILL_VIDEO} not found, the head moves, so these "
            "figures include its motion)", frames, video.fov_deg)


def _fmt(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.2f}"


def benchmark(quick: bool, pose: Path | None = None) -> list[str]:
    name, frames, fov_deg = clip(quick)
    sets = model_sets(pose)
    lines = [f"Clip: {name}. Angle between consecutive output quaternions, deg per frame (median and "
             f"{PERCENTILE}th percentile over consecutive \"ok\" frames); `--smooth` 1 = no filter, ALPHA = "
             f"exponential smoothing, {track.AUTO_SMOOTH} = the uncertainty-weighted filter.", "",
             f"| models | pose net | --smooth | median deg/frame | p{PERCENTILE} deg/frame | tracked |",
             "|---|---|---|---|---|---|"]
    if not sets:
        return ["No tracker models found (work/models, --pose or ../shared/peers/opentrack): nothing measured."]
    for label, localizer_path, pose_path in sets:
        localizer, estimator = track.Localizer(localizer_path), track.PoseEstimator(pose_path)
        for smooth in SMOOTHING:
            figures = measure(localizer, estimator, frames, fov_deg, smooth)
            print(f"{label} ({pose_path.name}), --smooth {smooth}: median {_fmt(figures.median_deg)}, "
                  f"p{PERCENTILE} {_fmt(figures.p95_deg)} deg/frame, tracked {figures.tracked}/{len(frames)}")
            lines.append(f"| {label} | {pose_path.name} | {smooth} | {_fmt(figures.median_deg)} "
                         f"| {_fmt(figures.p95_deg)} | {figures.tracked}/{len(frames)} |")
    return lines
