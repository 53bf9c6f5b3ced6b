"""The HDF5 dataset format: round trip, Opentrack compatibility, clear errors, atomic writes."""

import h5py
import numpy as np
import pytest

from posenet.core import h5format
from posenet.core.errors import PosenetError


def sample_fields(n: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    images = [h5format.encode_image(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), lossy=False)
              for _ in range(n)]
    quats = rng.normal(size=(n, 4))
    return {
        "images": images,
        "quats": quats / np.linalg.norm(quats, axis=1, keepdims=True),
        "coords": rng.uniform(0, 30, (n, 3)),
        "rois": np.sort(rng.uniform(0, 30, (n, 2, 2)), axis=1).reshape(n, 4),  # x0 < x1, y0 < y1
        "pt3d_68": rng.uniform(0, 30, (n, 68, 3)),
        "hasface": np.ones(n, bool),
    }


def test_round_trip_keeps_values_categories_and_attributes(tmp_path):
    fields = sample_fields()
    path = h5format.write_dataset(tmp_path / "d.h5", fields, {"source": "unit test", "split": "train"}, lossy=False)
    data = h5format.read_dataset(path)
    assert len(data) == 3 and data.attrs["source"] == "unit test"
    for name in ("quats", "coords", "rois", "pt3d_68"):
        np.testing.assert_allclose(data[name], fields[name].astype(np.float32))
        assert data[name].dtype == np.float32
    # PNG is lossless: decoded pixels are exactly what was encoded
    original = h5format.decode_image(fields["images"][1])
    np.testing.assert_array_equal(data.image(1), original)
    with h5py.File(path) as f:
        assert f["images"].attrs["category"] == "img"
        assert f["images"].attrs["storage"] == "varsize_image_buffer"
        assert f["quats"].attrs["category"] == "q"
        assert f["coords"].attrs["category"] == "xys"
    assert not (tmp_path / "d.h5.tmp").exists()


def test_subset_and_field_selection(tmp_path):
    path = h5format.write_dataset(tmp_path / "d.h5", sample_fields(5))
    data = h5format.read_dataset(path, names=["quats"])
    assert set(data.fields) == {"images", "quats"}
    part = data.subset([4, 0])
    np.testing.assert_array_equal(part["quats"], data["quats"][[4, 0]])
    assert part["images"][0] is data["images"][4]


def test_reads_opentracks_own_file_unchanged(shared_data):
    data = h5format.validate(shared_data / "opentrack_format_sample.h5")
    assert len(data) == 2
    assert data["pt3d_68"].shape == (2, 68, 3) and data["shapeparams"].shape == (2, 50)
    assert data.image(0).shape == (450, 450, 3)


def test_truncated_file_names_the_file(tmp_path):
    path = h5format.write_dataset(tmp_path / "d.h5", sample_fields())
    broken = tmp_path / "broken.h5"
    broken.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(PosenetError, match="broken.h5"):
        h5format.read_dataset(broken)


@pytest.mark.parametrize("name,value,message", [
    ("quats", np.zeros((3, 3)), "field 'quats' has shape"),
    ("rois", np.zeros((2, 4)), "field 'rois' has 2 rows"),
])
def test_wrong_schema_names_the_field(tmp_path, name, value, message):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", (3,), dtype=h5py.vlen_dtype(np.uint8))
        f.create_dataset(name, data=value)
    with pytest.raises(PosenetError, match=f"bad.h5.*{message}"):
        h5format.read_dataset(path)


def test_missing_images_and_missing_file(tmp_path):
    path = tmp_path / "noimg.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("quats", data=np.zeros((3, 4)))
    with pytest.raises(PosenetError, match="noimg.h5: field 'images' is missing"):
        h5format.read_dataset(path)
    with pytest.raises(PosenetError, match="no such dataset file"):
        h5format.read_dataset(tmp_path / "absent.h5")


