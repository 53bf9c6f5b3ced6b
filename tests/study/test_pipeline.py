"""The tf.data input pipeline: crops, letterbox, exact augmentation labels, determinism."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posenet.core import geometry, h5format
from posenet.core.errors import PosenetError
from posenet.study import pipeline

SIZE = 48


def _textured(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random RGB image: no symmetry, so flips and rotations are visible."""
    return cv2.GaussianBlur(rng.integers(0, 255, (height, width, 3), np.uint8), (7, 7), 0)


@pytest.fixture(scope="module")
def sample_set() -> h5format.Dataset:
    """Twelve lossless textured images with varied boxes and random poses."""
    rng = np.random.default_rng(0)
    count = 12
    images = [h5format.encode_image(_textured(rng, 120, 160), lossy=False) for _ in range(count)]
    rois = np.tile([[30.0, 20.0, 110.0, 100.0]], (count, 1))
    rois[:, 2] += np.arange(count) * 3.0
    quats = geometry.rotvec_to_quat(rng.normal(0.0, 0.6, (count, 3)))
    return h5format.Dataset({"images": images, "rois": rois, "quats": quats})


def _config(**changes) -> pipeline.PipelineConfig:
    base = dict(input_size=SIZE, normalization="unit", batch_size=4, shuffle=False)
    return pipeline.PipelineConfig(**{**base, **changes})


