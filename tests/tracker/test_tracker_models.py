"""Tracker nets, their data (exact labels under mirror/rotation/jitter) and their losses."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import multivariate_normal
from tracker_fixtures import IMAGE_SIZE, dot_image, face_file, face_labels, random_pose, scene_file

from posenet.core import geometry, h5format, transforms
from posenet.tracker import contract
from posenet.tracker import data as tracker_data
from posenet.tracker.nets.localizer import build_localizer
from posenet.tracker.nets.pose_net import build_pose_net
from posenet.tracker.train import localizer_loss_terms, pose_loss_terms, quat_to_rotvec, tril_nll
from posenet.training.registry import ModelConfig

# --- models -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pose_net():
    return build_pose_net(ModelConfig())


def test_pose_net_outputs(pose_net):
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 129, 129, 1)).astype(np.float32)
    out = {k: np.asarray(v) for k, v in pose_net(x).items()}
    assert out["quat"].shape == (3, 4) and out["pos_size"].shape == (3, 3) and out["box"].shape == (3, 4)
    assert out["keypoints"].shape == (3, 68, 3)
    np.testing.assert_allclose(np.linalg.norm(out["quat"], axis=-1), 1.0, atol=1e-5)
    assert np.all(out["quat"][:, 3] >= 0)
    for name in ("rotaxis_scales_tril", "pos_size_scales_tril"):
        tril = out[name]
        assert tril.shape == (3, 3, 3)
        assert np.all(np.triu(tril, k=1) == 0) and np.all(np.diagonal(tril, axis1=1, axis2=2) > 0)


def test_localizer_output():
    net = build_localizer(ModelConfig())
    assert net.input_shape == (None, 224, 288, 1)
    assert net(np.zeros((2, 224, 288, 1), np.float32))["logit_box"].shape == (2, 5)


# --- preprocessing ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape, high", [((129, 129), 60), ((129, 129), 256), ((10, 10), 30), ((7, 13), 200)])
def test_brightness_twins_agree(shape, high):
    gray = np.random.default_rng(1).integers(0, high, (3, *shape)).astype(np.uint8)
    twin = tracker_data.normalize_brightness_tf(tf.constant(gray[..., None])).numpy()[..., 0]
    np.testing.assert_allclose(twin, contract.normalize_brightness(gray), atol=1e-6)


# --- exact labels ---------------------------------------------------------------------------

def test_mirror_labels_are_the_mirrored_pose():
    quat, translation, camera = random_pose(np.random.default_rng(2))
    labels = face_labels(quat, translation, camera)
    mirrored, _ = transforms.mirror_sample(labels, np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8))
    mirror_camera = camera.copy()
    mirror_camera[2] = IMAGE_SIZE - camera[2]
    expected = face_labels(geometry.mirror_quat(quat), translation * [-1, 1, 1], mirror_camera)
    for name in expected:
        np.testing.assert_allclose(mirrored[name], expected[name], atol=1e-9, err_msg=name)


def test_rotation_about_the_principal_point_is_a_camera_roll():
    quat, translation, camera = random_pose(np.random.default_rng(3))
    labels = face_labels(quat, translation, camera)
    angle = np.radians(23.0)
    rotated, _ = transforms.rotate_sample(labels, np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8), angle, camera[2:])
    roll = geometry.rotvec_to_matrix(np.array([0.0, 0.0, angle]))
    expected = face_labels(geometry.rotate_quat_inplane(quat, angle), roll @ translation, camera)
    for name in ("quats", "coords", "pt3d_68"):
        np.testing.assert_allclose(rotated[name], expected[name], atol=1e-9, err_msg=name)


def test_augmented_patches_show_the_landmarks_where_the_labels_say():
    rng = np.random.default_rng(4)
    config = tracker_data.TrackerDataConfig(photometric=False, rotation_deg=40.0, shift=0.1, scale=0.15)
    for _ in range(6):
        labels = face_labels(*random_pose(rng))
        patch, targets = tracker_data.pose_sample(dot_image(labels), labels, config, rng)
        pixels = (targets["keypoints"][:, :2] + 1.0) * patch.shape[0] / 2.0 - 0.5  # patch units -> pixel index
        inside = targets["keypoint_weights"] > 0
        values = cv2.remap(patch, pixels[inside, 0].astype(np.float32)[None], pixels[inside, 1].astype(np.float32)[None],
                           cv2.INTER_LINEAR)
        assert inside.sum() > 20 and np.median(values) > 200  # on the discs, not the dark background
        np.testing.assert_allclose(np.linalg.norm(targets["quat"]), 1.0)


def test_pose_targets_in_patch_units():
    labels = {"quats": np.array([0, 0, 0, 1.0]), "coords": np.array([110.0, 90.0, 30.0]),
              "rois": np.array([80.0, 60.0, 140.0, 100.0]), "pt3d_68": np.zeros((68, 3))}
    targets = tracker_data.pose_targets(labels, labels["rois"])  # patch: centre (110, 80), side 63
    half = 63 / 2
    np.testing.assert_allclose(targets["pos_size"], [0.0, 10 / half, 30 / half])
    np.testing.assert_allclose(targets["box"], [-30 / half, -20 / half, 30 / half, 20 / half])


# --- datasets ----------------------------------------------------------------------------------

def test_pose_dataset_batches_are_seeded(tmp_path):
    path = face_file(tmp_path / "faces.h5", 8)
    config = tracker_data.TrackerDataConfig(batch_size=4, seed=5)
    first = next(iter(tracker_data.pose_dataset(path, config, training=True)))
    again = next(iter(tracker_data.pose_dataset(path, config, training=True)))
    x, y = first
    assert x.shape == (4, 129, 129, 1) and x.dtype == tf.float32
    assert set(y) == set(tracker_data.POSE_TARGETS)
    np.testing.assert_array_equal(x.numpy(), again[0].numpy())
    plain_x, plain_y = next(iter(tracker_data.pose_dataset(path, config, training=False)))
    # exact face box: the patch is the box plus Opentrack's 5 % margin (side truncated to pixels)
    np.testing.assert_allclose(plain_y["box"][:, :2].numpy().min(), -1.0 / contract.PATCH_SCALE, atol=0.02)


def test_localizer_dataset_targets(tmp_path):
    path = scene_file(tmp_path / "scenes.h5", 6)
    dataset = h5format.read_dataset(path)
    config = tracker_data.TrackerDataConfig(batch_size=6, photometric=False)
    for training in (False, True):
        frames, targets = next(iter(tracker_data.localizer_dataset(path, config, training=training)))
        targets = targets["logit_box"].numpy()
        if not training:
            np.testing.assert_array_equal(targets[:, 0], dataset["hasface"])
        for frame, target in zip(frames.numpy()[..., 0], targets):
            if not target[0]:
                np.testing.assert_array_equal(target, 0.0)
                continue
            x0, y0, x1, y1 = contract.frame_to_image(target[1:], 288, 224)
            cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
            assert frame[cy, cx] > 0.3 and frame[int(y0) + 2, int(x0) + 2] > 0.3  # the bright box is where the label says
            if y0 > 4:
                assert frame[int(y0) - 3, cx] < 0.0  # and the frame just above it is dark


def test_a_file_without_pose_fields_is_refused(tmp_path):
    from posenet.core.errors import PosenetError

    path = scene_file(tmp_path / "scenes.h5", 3)
    with pytest.raises(PosenetError, match="scenes.h5: field 'quats' is missing"):
        tracker_data.pose_dataset(path, tracker_data.TrackerDataConfig(), training=True)


# --- losses --------------------------------------------------------------------------------------

def test_quat_loss_is_sign_invariant_and_geodesic():
    q = geometry.aflw_to_quat(np.radians([[10.0, 20.0, 5.0]])).astype(np.float32)
    turned = geometry.quat_multiply(q, geometry.rotvec_to_quat([0.3, 0.0, 0.0])).astype(np.float32)
    y = {"quat": q, "pos_size": np.zeros((1, 3), np.float32), "box": np.zeros((1, 4), np.float32),
         "keypoints": np.zeros((1, 68, 3), np.float32), "keypoint_weights": np.ones((1, 68), np.float32)}
    eye = np.eye(3, dtype=np.float32)[None]
    pred = {**y, "rotaxis_scales_tril": eye, "pos_size_scales_tril": eye}
    assert float(pose_loss_terms(y, {**pred, "quat": -q})["quat"]) == pytest.approx(0.0, abs=1e-3)
    assert float(pose_loss_terms(y, {**pred, "quat": turned})["quat"]) == pytest.approx(0.3, abs=1e-5)


def test_tril_nll_is_the_gaussian_log_likelihood():
    rng = np.random.default_rng(6)
    tril = np.tril(rng.normal(size=(4, 3, 3))) + 2 * np.eye(3)
    tril[:, range(3), range(3)] = np.abs(tril[:, range(3), range(3)])
    residual = rng.normal(size=(4, 3))
    ours = np.asarray(tril_nll(residual.astype(np.float32), tril.astype(np.float32)))
    exact = [-multivariate_normal(np.zeros(3), t @ t.T).logpdf(r) - 1.5 * np.log(2 * np.pi) for r, t in zip(residual, tril)]
    np.testing.assert_allclose(ours, exact, rtol=1e-4)


def test_rotvec_of_quat_matches_geometry():
    rotvec = np.array([[0.3, -0.2, 0.1], [0.0, 0.0, 0.0], [2.9, 0.5, -0.4]])
    quats = geometry.rotvec_to_quat(rotvec)
    np.testing.assert_allclose(np.asarray(quat_to_rotvec(quats.astype(np.float32))), rotvec, atol=1e-5)
    np.testing.assert_allclose(np.asarray(quat_to_rotvec(-quats.astype(np.float32))), rotvec, atol=1e-5)


def test_localizer_loss_counts_boxes_of_faces_only():
    y = {"logit_box": np.array([[1, 0, 0, 0.5, 0.5], [0, 0, 0, 0, 0]], np.float32)}
    pred = {"logit_box": np.array([[5, 0, 0, 0.5, 0.5], [-5, 1, 1, 1, 1]], np.float32)}
    terms = localizer_loss_terms(y, pred)
    assert float(terms["box"]) == 0.0 and float(terms["face_accuracy"]) == 1.0
    assert float(terms["bce"]) == pytest.approx(np.log1p(np.exp(-5.0)), rel=1e-4)
