"""`posenet bench head-frame`: the head-frame calibration's recipe recovers a known offset and the shipped one."""

from __future__ import annotations

import numpy as np
import pytest

from posenet.benchmarks import head_frame
from posenet.cli import main
from posenet.core import facemodel, geometry
from posenet.core.errors import PosenetError

KNOWN_OFFSET_DEG = 4.0


def _label_file(path, count: int = 60, seed: int = 0):
    """An opal23-format file whose landmarks are the anatomical face turned KNOWN_OFFSET_DEG about x,
    seen through the labels' near-orthographic camera; one more row is outside the protocol."""
    rng = np.random.default_rng(seed)
    face = facemodel.ANATOMICAL_LANDMARKS_68 @ facemodel.rotation_about_x(KNOWN_OFFSET_DEG).T
    focal = head_frame.AFLW_LABEL_FOCAL_WIDTHS * head_frame.IMAGE_SIDE
    camera = np.array([focal, focal, head_frame.IMAGE_SIDE / 2, head_frame.IMAGE_SIDE / 2])
    pitch_yaw_roll = np.vstack([rng.uniform([-30, -60, -20], [30, 60, 20], (count, 3)), [[0.0, 120.0, 0.0]]])
    rows = ["#;image;yaw;pitch;roll;pt_x;pt_y"]
    for i, (pitch, yaw, roll) in enumerate(pitch_yaw_roll):
        quat = geometry.aflw_to_quat(np.radians([pitch, yaw, roll]))
        points = geometry.project(geometry.transform(face, quat, np.array([0.0, 0.0, focal * 150.0 / 200.0])), camera)
        rows.append(";".join([f"images/image{i:05d}.jpg", f"image{i:05d}", f"{-yaw:.6f}", f"{pitch:.6f}", f"{roll:.6f}",
                              *(f"{v:.6f}" for v in points.ravel())]))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_the_recipe_recovers_a_known_offset_and_keeps_the_protocol(tmp_path):
    result = head_frame.measure(_label_file(tmp_path / "labels.txt"), dev=tmp_path / "no-dev.h5")
    assert result["images"] == 60  # the yaw-120 row is outside the protocol
    rotvec, count = result["fits"]["all 68 points (the shipped fit)"]
    assert count == 60
    np.testing.assert_allclose(rotvec, [KNOWN_OFFSET_DEG, 0.0, 0.0], atol=0.01)
    inner, _ = result["fits"]["51 inner points (no jaw contour)"]
    np.testing.assert_allclose(inner, [KNOWN_OFFSET_DEG, 0.0, 0.0], atol=0.01)  # a rigid face: every subset agrees


def test_a_malformed_row_is_one_line(tmp_path):
    path = _label_file(tmp_path / "labels.txt", count=3)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].rsplit(";", 1)[0]  # one coordinate short
    path.write_text("\n".join(lines))
    with pytest.raises(PosenetError, match=r"labels.txt: line 3: not an opal23 label row \(140 fields"):
        head_frame.read_labels(path)
    with pytest.raises(PosenetError, match="nowhere.txt: no such AFLW2000-3D label file"):
        head_frame.read_labels(tmp_path / "nowhere.txt")


def test_bench_head_frame_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(head_frame, "LABELS", _label_file(tmp_path / "labels.txt"))
    monkeypatch.setattr(head_frame, "DEV_SPLIT", tmp_path / "no-dev.h5")
    assert main(["bench", "head-frame", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert f"fitted +{KNOWN_OFFSET_DEG:.3f} deg about x on 60 images" in out
    assert f"NOT the fit's x part: set it to {KNOWN_OFFSET_DEG:.2f}" in out  # the shipped 2.51 is not this file's
    assert "| all 68 points (the shipped fit) | 60 | +4.000 |" in (tmp_path / "r" / "benchmarks.md").read_text()


def test_the_shipped_constant_is_the_fit_on_aflw2000(shared_data):
    """Change the face model and this fails until AFLW_FRAME_PITCH_DEG is fitted again (the bench prints it)."""
    result = head_frame.measure()
    rotvec, count = result["fits"]["all 68 points (the shipped fit)"]
    assert count == result["images"] == 1969
    assert round(rotvec[0], 2) == facemodel.AFLW_FRAME_PITCH_DEG
