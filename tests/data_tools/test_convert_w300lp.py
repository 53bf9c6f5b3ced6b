"""300W-LP converter: subset folders, the landmarks/ folder and the _Flip label check."""

from __future__ import annotations

import numpy as np
from test_convert_aflw2000 import SIZE, convert, jpeg_bytes, mat_bytes, posed_landmarks, write_zip

from data_tools.convert.aflw2000 import fit_head
from posenet.core import geometry
from posenet.core.facemodel import FLIP_PERMUTATION_68
from posenet.core.h5format import read_dataset

PYR, CENTRE, SCALE = (12.0, -40.0, 6.0), (210.0, 220.0), 1.2


def wlp_mat(pyr, points_xy) -> bytes:
    """A 300W-LP `.mat`: Pose_Para 1x7, pt2d 2x68 (no pt3d_68)."""
    return mat_bytes(Pose_Para=np.array([[*np.radians(pyr), 0, 0, 0, 0.001]], np.float32), pt2d=points_xy.T,
                     roi=np.array([[0, 0, SIZE, SIZE]], np.int16))


def wlp_members(flip_pyr=(12.0, 40.0, -6.0)) -> dict[str, bytes]:
    points = posed_landmarks(PYR, CENTRE, SCALE)[:, :2]
    mirrored = geometry.mirror_x(points, SIZE)[FLIP_PERMUTATION_68]
    return {
        "300W_LP/AFW/AFW_1_0.jpg": jpeg_bytes(seed=0),
        "300W_LP/AFW/AFW_1_0.mat": wlp_mat(PYR, points + 3.0),  # visible contour differs from pts_3d
        "300W_LP/landmarks/AFW/AFW_1_0_pts.mat": mat_bytes(pts_3d=points, pts_2d=points + 3.0),
        "300W_LP/AFW_Flip/AFW_1_0.jpg": jpeg_bytes(seed=1),
        "300W_LP/AFW_Flip/AFW_1_0.mat": wlp_mat(flip_pyr, mirrored),
    }


def test_w300lp_subsets_and_flip(tmp_path, capsys):
    assert convert("300wlp", write_zip(tmp_path / "300W-LP.zip", wlp_members()), tmp_path / "out.h5") == 0
    assert "wrote 2 samples" in capsys.readouterr().out
    data = read_dataset(tmp_path / "out.h5")
    np.testing.assert_allclose(data["pose_para"][0], np.radians(PYR), atol=1e-6)
    points = posed_landmarks(PYR, CENTRE, SCALE)[:, :2]
    np.testing.assert_allclose(data["pt3d_68"][0, :, :2], points, atol=1e-3)  # from landmarks/ pts_3d
    np.testing.assert_allclose(data["pt2d_68"][0], points + 3.0, atol=1e-3)  # the .mat's pt2d
    np.testing.assert_allclose(data["coords"][0], [*CENTRE, 100 * SCALE], rtol=1e-4)
    # the _Flip label is the mirror of its twin's, and its landmarks fit it
    assert geometry.geodesic_deg(geometry.mirror_quat(data["quats"][0]), data["quats"][1]) < 1e-3
    scale, centre = fit_head(data["pt3d_68"][1, :, :2].astype(float), data["quats"][1])
    np.testing.assert_allclose([*centre, scale], [SIZE - CENTRE[0], CENTRE[1], SCALE], rtol=1e-4)


def test_flip_label_of_the_unflipped_image_is_skipped(tmp_path, capsys):
    members = wlp_members(flip_pyr=PYR)  # the twin's own label: wrong for the flipped image
    assert convert("300wlp", write_zip(tmp_path / "w.zip", members), tmp_path / "out.h5") == 0
    assert "1 _Flip label is not the mirrored twin's" in capsys.readouterr().out


def test_shared_w300lp_sample(shared_data, tmp_path):
    assert convert("300wlp", shared_data / "300wlp", tmp_path / "w.h5", "--strict") == 0
    data = read_dataset(tmp_path / "w.h5")
    x0, y0, x1, y1 = data["rois"][0]
    assert len(data) == 1 and x0 < data["coords"][0, 0] < x1 and y0 < data["coords"][0, 1] < y1
