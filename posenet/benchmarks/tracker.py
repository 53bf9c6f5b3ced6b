"""Tracker benchmark (`posenet bench tracker`): frames/s on 640x480 video with one thread.

Clips: the synthetic moving head of `posenet.tracker.video` (known trajectory, so the median
geodesic error is reported too) and, when ../shared is there, the real obama.mp4 resized
to 640x480. Trackers: our exported models (work/models, when present), Opentrack's
published models, both on ONNX Runtime with intra_op = inter_op = 1 thread, and the
dlib HOG detector + 68 landmarks + PnP baseline (baselines.detect / baselines.pnp) on
every frame. Each step is timed from the BGR frame (grey conversion included) to the
pose; "pose + tracking" counts only the frames where the localizer did not run, which is
the tracker's steady state (DESIGN §7 target: >= 100 frames/s, and not slower than
Opentrack's model run the same way). Each tracker runs PASSES times over each clip and the
fastest pass counts. Each model set runs twice: with the tracker's face check (its default,
`track.Tracker`) and with Opentrack's loop alone (`face_check=False`, the tracker's loop
before issue #14), so that the check's cost in frames/s is measured on the same machine in
the same run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from posenet.core import geometry
from posenet.tracker import track

FRAME_SIZE = (640, 480)
SYNTH_FRAMES = {True: 36, False: 120}  # quick: fewer frames
REAL_FRAMES = {True: 40, False: 158}
BASELINE_FRAMES = {True: 8, False: 40}
WARMUP_FRAMES = 5
PASSES = 3  # timed passes per tracker and clip; the fastest counts
TARGET_FPS = 100.0


class Clip(NamedTuple):
    name: str
    frames: list[np.ndarray]  # BGR uint8, 640x480
    quats: np.ndarray | None  # true poses when known
    fov_deg: float


class Timing(NamedTuple):
    fps_all: float
    fps_tracking: float  # frames without a localizer run
    pose_ms: float  # median ONNX Runtime time of one pose-net run
    localizer_runs: int
    tracked: int
    geodesic_median: float  # NaN without ground truth
    quats: np.ndarray  # (frames, 4) the pose of every frame, NaN where the tracker had none


def synthetic_clip(n_frames: int) -> Clip:
    from posenet.tracker.video import render_moving_head

    video = render_moving_head(n_frames, FRAME_SIZE)
    frames = [cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) for frame in video.frames]
    return Clip(f"synthetic moving head ({n_frames} frames)", frames, video.quats, video.fov_deg)


def real_clip(n_frames: int) -> Clip | None:
    from posenet.tracker.video import read_frames

    path = track.OPENTRACK_MODELS.parents[1] / "data" / "video" / "obama.mp4"
    frames = read_frames(path, n_frames, lambda frame: cv2.resize(frame, FRAME_SIZE, interpolation=cv2.INTER_AREA))
    return Clip(f"obama.mp4 resized to 640x480 ({len(frames)} frames)", frames, None,
                track.DEFAULT_FOV_DEG) if frames else None


def model_sets() -> list[tuple[str, Path, Path]]:
    """(label, localizer, pose) for our models and Opentrack's, whichever exist."""
    sets = []
    for label, folder, index in (("ours", track.OUR_MODELS, 0), ("Opentrack", track.OPENTRACK_MODELS, 1)):
        localizer, pose = (folder / track.MODEL_FILES[kind][index] for kind in ("localizer", "pose"))
        if pose.is_file():
            if not localizer.is_file():  # our pose net alone: pair it with Opentrack's localizer
                localizer = track.OPENTRACK_MODELS / track.MODEL_FILES["localizer"][1]
                label = f"{label} pose + Opentrack localizer"
            if localizer.is_file():
                sets.append((label, localizer, pose))
    return sets


class TimedPose(track.PoseEstimator):
    """A pose estimator that also records how long ONNX Runtime takes per run."""

    def __init__(self, path: Path):
        super().__init__(path, threads=1)
        self.run_seconds: list[float] = []
        session_run = self.session.run

        def timed_run(*args, **kwargs):
            start = time.perf_counter()
            outputs = session_run(*args, **kwargs)
            self.run_seconds.append(time.perf_counter() - start)
            return outputs

        self.session.run = timed_run