def test_writer_rejects_bad_fields_and_keeps_existing_file(tmp_path):
    path = h5format.write_dataset(tmp_path / "d.h5", sample_fields())
    before = path.read_bytes()
    fields = sample_fields()
    fields["pt3d_68"] = np.zeros((3, 5, 3))
    with pytest.raises(PosenetError, match="pt3d_68"):
        h5format.write_dataset(path, fields)
    assert path.read_bytes() == before
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PosenetError, match="afile"):
        h5format.write_dataset(tmp_path / "afile" / "d.h5", sample_fields())  # a file where a folder must be


def test_undecodable_image_is_one_clear_error():
    with pytest.raises(PosenetError, match="not a decodable"):
        h5format.decode_image(np.frombuffer(b"not an image", np.uint8), source="x.h5[0]")


def _with_row(fields: dict, name: str, row: int, value) -> dict:
    values = np.array(fields[name], np.float64)
    values[row] = value
    return {**fields, name: values}


BAD_LABELS = [
    ("quats", np.nan, "'quats' holds a non-finite value"),
    ("quats", 0.0, "'quats' holds a zero quaternion"),
    ("rois", np.nan, "'rois' holds a non-finite value"),
    ("rois", [20.0, 20.0, 10.0, 30.0], "'rois' holds an inverted or empty face box"),
    ("coords", np.inf, "'coords' holds a non-finite value"),
]


@pytest.mark.parametrize("name,value,message", BAD_LABELS)
def test_reader_refuses_bad_labels_naming_file_field_and_sample(tmp_path, name, value, message):
    """#14 items 8/9: NaN or zero quaternions, NaN or inverted boxes are one line, not a scipy traceback."""
    path = h5format.write_dataset(tmp_path / "d.h5", sample_fields())
    with h5py.File(path, "r+") as f:
        values = f[name][:]
        values[1] = value
        f[name][...] = values
    with pytest.raises(PosenetError, match=rf"d.h5: field {message}.*\(sample 1\)"):
        h5format.read_dataset(path)
    with pytest.raises(PosenetError, match=message):
        h5format.read_dataset(path, names=[name])


@pytest.mark.parametrize("name,value,message", BAD_LABELS)
def test_writer_refuses_bad_labels(tmp_path, name, value, message):
    with pytest.raises(PosenetError, match=f"out.h5: field {message}"):
        h5format.write_dataset(tmp_path / "out.h5", _with_row(sample_fields(), name, 2, value))
    assert not list(tmp_path.iterdir())


def test_rows_without_a_face_may_hold_zero_labels(tmp_path):
    """Localizer frames without a face carry zero boxes and the identity or zero quaternion."""
    fields = sample_fields()
    fields["hasface"] = np.array([True, False, True])
    fields = _with_row(_with_row(fields, "rois", 1, 0.0), "quats", 1, 0.0)
    path = h5format.write_dataset(tmp_path / "d.h5", fields)
    assert len(h5format.read_dataset(path, names=["rois", "quats"])) == 3


def test_images_stored_as_a_group_is_one_clear_error(tmp_path):
    path = tmp_path / "group.h5"
    with h5py.File(path, "w") as f:
        f.create_group("images")
        f.create_dataset("quats", data=np.zeros((3, 4)))
    with pytest.raises(PosenetError, match="group.h5: 'images' is not a 1-D dataset"):
        h5format.read_dataset(path)


def test_damaged_metadata_is_one_clear_error(tmp_path):
    """Bytes of the object headers overwritten: h5py raises KeyError, RuntimeError or OSError
    depending on where; every case is one PosenetError naming the file."""
    whole = h5format.write_dataset(tmp_path / "d.h5", sample_fields()).read_bytes()
    rng = np.random.default_rng(0)
    for trial in range(40):
        damaged = bytearray(whole)
        start = int(rng.integers(0, 4000))
        damaged[start:start + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        path = tmp_path / f"damaged{trial}.h5"
        path.write_bytes(bytes(damaged))
        try:
            h5format.read_dataset(path)
        except PosenetError as error:
            assert f"damaged{trial}.h5" in str(error) and "\n" not in str(error)