def _all(dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def _plain_crops(sample_set, config) -> np.ndarray:
    return np.stack([pipeline.preprocess_numpy(sample_set.image(i), sample_set["rois"][i], config)
                     for i in range(len(sample_set))])


def test_shapes_and_labels_match_numpy_twin(sample_set):
    config = _config()
    images, labels = _all(pipeline.make_dataset(sample_set, config, training=False))
    assert images.shape == (12, SIZE, SIZE, 3) and images.dtype == np.float32
    assert labels.shape == (12, 3)
    np.testing.assert_allclose(labels, geometry.quat_to_rotvec(sample_set["quats"]), atol=1e-6)
    np.testing.assert_allclose(images, _plain_crops(sample_set, config), atol=2e-2)


def test_resnet_normalisation_is_caffe_style(sample_set):
    config = _config(normalization="resnet")
    images, _ = _all(pipeline.make_dataset(sample_set, config, training=False))
    crop, _ = pipeline.crop_letterbox(sample_set.image(0), sample_set["rois"][0], SIZE, config.margin)
    expected = crop[..., ::-1].astype(np.float32) - np.array([103.939, 116.779, 123.68], np.float32)
    np.testing.assert_allclose(images[0], expected, atol=3.0)


def test_letterbox_keeps_aspect_with_zero_padding():
    image = np.full((100, 200, 3), 200, np.uint8)
    roi = np.array([50.0, 40.0, 150.0, 60.0])  # 100 x 20 box: wide
    crop, affine = pipeline.crop_letterbox(image, roi, 64, margin=0.0)
    # the box maps to the full width, centred vertically, with its aspect ratio
    corners = geometry.apply_affine(np.array([[50.0, 40.0], [150.0, 60.0]]), affine)
    np.testing.assert_allclose(corners, [[0.0, 25.6], [64.0, 38.4]], atol=1e-9)
    assert np.all(crop[:24] == 0) and np.all(crop[40:] == 0)  # zero bands above and below
    assert np.all(crop[27:37] == 200)


def test_flip_mirrors_image_and_label_exactly(sample_set):
    config = _config(augment=True, rotation_deg=0.0, photometric=False, batch_size=12)
    images, labels = _all(pipeline.make_dataset(sample_set, config, training=True))
    plain = _plain_crops(sample_set, config)
    rotvecs = geometry.quat_to_rotvec(sample_set["quats"])
    flipped = 0
    for image, label, crop, rotvec in zip(images, labels, plain, rotvecs):
        if np.abs(image - crop[:, ::-1]).max() < 2e-2:
            np.testing.assert_allclose(label, geometry.mirror_rotvec(rotvec), atol=1e-5)
            flipped += 1
        else:
            np.testing.assert_allclose(image, crop, atol=2e-2)
            np.testing.assert_allclose(label, rotvec, atol=1e-5)
    assert 0 < flipped < len(images)


def test_inplane_rotation_label_matches_rotated_image(sample_set):
    config = _config(augment=True, rotation_deg=25.0, flip=False, photometric=False, batch_size=12)
    images, labels = _all(pipeline.make_dataset(sample_set, config, training=True))
    plain = _plain_crops(sample_set, config)
    for image, label, crop, quat in zip(images, labels, plain, sample_set["quats"]):
        relative = geometry.quat_multiply(geometry.rotvec_to_quat(label), quat * [-1, -1, -1, 1])
        axis_angle = geometry.quat_to_rotvec(relative)
        np.testing.assert_allclose(axis_angle[:2], 0.0, atol=1e-5)  # a pure Rz on the left
        angle = axis_angle[2]
        assert abs(angle) <= np.radians(25.0) + 1e-6
        np.testing.assert_allclose(label, geometry.quat_to_rotvec(geometry.rotate_quat_inplane(quat, angle)), atol=1e-5)
        affine = geometry.inplane_affine((SIZE / 2.0, SIZE / 2.0), angle)
        affine[:, 2] += 0.5 * affine[:, :2].sum(axis=1) - 0.5  # edge -> pixel-centre coordinates
        expected = cv2.warpAffine(crop, affine, (SIZE, SIZE))
        inner = slice(14, SIZE - 14)  # away from the corners that rotate in from outside
        assert np.abs(image[inner, inner] - expected[inner, inner]).mean() < 0.02


def test_photometric_keeps_padding_at_zero():
    image = np.full((100, 200, 3), 120, np.uint8)
    data = h5format.Dataset({"images": [h5format.encode_image(image, lossy=False)] * 4,
                             "rois": np.tile([[50.0, 40.0, 150.0, 60.0]], (4, 1)),
                             "quats": np.tile([[0.0, 0.0, 0.0, 1.0]], (4, 1))})
    config = _config(augment=True, rotation_deg=0.0, flip=False, photometric=True, margin=0.0)
    images, _ = _all(pipeline.make_dataset(data, config, training=True))
    assert np.all(images[:, :19] == 0.0) and np.all(images[:, 29:] == 0.0)  # box rows 19.2..28.8
    assert np.all(images[:, 20:28] > 0) and images[:, 20:28].std() > 0  # the face area did change


def test_same_seed_same_batches_and_reshuffled_each_epoch(sample_set):
    config = _config(augment=True, shuffle=True, seed=3)
    first = pipeline.make_dataset(sample_set, config, training=True)
    epoch1, labels1 = _all(first)
    epoch2, labels2 = _all(first)
    again1, again_labels1 = _all(pipeline.make_dataset(sample_set, config, training=True))
    np.testing.assert_array_equal(epoch1, again1)
    np.testing.assert_array_equal(labels1, again_labels1)
    assert not np.allclose(labels1, labels2)  # another order (and other augmentations) next epoch
    other, _ = _all(pipeline.make_dataset(sample_set, pipeline.PipelineConfig(
        **{**config.__dict__, "seed": 4}), training=True))
    assert not np.array_equal(epoch1, other)


def test_evaluation_order_is_file_order(sample_set):
    config = _config(shuffle=True, augment=True)
    _, labels = _all(pipeline.make_dataset(sample_set, config, training=False))
    np.testing.assert_allclose(labels, geometry.quat_to_rotvec(sample_set["quats"]), atol=1e-6)


def test_bad_inputs_give_one_clear_line(tmp_path):
    with pytest.raises(PosenetError, match="no such dataset file"):
        pipeline.make_dataset(tmp_path / "missing.h5", _config(), training=True)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not hdf5")
    with pytest.raises(PosenetError, match="broken.h5"):
        pipeline.make_dataset(broken, _config(), training=True)
    with pytest.raises(PosenetError, match="normalization"):
        _config(normalization="imagenet")


def test_dlib_boxes_fall_back_to_file_box_and_count_misses(sample_set):
    pytest.importorskip("dlib")
    rois, sources = pipeline.detect_boxes(sample_set.subset(range(3)))
    assert sources == {"hog": 0, "haar": 0, "roi": 3, "none": 0}  # no faces in noise images: the file's boxes
    np.testing.assert_array_equal(rois, sample_set["rois"][:3])


def test_dlib_box_sources_report_haar_rescues_of_hog_misses(sample_set, monkeypatch):
    from baselines import detect

    sources = iter(["hog", "haar", "roi", "haar", "hog"])
    monkeypatch.setattr(detect, "fallback_box", lambda image, roi: (np.asarray(roi) + 1.0, next(sources)))
    rois, counts = pipeline.detect_boxes(sample_set.subset(range(5)))
    assert counts == {"hog": 2, "haar": 2, "roi": 1, "none": 0}
    np.testing.assert_array_equal(rois, sample_set["rois"][:5] + 1.0)
    assert pipeline.describe_sources(counts, 5) == (
        "dlib HOG missed 3 of 5 faces: OpenCV Haar found 2, the file's box used for 1")


def test_content_key_covers_whole_image_buffers(sample_set):
    first = sample_set.subset(range(2))
    changed = sample_set.subset(range(2))
    buffer = np.array(changed["images"][1], np.uint8, copy=True)
    buffer[-20] ^= 0xFF  # past any header: same rois, same first bytes, another image
    changed.fields["images"][1] = buffer
    assert pipeline._content_key(first) != pipeline._content_key(changed)
    assert pipeline._content_key(first) == pipeline._content_key(sample_set.subset(range(2)))


def test_dlib_boxes_are_detected_once_per_dataset(sample_set, monkeypatch, capsys):
    calls = []

    def fake_detect(dataset):
        calls.append(len(dataset))
        return np.asarray(dataset["rois"], np.float64) + 1.0, {"hog": len(dataset) - 3, "haar": 1, "roi": 2}

    monkeypatch.setattr(pipeline, "detect_boxes", fake_detect)
    monkeypatch.setattr(pipeline, "_DLIB_BOXES", {})
    config = _config(boxes="dlib")
    first = pipeline.face_boxes(sample_set, config)
    again = pipeline.face_boxes(sample_set, config)
    part = pipeline.face_boxes(sample_set.subset(range(4)), config)  # another content: detected again
    assert calls == [12, 4]
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(part, sample_set["rois"][:4] + 1.0)
    assert "dlib HOG missed 3 of 12 faces: OpenCV Haar found 1, the file's box used for 2" in capsys.readouterr().out
