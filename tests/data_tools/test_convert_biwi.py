"""BIWI Kinect converter: official text layout built in code, and the shared .bin sample."""

from __future__ import annotations

import cv2
import numpy as np
from test_convert_aflw2000 import convert, write_zip

from data_tools.convert.biwi import DEFAULT_CAMERA
from posenet.core import geometry
from posenet.core.h5format import read_dataset

K = np.array([[517.679, 0.0, 320.0], [0.0, 517.679, 240.5], [0.0, 0.0, 1.0]])


def png_bytes(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


def matrix_text(*blocks: np.ndarray) -> bytes:
    """BIWI's text files: blocks of rows, blocks separated by a blank line."""
    lines = []
    for block in blocks:
        lines += [" ".join(f"{v:.9f}" for v in row) + " " for row in np.atleast_2d(block)] + [""]
    return "\n".join(lines).encode()


def calibration(rotation: np.ndarray, translation: np.ndarray) -> bytes:
    return matrix_text(K, np.zeros(4), rotation, translation)


ROTATION = geometry.quat_to_matrix(geometry.aflw_to_quat(np.radians([15.0, -35.0, 8.0])))
CENTRE = np.array([40.0, 20.0, 900.0])
EXTRINSIC_R = geometry.quat_to_matrix(geometry.rotvec_to_quat([0.01, -0.02, 0.005]))
EXTRINSIC_T = np.array([-24.0, 0.5, -2.0])


def biwi_members() -> dict[str, bytes]:
    return {
        "hpdb/01/rgb.cal": calibration(np.eye(3), np.zeros(3)),
        "hpdb/01/frame_00003_rgb.png": png_bytes(0),
        "hpdb/01/frame_00003_pose.txt": matrix_text(ROTATION, CENTRE),
        "hpdb/02/rgb.cal": calibration(EXTRINSIC_R, EXTRINSIC_T),
        "hpdb/02/frame_00010_rgb.png": png_bytes(1),
        "hpdb/02/frame_00010_pose.txt": matrix_text(ROTATION, CENTRE),
        "hpdb/03/frame_00001_rgb.png": png_bytes(2),  # no rgb.cal, angles in .bin
        "hpdb/03/frame_00001_pose.bin": np.array([*CENTRE, -15.0, -35.0, 8.0], "<f4").tobytes(),
    }


def test_biwi_rotation_comes_back_in_our_frame(tmp_path, capsys):
    source = write_zip(tmp_path / "kinect_head_pose_db.zip", biwi_members())
    assert convert("biwi", source, tmp_path / "out.h5") == 0
    assert "wrote 3 samples" in capsys.readouterr().out
    data = read_dataset(tmp_path / "out.h5")
    matrices = geometry.quat_to_matrix(data["quats"])
    np.testing.assert_allclose(matrices[0], ROTATION, atol=1e-6)  # the file's matrix, as written
    np.testing.assert_allclose(matrices[1], EXTRINSIC_R @ ROTATION, atol=1e-6)  # into the RGB camera
    np.testing.assert_allclose(matrices[2], ROTATION, atol=1e-5)  # .bin angles: same pose
    camera = np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
    np.testing.assert_allclose(data["camera"][:2], [camera, camera], rtol=1e-6)
    np.testing.assert_allclose(data["camera"][2], DEFAULT_CAMERA, rtol=1e-6)
    np.testing.assert_allclose(data["coords"][0], geometry.head_coords(CENTRE, camera), rtol=1e-5)
    np.testing.assert_allclose(data["coords"][1], geometry.head_coords(EXTRINSIC_R @ CENTRE + EXTRINSIC_T, camera),
                               rtol=1e-5)
    x0, y0, x1, y1 = data["rois"][0]
    assert x0 < data["coords"][0, 0] < x1 and y0 < data["coords"][0, 1] < y1


def test_matrix_reading_matches_the_literature_angles():
    """Hopenet/FSA-Net read BIWI as R = M^T with these formulas; they give AFLW angles of M."""
    pitch_yaw_roll = np.radians([15.0, -35.0, 8.0])
    r = ROTATION.T
    pitch = np.arctan2(r[2, 1], r[2, 2])
    yaw = -np.arctan2(-r[2, 0], np.hypot(r[2, 1], r[2, 2]))
    roll = -np.arctan2(r[1, 0], r[0, 0])
    np.testing.assert_allclose([pitch, yaw, roll], pitch_yaw_roll, atol=1e-12)


def test_bad_pose_file_counted(tmp_path, capsys):
    members = biwi_members()
    members["hpdb/01/frame_00003_pose.txt"] = b"1 0 0\n0 1\n"
    del members["hpdb/02/frame_00010_pose.txt"]
    assert convert("biwi", write_zip(tmp_path / "b.zip", members), tmp_path / "out.h5") == 0
    out = capsys.readouterr().out
    assert "wrote 1 samples" in out and "1 unreadable _pose.txt" in out and "1 no _pose.txt or _pose.bin" in out


def test_shared_biwi_sample_matches_opal23(shared_data, tmp_path):
    assert convert("biwi", shared_data / "biwi", tmp_path / "biwi.h5", "--strict") == 0
    data = read_dataset(tmp_path / "biwi.h5")
    rows = [line.split(";") for line in (shared_data / "biwi" / "biwi_ann_opal23_subset.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    assert len(data) == len(rows) == 10
    yaw, pitch, roll = np.array([[float(v) for v in row[5:8]] for row in rows]).T  # opal23: yaw = -AFLW yaw
    ours = geometry.ypr_deg(data["quats"])
    assert np.all(np.abs(ours[:, 0] + yaw) < 0.3) and np.all(np.abs(ours[:, 1] - pitch) < 0.3)
    opal = geometry.aflw_to_quat(np.radians(np.column_stack([pitch, -yaw, roll])))
    assert np.all(geometry.geodesic_deg(opal, data["quats"]) < 1.5)
    boxes = np.array([[float(v) for v in row[1:5]] for row in rows])  # opal23's face boxes
    centres = data["coords"][:, :2]
    assert np.all((boxes[:, :2] < centres) & (centres < boxes[:, 2:]))
