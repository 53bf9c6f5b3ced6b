"""AFLW2000-3D converter and the convert command's common behaviour (archives, bad input).

The tiny archives are built in code in the official layout: `imageNNNNN.jpg` beside a
`.mat` written by scipy.io.savemat with AFLW2000-3D's field names and shapes. Their
landmarks are the face model posed exactly, so every label has a known exact value.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from data_tools.convert import archive as archive_module
from posenet.cli import main
from posenet.core import geometry
from posenet.core.facemodel import LANDMARKS_68
from posenet.core.h5format import read_dataset

SIZE = 450
# (pitch, yaw, roll) degrees, head centre x, y (pixels), pixels per mm
SAMPLES = [((10.0, -30.0, 5.0), (220.0, 230.0), 1.3),
           ((-20.0, 45.0, -12.0), (200.0, 210.0), 1.1),
           ((5.0, 80.0, 20.0), (240.0, 250.0), 1.5)]


def jpeg_bytes(width: int = SIZE, height: int = SIZE, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), (9, 9), 3)
    return cv2.imencode(".jpg", image)[1].tobytes()


def mat_bytes(**fields: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, fields)
    return buffer.getvalue()


def posed_landmarks(pyr_deg, centre_xy, scale) -> np.ndarray:
    """(68, 3) image landmarks of the face model at this pose: x, y pixels, z toward viewer."""
    quat = geometry.aflw_to_quat(np.radians(pyr_deg))
    points = scale * LANDMARKS_68 @ geometry.quat_to_matrix(quat).T
    points[:, :2] += centre_xy
    points[:, 2] = -points[:, 2] + 40.0  # AFLW's z points toward the viewer, arbitrary offset
    return points


def aflw_mat(pyr_deg, centre_xy, scale, **extra) -> bytes:
    """A `.mat` with AFLW2000-3D's fields: Pose_Para 1x7, pt3d_68 3x68, pt2d 2x21, roi 1x4."""
    pose = np.array([[*np.radians(pyr_deg), *centre_xy, 0.0, scale / 1000.0]], np.float32)
    fields = {"Pose_Para": pose, "pt3d_68": posed_landmarks(pyr_deg, centre_xy, scale).T.astype(np.float32),
              "pt2d": np.full((2, 21), -1.0), "roi": np.array([[0, 0, SIZE, SIZE]], np.int16)}
    fields.update(extra)
    return mat_bytes(**{k: v for k, v in fields.items() if v is not None})


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def aflw_members(prefix: str = "AFLW2000/") -> dict[str, bytes]:
    members = {}
    for i, (pyr, centre, scale) in enumerate(SAMPLES):
        members[f"{prefix}image{i:05d}.jpg"] = jpeg_bytes(seed=i)
        members[f"{prefix}image{i:05d}.mat"] = aflw_mat(pyr, centre, scale)
    return members


def convert(fmt: str, source: Path, out: Path, *extra: str) -> int:
    return main(["data", "convert", fmt, str(source), str(out), *extra])


def test_aflw_zip_labels_exact(tmp_path, capsys):
    source = write_zip(tmp_path / "AFLW2000-3D.zip", aflw_members())
    assert convert("aflw2000", source, tmp_path / "out.h5") == 0
    assert "wrote 3 samples" in capsys.readouterr().out
    data = read_dataset(tmp_path / "out.h5")
    assert data.attrs["source"] == "AFLW2000-3D"
    expected = np.radians([s[0] for s in SAMPLES])
    np.testing.assert_allclose(data["pose_para"], expected, atol=1e-6)
    np.testing.assert_allclose(geometry.quat_to_aflw(data["quats"]), expected, atol=1e-5)
    for i, (pyr, centre, scale) in enumerate(SAMPLES):
        np.testing.assert_allclose(data["coords"][i], [*centre, 100 * scale], rtol=1e-4)
        points = posed_landmarks(pyr, centre, scale)
        np.testing.assert_allclose(data["pt3d_68"][i, :, :2], points[:, :2], atol=1e-3)
        np.testing.assert_allclose(data["rois"][i], [*points[:, :2].min(0), *points[:, :2].max(0)], atol=1e-3)
        model_z = scale * (LANDMARKS_68 @ geometry.quat_to_matrix(data["quats"][i]).T)[:, 2]
        np.testing.assert_allclose(data["pt3d_68"][i, :, 2], model_z, atol=1e-2)  # into the screen, centre 0
    np.testing.assert_allclose(data["camera"], [[SIZE, SIZE, SIZE / 2, SIZE / 2]] * 3)


