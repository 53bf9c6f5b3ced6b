"""Benchmark: dlib detection, landmarks and PnP, ms per 640x480 frame, and accuracy on the AFLW2000-3D samples."""

from __future__ import annotations

import time

import cv2
import numpy as np

from baselines.detect import best_face, detect_faces
from baselines.pnp import (
    METHODS,
    PUBLISHED_DLIB_PNP_MAE,
    PUBLISHED_ORACLE_PNP_MAE,
    SWEEP_MAX_YPR_DEG,
    PnPPredictor,
    estimate_pose,
    landmarks_68,
    noise_sweep,
    synthetic_views,
)
from posenet.core import geometry
from posenet.core.h5format import Dataset
from posenet.core.paths import SHARED_DATA

# --- benchmark: `posenet bench pnp` -------------------------------------------------------------


BENCH_FRAME_SIZE = (640, 480)


def _bench_frames(count: int) -> tuple[list[np.ndarray], str]:
    """640x480 RGB frames with a face: BIWI sample frames when present, else rendered heads."""
    paths = sorted((SHARED_DATA / "biwi" / "01").glob("*_rgb.png"))[:count]
    if paths:
        return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths], f"BIWI frames ({paths[0].parent})"
    from data_tools.synth import SynthConfig, render_view, sample_appearance  # only without the sample data

    rng = np.random.default_rng(0)
    camera = geometry.camera_for_image(*BENCH_FRAME_SIZE)
    quats, _ = synthetic_views(count, seed=0)
    frames = [render_view(sample_appearance(SynthConfig(), rng), q, np.array([0.0, 0.0, 650.0]), camera,
                          BENCH_FRAME_SIZE)[0] for q in quats]
    return frames, "synthetic rendered heads (data_tools.synth)"


def _mean_ms(function, items: list) -> float:
    """Mean wall time (ms) of function(item) over items, after one warm-up call (model loading)."""
    function(items[0])
    start = time.perf_counter()
    for item in items:
        function(item)
    return 1000.0 * (time.perf_counter() - start) / len(items)


def _frame_boxes(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The HOG face box of each frame, or a centred 200 px box where HOG misses (landmarks still run)."""
    width, height = BENCH_FRAME_SIZE
    centred = np.array([width / 2 - 100, height / 2 - 100, width / 2 + 100, height / 2 + 100])
    found = [best_face(frame, "hog") for frame in frames]
    return [centred if face is None else face.box for face in found]


def _timing_rows(frames: list[np.ndarray], cnn_frames: int) -> list[tuple[str, float]]:
    boxes = _frame_boxes(frames)
    pairs = list(zip(frames, boxes))
    camera = geometry.camera_for_image(*BENCH_FRAME_SIZE)
    points = [landmarks_68(frame, box) for frame, box in pairs]
    rows = [
        ("HOG detection, upsample 0", _mean_ms(lambda f: detect_faces(f, "hog", 0), frames)),
        ("HOG detection, upsample 1 (default)", _mean_ms(lambda f: detect_faces(f, "hog", 1), frames)),
        ("CNN (MMOD) detection, upsample 0", _mean_ms(lambda f: detect_faces(f, "cnn", 0), frames[:cnn_frames])),
        ("68 landmarks (dlib shape predictor)", _mean_ms(lambda p: landmarks_68(*p), pairs)),
    ]
    rows += [(f"PnP ({method})", _mean_ms(lambda p, m=method: estimate_pose(p, camera, m), points))
             for method in METHODS]
    return rows


def _aflw_rows() -> list[str]:
    """MAE of dlib + PnP and oracle + PnP on the AFLW2000-3D samples, via the project's converter."""
    from data_tools.convert.aflw2000 import Converter
    from data_tools.convert.archive import open_archive
    from data_tools.convert.cli import convert_all, stack

    with open_archive(SHARED_DATA / "aflw2000") as archive:
        records, _ = convert_all(Converter(archive), archive, limit=None, strict=False)
    dataset = Dataset(stack(records), path=SHARED_DATA / "aflw2000")
    lines = ["| estimator | faces | MAE yaw | MAE pitch | MAE roll | MAE | published MAE |", "|---|---|---|---|---|---|---|"]
    for predictor, published in ((PnPPredictor("dlib"), PUBLISHED_DLIB_PNP_MAE),
                                 (PnPPredictor("dlib", use_roi_boxes=True), PUBLISHED_DLIB_PNP_MAE),
                                 (PnPPredictor("oracle"), PUBLISHED_ORACLE_PNP_MAE)):
        predicted = predictor.predict(dataset)
        found = ~np.isnan(predicted[:, 0])
        errors = geometry.euler_errors_deg(dataset["quats"][found], predicted[found]).mean(axis=0)
        lines.append(f"| {predictor.name} | {found.sum()}/{len(found)} | {errors[0]:.2f} | {errors[1]:.2f} "
                     f"| {errors[2]:.2f} | {errors.mean():.2f} | {published} |")
    return lines


def benchmark(quick: bool) -> list[str]:
    """ms per 640x480 frame for detection, landmarks and PnP; the noise sweep; AFLW sample MAE."""
    frames, source = _bench_frames(3 if quick else 10)
    lines = [f"Frames: {len(frames)} x {BENCH_FRAME_SIZE[0]}x{BENCH_FRAME_SIZE[1]}, {source}; "
             "one process, dlib on the CPU.", "", "| stage | ms per frame |", "|---|---|"]
    lines += [f"| {stage} | {ms:.1f} |" for stage, ms in _timing_rows(frames, 1 if quick else 3)]
    sweep_n = 100 if quick else 1000
    lines += ["", f"PnP (iterative) on the mean face with Gaussian landmark noise: {sweep_n} random poses "
              f"(|yaw| <= {SWEEP_MAX_YPR_DEG[0]:.0f}, |pitch| <= {SWEEP_MAX_YPR_DEG[1]:.0f}, "
              f"|roll| <= {SWEEP_MAX_YPR_DEG[2]:.0f} deg), 640x480, f = 640, face 100-180 px wide.", "",
              "| noise px | median deg | 95th pct deg | failures |", "|---|---|---|---|"]
    lines += [f"| {noise:g} | {median:.3f} | {p95:.3f} | {failures} |"
              for noise, median, p95, failures in noise_sweep(n=sweep_n)]
    if (SHARED_DATA / "aflw2000").is_dir():
        lines += ["", "AFLW2000-3D samples (f = image width; MAE over the faces found):", "", *_aflw_rows()]
    print("\n".join(lines))
    return lines
