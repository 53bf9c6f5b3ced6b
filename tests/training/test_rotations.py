"""The keras.ops rotations agree with their numpy/scipy twins in posenet.core.geometry."""

from __future__ import annotations

import numpy as np
import pytest

from posenet.core import geometry
from posenet.training import rotations


@pytest.fixture
def quats():
    rng = np.random.default_rng(0)
    q = geometry.canonical_quat(rng.normal(size=(64, 4)) / 1.0)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    tiny = geometry.rotvec_to_quat(np.array([[1e-9, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, np.pi - 1e-6, 0.0]]))
    return np.concatenate([q, tiny])


def test_quat_to_rotvec_matches_geometry_including_zero_and_pi(quats):
    np.testing.assert_allclose(np.asarray(rotations.quat_to_rotvec(quats)), geometry.quat_to_rotvec(quats), atol=1e-7)
    np.testing.assert_allclose(np.asarray(rotations.quat_to_rotvec(-quats)), geometry.quat_to_rotvec(quats), atol=1e-7)


def test_rotvec_to_quat_matches_geometry(quats):
    rotvecs = geometry.quat_to_rotvec(quats)
    np.testing.assert_allclose(np.asarray(rotations.rotvec_to_quat(rotvecs)), geometry.rotvec_to_quat(rotvecs), atol=1e-7)


def test_geodesic_angle_matches_geometry(quats):
    other = np.roll(quats, 1, axis=0)
    expected = geometry.geodesic_rad(quats, other)
    got = np.asarray(rotations.geodesic_angle(geometry.quat_to_rotvec(quats), geometry.quat_to_rotvec(other)))
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_relative_quat_and_conjugate_compose_to_identity(quats):
    relative = np.asarray(rotations.relative_quat(quats, quats))
    np.testing.assert_allclose(np.abs(relative[:, 3]), 1.0, atol=1e-9)
    np.testing.assert_allclose(np.asarray(rotations.conjugate(quats))[:, :3], -quats[:, :3])


def test_six_d_to_matrix_recovers_a_rotations_first_two_columns(quats):
    matrices = geometry.quat_to_matrix(quats)
    six_d = np.concatenate([matrices[..., :, 0], matrices[..., :, 1]], axis=-1) * 3.0  # any scale
    np.testing.assert_allclose(np.asarray(rotations.six_d_to_matrix(six_d)), matrices, atol=1e-6)


def test_matrix_angle_matches_geometry(quats):
    other = np.roll(quats, 1, axis=0)
    got = np.asarray(rotations.matrix_angle(geometry.quat_to_matrix(quats), geometry.quat_to_matrix(other)))
    np.testing.assert_allclose(got, geometry.geodesic_rad(quats, other), atol=1e-6)