def test_aflw_angles_in_data_info(tmp_path, capsys):
    """The known (pitch, yaw, roll) of the first sample come back from `posenet data info`."""
    source = write_zip(tmp_path / "a.zip", aflw_members())
    convert("aflw2000", source, tmp_path / "out.h5", "-n", "1")
    capsys.readouterr()
    assert main(["data", "info", str(tmp_path / "out.h5")]) == 0
    printed = capsys.readouterr().out
    (pitch, yaw, roll), _, _ = SAMPLES[0]
    assert f"yaw (deg): mean {yaw:+.1f}" in printed
    assert f"pitch (deg): mean {pitch:+.1f}" in printed
    assert f"roll (deg): mean {roll:+.1f}" in printed


def test_folder_and_limit(tmp_path, capsys):
    for name, data in aflw_members().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    assert convert("aflw2000", tmp_path / "AFLW2000", tmp_path / "out.h5", "-n", "2") == 0
    assert len(read_dataset(tmp_path / "out.h5")) == 2


def bad_members() -> dict[str, bytes]:
    members = aflw_members()
    members["AFLW2000/image00001.jpg"] = b"\xff\xd8\xff not really a jpeg"  # corrupt image
    members["AFLW2000/image00002.mat"] = mat_bytes(pt3d_68=np.zeros((3, 68)))  # no Pose_Para
    members["../evil/image00009.jpg"] = jpeg_bytes(seed=9)  # escapes the root
    members["AFLW2000/image00010.jpg"] = jpeg_bytes(seed=10)  # no .mat
    return members


def test_bad_input_counted(tmp_path, capsys):
    source = write_zip(tmp_path / "bad.zip", bad_members())
    assert convert("aflw2000", source, tmp_path / "out.h5") == 0
    out = capsys.readouterr().out
    assert "wrote 1 samples" in out
    for reason in ("1 corrupt image", "1 no Pose_Para in .mat", "1 unsafe member path", "1 no .mat"):
        assert reason in out
    assert not (tmp_path.parent / "evil").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip", "out.h5"]


def test_bad_input_strict_fails_cleanly(tmp_path, capsys):
    source = write_zip(tmp_path / "bad.zip", bad_members())
    assert convert("aflw2000", source, tmp_path / "out.h5", "--strict") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "bad.zip" in error[0] and "unsafe member path" in error[0]
    assert not (tmp_path / "out.h5").exists() and not (tmp_path / "out.h5.tmp").exists()


