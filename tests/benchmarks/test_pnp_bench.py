"""`posenet bench pnp`: its frames (sample photos, else rendered heads) and its report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from baselines.pnp import landmarks_68
from posenet.benchmarks import pnp as bench_pnp


def test_benchmark_frames_fall_back_to_rendered_heads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_pnp, "SHARED_DATA", tmp_path)  # no sample data: rendered heads instead
    frames, source = bench_pnp._bench_frames(2)
    assert "synthetic" in source and len(frames) == 2
    assert all(frame.shape == (480, 640, 3) and frame.dtype == np.uint8 for frame in frames)
    boxes = bench_pnp._frame_boxes(frames)
    assert all(landmarks_68(frame, box).shape == (68, 2) for frame, box in zip(frames, boxes))


@pytest.mark.slow
def test_benchmark_quick_prints_every_stage(capsys: pytest.CaptureFixture) -> None:
    lines = bench_pnp.benchmark(quick=True)
    text = "\n".join(lines)
    for stage in ("HOG detection", "CNN (MMOD) detection", "68 landmarks", "PnP (iterative)", "noise px"):
        assert stage in text
    assert text in capsys.readouterr().out
