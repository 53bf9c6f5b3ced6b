"""Augmentation: rotation groups and mirroring keep image, landmarks and pose consistent."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_convert_aflw2000 import SAMPLES, aflw_members, convert, write_zip

from data_tools.augment import ORIGINAL_GROUPS_DEG, parse_groups
from data_tools.convert.aflw2000 import fit_head
from posenet.cli import main
from posenet.core import geometry
from posenet.core.errors import PosenetError
from posenet.core.facemodel import LANDMARKS_68
from posenet.core.h5format import read_dataset, write_dataset
from posenet.core.transforms import rotated_box

DOTS = (8, 36, 45, 30)  # chin, outer eye corners, nose tip: asymmetric enough to catch a bad flip


@pytest.fixture
def aflw_file(tmp_path):
    """The in-code AFLW archive converted, its images replaced by dots on a few landmarks."""
    convert("aflw2000", write_zip(tmp_path / "a.zip", aflw_members()), tmp_path / "raw.h5")
    data = read_dataset(tmp_path / "raw.h5")
    images = []
    for points in data["pt3d_68"]:
        image = np.zeros((450, 450, 3), np.uint8)
        for k in DOTS:  # pixel-edge coordinates: the pixel centre of column i is i + 0.5
            cv2.circle(image, tuple(np.round((points[k, :2] - 0.5) * 16).astype(int)), 4 * 16, (255, 255, 255), -1,
                       shift=4)
        cv2.putText(image, "A", (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 0, 0), 3)
        images.append(cv2.imencode(".png", image)[1].reshape(-1))
    write_dataset(tmp_path / "in.h5", {**data.fields, "images": images}, data.attrs, lossy=False)
    return tmp_path / "in.h5"


def augment(source, out, *extra) -> int:
    return main(["data", "augment", str(source), str(out), *extra])


def test_groups_and_flip_keep_labels_exact(aflw_file, tmp_path, capsys):
    assert augment(aflw_file, tmp_path / "out.h5", "--flip") == 0
    assert "wrote 18 samples from 3" in capsys.readouterr().out
    source, data = read_dataset(aflw_file), read_dataset(tmp_path / "out.h5")
    for i in range(len(data)):
        # every label agrees with the others: the posed face model fits the landmarks exactly
        scale, centre = fit_head(data["pt3d_68"][i, :, :2].astype(float), data["quats"][i])
        posed = scale * (LANDMARKS_68 @ geometry.quat_to_matrix(data["quats"][i]).T)[:, :2] + centre
        np.testing.assert_allclose(posed, data["pt3d_68"][i, :, :2], atol=0.05)
        np.testing.assert_allclose(centre, data["coords"][i, :2], atol=0.05)
        # and the pixels moved with the landmarks (rotation about the principal point, mirror)
        image = cv2.cvtColor(data.image(i), cv2.COLOR_RGB2GRAY)
        for k in DOTS:
            x, y = np.floor(data["pt3d_68"][i, k, :2]).astype(int)
            assert image[y, x] > 200, (i, k)
    # the group of each image is one of the original four, and the 0 copy is the original
    for image_index in range(3):
        quats = data["quats"][6 * image_index: 6 * image_index + 6: 2]
        angles = [np.degrees(geometry.geodesic_rad(source["quats"][image_index], q)) for q in quats]
        assert any(np.allclose(sorted(angles), sorted(np.abs(g)), atol=1e-3) for g in ORIGINAL_GROUPS_DEG)
        np.testing.assert_allclose(data["rois"][6 * image_index + 2], source["rois"][image_index], atol=1e-3)


def test_mirror_camera_and_pose_para(aflw_file, tmp_path):
    data = read_dataset(aflw_file)
    camera = data["camera"].copy()
    camera[:, 2] = 200.0  # an off-centre principal point must become W - cx
    write_dataset(aflw_file, {**data.fields, "camera": camera}, data.attrs)
    assert augment(aflw_file, tmp_path / "out.h5", "--groups", "none", "--flip") == 0
    out = read_dataset(tmp_path / "out.h5")
    np.testing.assert_allclose(out["camera"][1::2, 2], 250.0)
    np.testing.assert_allclose(out["quats"][1::2], geometry.mirror_quat(out["quats"][0::2]), atol=1e-6)
    np.testing.assert_allclose(geometry.aflw_to_quat(out["pose_para"]), out["quats"], atol=1e-5)


def test_flip_then_pnp_relabel_equals_analytic_mirror(tmp_path):
    """The original's PnP labels of flipped images were up to 180 deg off; ours within 1 deg.

    The landmarks are the face model seen by the stored camera (perspective), so PnP
    recovers the unflipped pose exactly and any error would come from the flip rule.
    """
    camera = geometry.camera_for_image(450, 450)
    quats = geometry.aflw_to_quat(np.radians([s[0] for s in SAMPLES]))
    centres = np.array([[30.0, -20.0, 700.0], [-40.0, 10.0, 600.0], [0.0, 25.0, 800.0]])
    points = geometry.project(geometry.transform(LANDMARKS_68, quats, centres), camera)
    blank = cv2.imencode(".png", np.zeros((450, 450, 3), np.uint8))[1].reshape(-1)
    fields = {"images": [blank] * 3, "quats": quats, "coords": geometry.head_coords(centres, camera),
              "pt3d_68": np.concatenate([points, np.zeros((3, 68, 1))], axis=2), "camera": np.tile(camera, (3, 1))}
    write_dataset(tmp_path / "in.h5", fields)
    assert augment(tmp_path / "in.h5", tmp_path / "out.h5", "--groups", "none", "--flip", "--relabel", "pnp") == 0
    out = read_dataset(tmp_path / "out.h5")
    assert len(out) == 2 * len(SAMPLES)
    assert np.all(geometry.geodesic_deg(quats, out["quats"][0::2]) < 0.1)
    errors = geometry.geodesic_deg(geometry.mirror_quat(quats), out["quats"][1::2])
    assert np.all(errors < 1.0), errors
    np.testing.assert_allclose(out["coords"][1::2, 0], 450 - out["coords"][0::2, 0], atol=0.05)


def test_shared_aflw_flip_relabel(shared_data, tmp_path):
    assert convert("aflw2000", shared_data / "aflw2000", tmp_path / "aflw.h5", "-n", "4") == 0
    assert augment(tmp_path / "aflw.h5", tmp_path / "out.h5", "--groups", "none", "--flip", "--relabel", "pnp") == 0
    out = read_dataset(tmp_path / "out.h5")
    errors = geometry.geodesic_deg(geometry.mirror_quat(out["quats"][0::2]), out["quats"][1::2])
    assert len(out) == 8 and np.all(errors < 1.0), errors


def test_range_groups_and_bad_groups():
    assert parse_groups("30") == (-30.0, 30.0) and parse_groups("-10,20") == (-10.0, 20.0)
    with pytest.raises(PosenetError, match="--groups"):
        parse_groups("10,20")


def test_rotated_box_rule():
    roi = np.array([10.0, 20.0, 50.0, 100.0])
    np.testing.assert_allclose(rotated_box(roi, geometry.inplane_affine([30, 60], 0.0)), roi)
    np.testing.assert_allclose(rotated_box(roi, geometry.inplane_affine([30, 60], np.pi / 2)),
                               [-10.0, 40.0, 70.0, 80.0], atol=1e-9)


def test_augment_refuses_to_write_over_its_input(tmp_path, capsys):

    from posenet.core.h5format import encode_image, write_dataset

    path = write_dataset(tmp_path / "a.h5", {"images": [encode_image(np.zeros((8, 8, 3), np.uint8))],
                                             "quats": np.array([[0.0, 0.0, 0.0, 1.0]], np.float32)})
    before = path.read_bytes()
    assert main(["data", "augment", str(path), str(path)]) == 2
    assert "is also an input of this command" in capsys.readouterr().err
    assert path.read_bytes() == before


@pytest.mark.parametrize("extra,message", [(["--groups", "5,abc"], "--groups 5,abc: expected"),
                                          (["--groups=-inf,inf"], "--groups -inf,inf: expected"),
                                          (["--groups", "nan"], "--groups nan: expected"),
                                          (["--seed", "-1"], "--seed -1: must be a non-negative integer")])
def test_bad_groups_and_seed_are_one_line(tmp_path, capsys, extra, message):
    """#14 item 8: these were tracebacks (a PosenetError inside argparse, numpy's overflow, a negative seed)."""
    from posenet.core.h5format import encode_image, write_dataset

    path = write_dataset(tmp_path / "a.h5", {"images": [encode_image(np.zeros((8, 8, 3), np.uint8))],
                                             "quats": np.array([[0.0, 0.0, 0.0, 1.0]], np.float32)})
    assert main(["data", "augment", str(path), str(tmp_path / "b.h5"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "b.h5").exists()


def test_zero_quaternion_in_the_input_is_one_line(tmp_path, capsys):
    from posenet.core.h5format import encode_image

    path = tmp_path / "zero.h5"
    import h5py

    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", (1,), dtype=h5py.vlen_dtype(np.uint8))
        images[0] = encode_image(np.zeros((8, 8, 3), np.uint8))
        f.create_dataset("quats", data=np.zeros((1, 4), np.float32))
    assert main(["data", "augment", str(path), str(tmp_path / "b.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "zero.h5: field 'quats' holds a zero quaternion (sample 0)" in err[0]