def test_truncated_zip_is_one_clear_error(tmp_path, capsys):
    whole = write_zip(tmp_path / "whole.zip", aflw_members()).read_bytes()
    (tmp_path / "cut.zip").write_bytes(whole[: len(whole) // 2])
    assert convert("aflw2000", tmp_path / "cut.zip", tmp_path / "out.h5") == 2
    error = capsys.readouterr().err
    assert "cut.zip" in error and "truncated" in error and "Traceback" not in error
    assert not (tmp_path / "out.h5").exists()


def test_corrupt_member_data_counted(tmp_path, capsys):
    path = write_zip(tmp_path / "c.zip", aflw_members())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:  # damage the stored bytes of one image (CRC fails)
        info = archive.getinfo("AFLW2000/image00000.jpg")
    start = info.header_offset + 30 + len(info.filename) + 100
    data[start: start + 50] = bytes(50)
    path.write_bytes(bytes(data))
    assert convert("aflw2000", path, tmp_path / "out.h5") == 0
    assert "1 unreadable member" in capsys.readouterr().out


def test_shared_aflw2000_sample(shared_data, tmp_path, capsys):
    assert convert("aflw2000", shared_data / "aflw2000", tmp_path / "aflw.h5", "--strict") == 0
    data = read_dataset(tmp_path / "aflw.h5")
    assert len(data) == 16
    for i, name in enumerate(sorted((shared_data / "aflw2000").glob("*.mat"))):
        raw = scipy.io.loadmat(name)["Pose_Para"][0, :3]
        np.testing.assert_allclose(data["pose_para"][i], raw)
        assert geometry.geodesic_deg(geometry.aflw_to_quat(raw), data["quats"][i]) < 1e-3
        # the fitted head centre lies inside the face box, and 100 mm is a plausible size
        x0, y0, x1, y1 = data["rois"][i]
        assert x0 < data["coords"][i, 0] < x1 and y0 < data["coords"][i, 1] < y1
        assert 0.4 < data["coords"][i, 2] / (x1 - x0) < 1.5


def write_folder(root: Path, members: dict[str, bytes]) -> Path:
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_a_pipe_in_the_folder_is_skipped_and_a_device_source_refused(tmp_path, capsys):
    """#14 item 5: a named pipe in the source folder, or /dev/zero as the source, hung `data convert`."""
    source = write_folder(tmp_path / "src", aflw_members())
    os.mkfifo(source / "AFLW2000" / "image00007.jpg")
    assert convert("aflw2000", source, tmp_path / "out.h5") == 0
    assert "wrote 3 samples" in (out := capsys.readouterr().out) and "1 not a regular file" in out
    assert convert("aflw2000", Path("/dev/zero"), tmp_path / "zero.h5") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["posenet: error: /dev/zero: not a regular file or folder (a pipe or device); give the .zip or "
                   "its folder"]


def png_bytes_of_size(width: int, height: int) -> bytes:
    return cv2.imencode(".png", np.zeros((height, width, 3), np.uint8))[1].tobytes()


def test_members_and_images_over_the_limits_are_skipped_before_decoding(tmp_path, capsys, monkeypatch):
    """#14 item 7: a 187 KB zip holding an 8000x8000 PNG took 3.2 GB; a 100 MiB member of a 120 KB zip 300 MB."""
    members = aflw_members()
    members["AFLW2000/image00005.jpg"] = png_bytes_of_size(8000, 8000)  # 64 MP, a few hundred KB as PNG
    members["AFLW2000/image00005.mat"] = members["AFLW2000/image00000.mat"]
    members["AFLW2000/image00006.jpg"] = bytes(3 * 2**20)  # 3 MB of zeros, a few KB zipped
    members["AFLW2000/image00006.mat"] = members["AFLW2000/image00000.mat"]
    source = write_zip(tmp_path / "big.zip", members)
    decoded = []
    original = archive_module.decode_image
    monkeypatch.setattr(archive_module, "decode_image", lambda data, source: decoded.append(len(data)) or
                        original(data, source=source))
    assert convert("aflw2000", source, tmp_path / "out.h5", "--max-member-mb", "2") == 0
    out = capsys.readouterr().out
    assert "wrote 3 samples" in out and "1 image larger than 40 megapixels" in out
    assert "1 member larger than 2 MB (--max-member-mb)" in out
    assert len(decoded) == 3  # the huge image was never decoded
    assert convert("aflw2000", source, tmp_path / "out2.h5", "--max-megapixels", "0.1") == 2  # 450x450 = 0.2 MP
    assert "image larger than 0.1 megapixels" in capsys.readouterr().err


def test_a_lying_member_header_stops_at_the_limit(tmp_path):
    """A zip whose header declares a small size but inflates to more is skipped, never read whole."""
    from data_tools.convert.archive import Skip, open_archive

    path = write_zip(tmp_path / "a.zip", {"big.bin": bytes(2 * 2**20)})
    with open_archive(path) as archive:
        archive.max_member_bytes = 2**20
        archive._zip.getinfo("big.bin").file_size = 10  # what a hostile header would say
        with pytest.raises(Skip):  # zipfile stops at the declared size (then the CRC fails), or our limit does
            archive.read("big.bin")


def test_malformed_mat_and_non_finite_labels_are_skipped_and_counted(tmp_path, capsys):
    """#14 items 8/9: a .mat with text for Pose_Para aborted the conversion; all-equal landmarks gave NaN
    coords and an empty face box, which were written."""
    members = aflw_members()
    members["AFLW2000/image00001.mat"] = mat_bytes(Pose_Para=np.array(["not numbers"]), pt3d_68=np.zeros((3, 68)))
    members["AFLW2000/image00002.mat"] = aflw_mat(*SAMPLES[2], pt3d_68=np.ones((3, 68)))
    source = write_zip(tmp_path / "m.zip", members)
    assert convert("aflw2000", source, tmp_path / "out.h5") == 0
    out = capsys.readouterr().out
    assert "wrote 1 samples" in out and "1 malformed Pose_Para in .mat" in out
    assert "1 label 'coords' holds a non-finite value" in out or "1 label 'rois' holds an inverted" in out
    data = read_dataset(tmp_path / "out.h5")
    assert np.isfinite(data["coords"]).all()
