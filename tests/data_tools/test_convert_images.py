"""Photo folder -> dlib + PnP pseudo-labels; every kept face records its landmarks."""

from __future__ import annotations

from test_convert_aflw2000 import convert, jpeg_bytes, write_zip

from posenet.core import geometry
from posenet.core.h5format import read_dataset


def test_no_face_and_corrupt_image_counted(tmp_path, capsys):
    members = {"photos/plain.jpg": jpeg_bytes(320, 240), "photos/broken.jpg": b"\xff\xd8\xff\xe0 broken"}
    assert convert("images", write_zip(tmp_path / "p.zip", members), tmp_path / "out.h5") == 2
    error = capsys.readouterr().err
    assert "no usable images samples" in error and "1 no face detected" in error and "1 corrupt image" in error
    assert not (tmp_path / "out.h5").exists()


def test_shared_photos_pseudo_labels(shared_data, tmp_path, capsys):
    assert convert("images", shared_data / "landmarks68", tmp_path / "out.h5") == 0
    data = read_dataset(tmp_path / "out.h5")
    assert len(data) >= 3 and "pt2d_68" in data
    from baselines.pnp import estimate_pose

    for i in range(len(data)):  # the recorded landmarks are those the pose was computed from
        x0, y0, x1, y1 = data["rois"][i]
        centre = data["pt2d_68"][i].mean(axis=0)
        assert x0 < centre[0] < x1 and y0 < centre[1] < y1
        again = estimate_pose(data["pt2d_68"][i].astype(float), data["camera"][i])
        assert geometry.geodesic_deg(again.quat, data["quats"][i]) < 0.01
