"""The 68-point face model: shape, symmetry and the iBUG flip permutation."""

from __future__ import annotations

import numpy as np

from posenet.core.facemodel import FLIP_PERMUTATION_68, HEAD_CENTER, HEAD_SIZE_MM, LANDMARKS_68, mirror_landmarks


def test_shapes_and_types():
    assert LANDMARKS_68.shape == (68, 3) and LANDMARKS_68.dtype == np.float64
    assert FLIP_PERMUTATION_68.shape == (68,) and FLIP_PERMUTATION_68.dtype.kind == "i"
    assert np.isfinite(LANDMARKS_68).all()
    assert HEAD_CENTER.shape == (3,) and HEAD_SIZE_MM == 100.0


def test_flip_permutation_is_an_involution():
    assert sorted(FLIP_PERMUTATION_68.tolist()) == list(range(68))
    np.testing.assert_array_equal(FLIP_PERMUTATION_68[FLIP_PERMUTATION_68], np.arange(68))


def test_flip_permutation_known_pairs():
    pairs = {0: 16, 8: 8, 17: 26, 21: 22, 27: 27, 30: 30, 31: 35, 33: 33,
             36: 45, 39: 42, 37: 44, 41: 46, 48: 54, 51: 51, 57: 57, 60: 64, 62: 62, 66: 66}
    for a, b in pairs.items():
        assert FLIP_PERMUTATION_68[a] == b and FLIP_PERMUTATION_68[b] == a


def test_model_is_mirror_symmetric():
    np.testing.assert_allclose(mirror_landmarks(LANDMARKS_68), LANDMARKS_68, atol=1e-12)
    midline = FLIP_PERMUTATION_68 == np.arange(68)
    np.testing.assert_allclose(LANDMARKS_68[midline, 0], 0.0)


def test_frame_and_proportions():
    x, y, z = LANDMARKS_68.T
    assert np.argmin(z) == 30  # the nose tip is closest to the camera (face looks toward -z)
    assert 90.0 <= -z[30] <= 100.0  # head centre 9-10 cm behind the nose tip
    assert x[0] < 0 < x[16] and x[36] < x[39] < x[42] < x[45]  # image-left points first
    assert y[19] < y[37] < y[30] < y[51] < y[8]  # brows above eyes above nose above mouth above chin
    assert 130.0 <= x[16] - x[0] <= 150.0
    assert 85.0 <= x[45] - x[36] <= 95.0
