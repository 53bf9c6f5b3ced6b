"""`data show` contact sheets and `data info` summaries, on small generated files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from data_tools import synth
from posenet.cli import main
from posenet.core.h5format import write_dataset


@pytest.fixture(scope="module")
def face_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("show") / "faces.h5"
    synth.write_synth(path, synth.SynthConfig(), 6, seed=1, workers=1)
    return path


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("show") / "scenes.h5"
    synth.write_synth(path, synth.SynthConfig(mode="scene", face_probability=0.5), 6, seed=2, workers=1)
    return path


def _sheet(path, tmp_path, *extra):
    out = tmp_path / "sheet.png"
    assert main(["data", "show", str(path), "--out", str(out), *extra]) == 0
    image = cv2.imread(str(out))
    assert image is not None and not list(tmp_path.glob("*.tmp"))
    return image


def test_show_draws_a_non_trivial_sheet(face_file, tmp_path):
    image = _sheet(face_file, tmp_path, "--n", "4", "--cols", "2")
    assert image.shape == (400, 400, 3)
    assert image.std() > 20
    greenish = (image[..., 1] > 200) & (image[..., 0] < 80) & (image[..., 2] < 80)  # landmarks / y axis
    assert greenish.sum() > 50


def test_show_handles_scene_files_and_missing_fields(scene_file, tmp_path):
    assert _sheet(scene_file, tmp_path, "--seed", "0").shape[1] == 4 * 200
    images = [cv2.imencode(".png", np.full((40, 60, 3), 90, np.uint8))[1].reshape(-1) for _ in range(3)]
    bare = tmp_path / "bare.h5"
    write_dataset(bare, {"images": images, "quats": np.tile([0.0, 0.0, 0.0, 1.0], (3, 1))})
    assert _sheet(bare, tmp_path).shape == (200, 3 * 200, 3)


def test_show_bad_input(tmp_path, capsys):
    assert main(["data", "show", str(tmp_path / "none.h5"), "--out", str(tmp_path / "s.png")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "s.png").exists()


def test_info_prints_counts_fields_and_histograms(face_file, scene_file, capsys):
    assert main(["data", "info", str(face_file)]) == 0
    out = capsys.readouterr().out
    assert "6 samples, 6 with a face" in out
    for word in ("quats", "pt3d_68", "yaw (deg)", "pitch (deg)", "roll (deg)", "face size (px)", "#"):
        assert word in out
    assert main(["data", "info", str(scene_file)]) == 0
    assert "hasface" in capsys.readouterr().out


def test_info_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    assert main(["data", "info", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.h5" in err[0]


def _damaged_copy(source, tmp_path, name: str, row: int, value) -> str:
    import shutil

    import h5py

    path = tmp_path / f"{name}.h5"
    shutil.copy(source, path)
    with h5py.File(path, "r+") as f:
        values = f[name][:]
        values[row] = value
        f[name][...] = values
    return str(path)


@pytest.mark.parametrize("name,value", [("quats", np.nan), ("quats", 0.0), ("rois", np.nan),
                                        ("rois", [50.0, 50.0, 10.0, 10.0])])
def test_bad_labels_are_one_line_in_info_and_show(face_file, tmp_path, capsys, name, value):
    """#14 item 8: a NaN or zero quaternion, a NaN or inverted box: one line naming the file and sample."""
    path = _damaged_copy(face_file, tmp_path, name, 2, value)
    for command in (["info", path], ["show", path, "--out", str(tmp_path / "s.png")]):
        assert main(["data", *command]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{name}.h5: field '{name}'" in err[0] and "sample 2" in err[0]


def test_images_as_a_group_and_damaged_metadata_in_info_and_show(face_file, tmp_path, capsys):
    import h5py

    group = tmp_path / "group.h5"
    with h5py.File(group, "w") as f:
        f.create_group("images")
    damaged = tmp_path / "damaged.h5"
    data = bytearray(face_file.read_bytes())
    data[800:1200] = bytes(400)  # the root group's header and link table
    damaged.write_bytes(bytes(data))
    for path in (group, damaged):
        for command in (["info", str(path)], ["show", str(path), "--out", str(tmp_path / "s.png")]):
            assert main(["data", *command]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and path.name in err[0]


def test_show_negative_seed_is_one_line(face_file, tmp_path, capsys):
    assert main(["data", "show", str(face_file), "--out", str(tmp_path / "s.png"), "--seed", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "posenet: error: --seed -1: must be a non-negative integer"
