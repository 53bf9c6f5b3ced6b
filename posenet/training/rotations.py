"""Rotations in keras.ops (any backend, differentiable): the twins of `posenet.core.geometry`.

Losses and metrics of both wings use these; `tests/training/test_rotations.py` checks each
against its numpy/scipy counterpart in geometry. Quaternions are (x, y, z, w), as everywhere.
"""

from __future__ import annotations

from keras import ops

SMALL_ANGLE_SQ = 1e-6  # below this squared angle (rad^2) use the Taylor series of sin(t/2)/t
NORM_EPS = 1e-7  # smooths |v| at v = 0: sqrt(|v|^2 + eps^2) - eps, exact to 1e-7 rad
SMALL_NORM = 1e-8  # |q.xyz| below this: the zero rotation's series
GRAM_SCHMIDT_EPS = 1e-8  # keeps the 6D normalisation finite for a zero column
QUAT_EPS_SQ = 1e-12  # keeps a raw quaternion output's normalisation finite at zero


def rotvec_to_quat(rotvec):
    """Rotation vectors (..., 3) -> unit quaternions (..., 4), (x, y, z, w), differentiable at 0."""
    angle_sq = ops.sum(ops.square(rotvec), axis=-1, keepdims=True)
    small = angle_sq < SMALL_ANGLE_SQ
    angle = ops.sqrt(ops.where(small, ops.ones_like(angle_sq), angle_sq))  # no sqrt(0) in any branch
    half = 0.5 * angle
    scale = ops.where(small, 0.5 - angle_sq / 48.0, ops.sin(half) / angle)
    w = ops.where(small, 1.0 - angle_sq / 8.0, ops.cos(half))
    return ops.concatenate([rotvec * scale, w], axis=-1)


def relative_quat(q_true, q_pred):
    """conj(q_true) * q_pred: the rotation R_true^T R_pred, for unit quaternions (..., 4)."""
    v_true, w_true = q_true[..., :3], q_true[..., 3:]
    v_pred, w_pred = q_pred[..., :3], q_pred[..., 3:]
    w = w_true * w_pred + ops.sum(v_true * v_pred, axis=-1, keepdims=True)
    v = w_true * v_pred - w_pred * v_true - ops.cross(v_true, v_pred)
    return ops.concatenate([v, w], axis=-1)


def quat_angle(q):
    """Rotation angle in [0, pi] of quaternions (..., 4) via atan2; finite gradient everywhere."""
    norm_sq = ops.sum(ops.square(q[..., :3]), axis=-1)
    norm = ops.sqrt(norm_sq + NORM_EPS**2) - NORM_EPS
    return 2.0 * ops.arctan2(norm, ops.abs(q[..., 3]))


def geodesic_angle(rotvec_true, rotvec_pred):
    """Per-sample geodesic angle (radians) between two batches of rotation vectors."""
    return quat_angle(relative_quat(rotvec_to_quat(rotvec_true), rotvec_to_quat(rotvec_pred)))


def normalize_quat(q):
    """Any 4-vectors (..., 4) -> unit quaternions; QUAT_EPS_SQ keeps a zero vector finite."""
    return q / ops.sqrt(ops.sum(ops.square(q), axis=-1, keepdims=True) + QUAT_EPS_SQ)


def conjugate(q):
    """The inverse rotation of unit quaternions (..., 4)."""
    return q * ops.convert_to_tensor([-1.0, -1.0, -1.0, 1.0], dtype=q.dtype)


def quat_to_rotvec(q):
    """Unit quaternions (..., 4) -> rotation vectors (..., 3): shortest arc (w >= 0), angle by
    atan2 of the half angle (stable at 0 and pi), the series 2 / w near the zero rotation."""
    q = ops.where(q[..., 3:4] < 0.0, -q, q)
    vector, w = q[..., :3], q[..., 3:4]
    norm = ops.sqrt(ops.sum(ops.square(vector), axis=-1, keepdims=True))
    small = norm < SMALL_NORM
    angle = 2.0 * ops.arctan2(norm, w)
    scale = ops.where(small, 2.0 / ops.maximum(w, SMALL_NORM), angle / ops.where(small, ops.ones_like(norm), norm))
    return vector * scale


def six_d_to_matrix(v):
    """The continuous 6D rotation representation (..., 6) -> rotation matrices (..., 3, 3):
    the first two columns, made orthonormal by Gram-Schmidt (Zhou et al. 2019)."""
    a, b = v[..., :3], v[..., 3:]
    c1 = a / ops.sqrt(ops.sum(a * a, axis=-1, keepdims=True) + GRAM_SCHMIDT_EPS)
    b = b - ops.sum(c1 * b, axis=-1, keepdims=True) * c1
    c2 = b / ops.sqrt(ops.sum(b * b, axis=-1, keepdims=True) + GRAM_SCHMIDT_EPS)
    return ops.stack([c1, c2, ops.cross(c1, c2)], axis=-1)


def matrix_angle(r_true, r_pred):
    """Angle (radians) of R_true^T R_pred for batches of rotation matrices, by atan2 of its
    sine (half the skew part's norm) and cosine: finite gradient at 0 and near pi."""
    relative = ops.einsum("...ji,...jk->...ik", r_true, r_pred)
    cos = (relative[..., 0, 0] + relative[..., 1, 1] + relative[..., 2, 2] - 1.0) / 2.0
    skew = ops.stack([relative[..., 2, 1] - relative[..., 1, 2], relative[..., 0, 2] - relative[..., 2, 0],
                      relative[..., 1, 0] - relative[..., 0, 1]], axis=-1) / 2.0
    sin = ops.sqrt(ops.sum(skew * skew, axis=-1) + NORM_EPS**2) - NORM_EPS
    return ops.arctan2(sin, cos)
