"""`posenet bench face-model`: the recipe recovers a known layout from 3D label files, and the shipped one."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io

from posenet.benchmarks import face_model
from posenet.cli import main
from posenet.core import facemodel, geometry
from posenet.core.errors import PosenetError

KNOWN = facemodel.LANDMARKS_68  # any mirror-symmetric layout with 90 mm between the outer eye corners


def _label_files(directory, count: int = 5, seed: int = 0):
    """AFLW2000-3D-style .mat files: KNOWN posed by random labels, scaled to pixels, shifted, z toward the viewer."""
    directory.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        pose = np.radians(rng.uniform([-30, -70, -20], [30, 70, 20]))
        scale = rng.uniform(1.0, 2.0)
        points = scale * KNOWN @ geometry.quat_to_matrix(geometry.aflw_to_quat(pose)).T + [220.0, 230.0, 10.0]
        scipy.io.savemat(directory / f"image{i:05d}.mat", {"Pose_Para": np.concatenate([pose, [0, 0, 0, scale]])[None],
                                                          "pt3d_68": (points * [1.0, 1.0, -1.0]).T})
    return directory


def _dev_split(path, names):
    with h5py.File(path, "w") as handle:
        handle.attrs["names"] = "\n".join(names)
    return path


def test_the_recipe_recovers_a_known_layout_and_leaves_out_the_dev_images(tmp_path):
    directory = _label_files(tmp_path / "aflw")
    result = face_model.measure(directory, dev=_dev_split(tmp_path / "dev.h5", ["image00003"]))
    assert result["names"] == ["image00000", "image00001", "image00002", "image00004"]
    placed = KNOWN - KNOWN[face_model.EYE_CORNERS].mean(axis=0) + face_model.EYE_CORNERS_CENTRE_MM
    np.testing.assert_allclose(result["layout"], placed, atol=1e-6)
    assert result["spread_mm"] < 1e-6  # one face five times: no identity spread


def test_a_file_without_labels_is_one_line(tmp_path):
    directory = _label_files(tmp_path / "aflw", count=2)
    scipy.io.savemat(directory / "image00009.mat", {"pt2d": np.zeros((2, 21))})
    with pytest.raises(PosenetError, match=r"image00009.mat: not an AFLW2000-3D label file \('Pose_Para'\)"):
        face_model.read_label_files(directory)
    (directory / "image00009.mat").write_bytes(b"not a MATLAB file")
    with pytest.raises(PosenetError, match=r"image00009.mat: not a readable .mat file"):
        face_model.read_label_files(directory)
    with pytest.raises(PosenetError, match="empty: no AFLW2000-3D .mat label files"):
        face_model.read_label_files((tmp_path / "empty").mkdir() or tmp_path / "empty")


def test_bench_face_model_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(face_model, "MAT_DIRECTORY", _label_files(tmp_path / "aflw"))
    monkeypatch.setattr(face_model, "DEV_SPLIT", tmp_path / "no-dev.h5")
    assert main(["bench", "face-model", "--results", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "derived from 5 AFLW2000-3D 3D label files" in out
    assert "NOT the derived layout" in out  # the shipped table is the real labels' layout, not KNOWN
    assert "| nose tip (30) |" in (tmp_path / "r" / "benchmarks.md").read_text()


def test_the_shipped_table_is_the_layout_of_aflw2000s_labels(shared_data):
    """Derive the layout from the real 3D label files: the shipped table is it, to its rounding."""
    result = face_model.measure()
    assert len(result["names"]) == 16
    assert result["max_difference_mm"] <= face_model.SHIPPED_TOLERANCE_MM