def time_pass(tracker: track.Tracker, clip: Clip) -> tuple[np.ndarray, list[track.TrackResult]]:
    """Seconds per frame and the results of one pass over the clip."""
    seconds, results = [], []
    for index, frame in enumerate(clip.frames):
        start = time.perf_counter()
        results.append(tracker.step(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), index))
        seconds.append(time.perf_counter() - start)
    return np.array(seconds), results


def time_tracker(localizer_path: Path, pose_path: Path, clip: Clip, face_check: bool = True) -> Timing:
    """The fastest of PASSES passes (fresh tracker each), so that load from other processes on a
    shared machine counts less; the tracking itself is deterministic, the same in every pass."""
    localizer, pose = track.Localizer(localizer_path, threads=1), TimedPose(pose_path)
    warmup = track.Tracker(localizer, pose, clip.fov_deg, face_check=face_check)
    for frame in clip.frames[:WARMUP_FRAMES]:
        warmup.step(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    pose.run_seconds.clear()
    passes = []
    for _ in range(PASSES):
        tracker = track.Tracker(localizer, pose, clip.fov_deg, face_check=face_check)
        passes.append((*time_pass(tracker, clip), tracker.localizer_runs))
    seconds, results, localizer_runs = min(passes, key=lambda p: p[0].sum())
    steady = seconds[[not r.localized for r in results]]
    ok = [i for i, r in enumerate(results) if r.status == "ok"]
    quats = np.full((len(results), 4), np.nan)
    quats[ok] = [results[i].quat for i in ok]
    geodesic = float("nan")
    if clip.quats is not None and ok:
        geodesic = float(np.median(geometry.geodesic_deg(clip.quats[ok], quats[ok])))
    return Timing(len(seconds) / seconds.sum(), len(steady) / steady.sum() if len(steady) else float("nan"),
                  1e3 * float(np.median(pose.run_seconds)), localizer_runs, len(ok), geodesic, quats)


def agreement(ours: np.ndarray, theirs: np.ndarray) -> tuple[int, int, int, float]:
    """How two trackers' per-frame poses (NaN = no face) agree: frames each tracked, frames only
    the second tracked, and the median angle between them where both did (NaN if none)."""
    ours_ok, theirs_ok = np.isfinite(ours).all(axis=1), np.isfinite(theirs).all(axis=1)
    both = ours_ok & theirs_ok
    median = float(np.median(geometry.geodesic_deg(ours[both], theirs[both]))) if both.any() else float("nan")
    return int(ours_ok.sum()), int(theirs_ok.sum()), int((theirs_ok & ~ours_ok).sum()), median


def time_pnp_baseline(clip: Clip, n_frames: int) -> tuple[float, int, float]:
    """(frames/s, frames with a pose, median geodesic error) of dlib HOG + landmarks + PnP."""
    from baselines.detect import best_face
    from baselines.pnp import estimate_pose, landmarks_68

    frames = clip.frames[:n_frames]
    camera = geometry.camera_for_image(*FRAME_SIZE, track.focal_px(FRAME_SIZE[0], clip.fov_deg))
    quats = np.full((len(frames), 4), np.nan)
    start = time.perf_counter()
    for i, frame in enumerate(frames):
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        face = best_face(rgb, "hog", upsample=0)
        result = estimate_pose(landmarks_68(rgb, face.box), camera) if face is not None else None
        if result is not None:
            quats[i] = result.quat
    elapsed = time.perf_counter() - start
    found = np.all(np.isfinite(quats), axis=1)
    geodesic = float("nan")
    if clip.quats is not None and found.any():
        geodesic = float(np.median(geometry.geodesic_deg(clip.quats[: len(frames)][found], quats[found])))
    return len(frames) / elapsed, int(found.sum()), geodesic


NO_CHECK = ", Opentrack's loop without the face check"


def _row(clip: Clip, label: str, pose: Path, timing: Timing) -> str:
    """Print one tracker's figures and return them as a table row."""
    print(f"{clip.name}, {label}: {timing.fps_all:.0f} frames/s all, {timing.fps_tracking:.0f} "
          f"pose + tracking, pose net {timing.pose_ms:.2f} ms, localizer ran {timing.localizer_runs}x, "
          f"tracked {timing.tracked}/{len(clip.frames)}, median geodesic {_deg(timing.geodesic_median)} deg")
    return (f"| {clip.name} | {label} ({pose.name}) | {timing.fps_all:.0f} | {timing.fps_tracking:.0f} "
            f"| {timing.pose_ms:.2f} | {timing.localizer_runs} | {timing.tracked}/{len(clip.frames)} "
            f"| {_deg(timing.geodesic_median)} |")


def _deg(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.1f}"


def benchmark(quick: bool) -> list[str]:
    cv2.setNumThreads(1)
    clips = [synthetic_clip(SYNTH_FRAMES[quick])]
    real = real_clip(REAL_FRAMES[quick])
    clips += [real] if real is not None else []
    sets = model_sets()
    lines = ["Tracker step from the BGR frame to the pose (grey conversion, localizer when needed, pose net, "
             "box update), ONNX Runtime with 1 intra-op and 1 inter-op thread, fastest of "
             f"{PASSES} passes; dlib + PnP baseline on every frame (HOG without upsampling). Rows \"without the "
             "face check\" run Opentrack's loop alone, the tracker before it checked that a face is there.", "",
             "| clip | tracker | frames/s (all) | frames/s (pose + tracking) | pose net ms | localizer runs "
             "| tracked | median geodesic deg |",
             "|---|---|---|---|---|---|---|---|"]
    if not sets:
        lines.insert(0, "No tracker models found (work/models or ../shared/peers/opentrack): tracker rows skipped.")
    steady: dict[str, list[float]] = {}
    every: dict[tuple[str, bool], list[float]] = {}  # (label, face check) -> frames/s (all) per clip
    agreements = []
    for clip in clips:
        poses = {}
        for label, localizer, pose in sets:
            for face_check in (True, False):
                timing = time_tracker(localizer, pose, clip, face_check)
                every.setdefault((label, face_check), []).append(timing.fps_all)
                if face_check:
                    steady.setdefault(label, []).append(timing.fps_tracking)
                    poses[label] = timing.quats
                lines.append(_row(clip, label + ("" if face_check else NO_CHECK), pose, timing))
        ours = next((label for label in poses if label.startswith("ours")), None)
        if ours is not None and "Opentrack" in poses:
            agreements.append(_agreement_line(clip, ours, *agreement(poses[ours], poses["Opentrack"])))
        fps, found, geodesic = time_pnp_baseline(clip, BASELINE_FRAMES[quick])
        n = min(len(clip.frames), BASELINE_FRAMES[quick])
        print(f"{clip.name}, dlib + PnP: {fps:.1f} frames/s, pose on {found}/{n}, median geodesic {_deg(geodesic)} deg")
        lines.append(f"| {clip.name} | dlib HOG + 68 landmarks + PnP | {fps:.1f} | {fps:.1f} | - | - | {found}/{n} "
                     f"| {_deg(geodesic)} |")
    lines.append("")
    for label, values in steady.items():
        worst = min(values)
        verdict = "meets" if worst >= TARGET_FPS else "misses"
        lines.append(f"- {label}: slowest clip {worst:.0f} frames/s (pose + tracking), {verdict} the "
                     f">= {TARGET_FPS:.0f} frames/s target.")
    for label in steady:
        with_check, without = every[(label, True)], every[(label, False)]
        lines.append(f"- {label}: the face check (a localizer run every {track.FACE_CHECK_FRAMES} frames, a patch "
                     f"comparison every frame) costs {100 * (1 - min(with_check) / min(without)):.0f} % of the "
                     f"frames/s (all) on the slowest clip: {min(with_check):.0f} with it, {min(without):.0f} without.")
    ours = next((label for label in steady if label.startswith("ours")), None)  # our pose net, any localizer
    if ours is not None and "Opentrack" in steady:
        ratio = min(steady[ours]) / min(steady["Opentrack"])
        lines.append(f"- ours / Opentrack speed ratio: {ratio:.2f} (target >= 1).")
    lines += agreements
    return lines


def _agreement_line(clip: Clip, ours: str, ours_ok: int, theirs_ok: int, missed: int, median: float) -> str:
    """Print and return how our tracker agrees with Opentrack's on one clip."""
    line = (f"- {clip.name}: {ours} tracked {ours_ok} frames, Opentrack {theirs_ok}; {missed} frames only Opentrack "
            f"tracked; median angle between the two poses {_deg(median)} deg where both tracked.")
    print(line[2:])
    return line
