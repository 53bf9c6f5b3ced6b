"""WIDER FACE converter: crops with exactly one face or none, in the localizer's size."""

from __future__ import annotations

import numpy as np
from test_convert_aflw2000 import convert, jpeg_bytes, write_zip

from data_tools.convert.widerface import CROP_SIZE
from posenet.core.h5format import read_dataset

# name -> face boxes (x, y, w, h, invalid)
FACES = {
    "0--Parade/0_Parade_one.jpg": [(300, 200, 60, 80, 0)],
    "0--Parade/0_Parade_two.jpg": [(300, 200, 60, 80, 0), (362, 205, 58, 76, 0)],  # side by side
    "0--Parade/0_Parade_none.jpg": [],
}


def annotation_text() -> bytes:
    lines = []
    for name, faces in FACES.items():
        lines += [name, str(len(faces))]
        lines += [f"{x} {y} {w} {h} 0 0 0 {invalid} 0 0 " for x, y, w, h, invalid in faces] or ["0 0 0 0 0 0 0 0 0 0 "]
    return ("\n".join(lines) + "\n").encode()


def wider_members() -> dict[str, bytes]:
    members = {"wider_face_split/wider_face_val_bbx_gt.txt": annotation_text()}
    for i, name in enumerate(FACES):
        members[f"WIDER_val/images/{name}"] = jpeg_bytes(1024, 700, seed=i)
    return members


def test_wider_crops(tmp_path, capsys):
    source = write_zip(tmp_path / "WIDER_val.zip", wider_members())
    assert convert("widerface", source, tmp_path / "out.h5", "--seed", "3") == 0
    data = read_dataset(tmp_path / "out.h5")
    assert data.attrs["split"] == "val" and data.attrs["seed"] == 3
    # one positive (from the single-face image) and one negative per image
    assert data["hasface"].tolist().count(True) == 1 and data["hasface"].tolist().count(False) == 3
    assert all(data.image(i).shape == (CROP_SIZE[1], CROP_SIZE[0], 3) for i in range(len(data)))
    positive = data["rois"][data["hasface"]][0]
    width, height = positive[2:] - positive[:2]
    assert 0 <= positive[0] and positive[2] <= CROP_SIZE[0] and 0 <= positive[1] and positive[3] <= CROP_SIZE[1]
    assert abs(width / height - 60 / 80) < 0.02  # the face box, scaled with the crop
    np.testing.assert_array_equal(data["rois"][~data["hasface"]], 0)
    # same seed, same file
    convert("widerface", source, tmp_path / "again.h5", "--seed", "3")
    np.testing.assert_array_equal(read_dataset(tmp_path / "again.h5")["rois"], data["rois"])


def test_two_faces_give_no_positive(tmp_path):
    members = wider_members()
    members["wider_face_split/wider_face_val_bbx_gt.txt"] = b"0--Parade/0_Parade_two.jpg\n2\n" \
        b"300 200 60 80 0 0 0 0 0 0 \n362 205 58 76 0 0 0 0 0 0 \n"
    assert convert("widerface", write_zip(tmp_path / "w.zip", members), tmp_path / "out.h5") == 0
    assert not read_dataset(tmp_path / "out.h5")["hasface"].any()


def test_malformed_annotation_is_one_clear_error(tmp_path, capsys):
    members = wider_members()
    members["wider_face_split/wider_face_val_bbx_gt.txt"] = b"0--Parade/0_Parade_one.jpg\nmany\n"
    assert convert("widerface", write_zip(tmp_path / "w.zip", members), tmp_path / "out.h5") == 2
    assert "malformed WIDER annotation" in capsys.readouterr().err


def test_shared_wider_sample(shared_data, tmp_path):
    assert convert("widerface", shared_data / "wider_face", tmp_path / "w.h5", "--strict") == 0
    data = read_dataset(tmp_path / "w.h5")
    assert data["hasface"].any() and (~data["hasface"]).any()
    boxes = data["rois"][data["hasface"]]
    assert np.all(boxes[:, 2:] > boxes[:, :2]) and np.all(boxes[:, 2:] <= CROP_SIZE)
