"""`posenet bench renderer --quick`: one table row per worker count, and the caller's OpenCV threads left as found."""

from __future__ import annotations

import os

import cv2

from posenet import cli


def test_quick_renderer_benchmark_reports_each_worker_count_and_restores_opencv_threads(tmp_path, capsys):
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        assert cli.main(["bench", "renderer", "--quick", "--results", str(tmp_path)]) == 0
        assert cv2.getNumThreads() == 3  # the single-process runs use one thread, then hand the setting back
    finally:
        cv2.setNumThreads(before)
    printed = capsys.readouterr().out
    workers = [1] + ([os.cpu_count()] if (os.cpu_count() or 1) > 1 else [])
    for count in workers:
        assert f"renderer: {count} worker(s): " in printed
    report = (tmp_path / "bench" / "renderer.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(row.split("|")[1]) for row in rows] == workers
    assert all(float(row.split("|")[3]) > 0 for row in rows)  # best images/s
    assert "ms CPU per image" in printed
