"""Losses on rotation vectors (keras.ops, any backend): MSE and a stable geodesic loss.

The geodesic loss is the angle (radians) of the relative rotation R_true^T R_pred. The
naive form acos((trace - 1) / 2) has an infinite gradient at 0 and at pi and turns NaN when
rounding pushes its argument past 1; the original study's loss did exactly that. Here both
rotation vectors become unit quaternions (with a Taylor branch near the zero vector), the
relative quaternion is formed explicitly, and the angle is 2 atan2(|v|, |w|) with a smoothed
norm, so value and gradient stay finite at 0, near pi and for zero vectors.

The angle alone is periodic in the predicted vector's length: a net whose outputs grow past
|v| = pi (one Adam step on the wide Flatten -> Dense(3) layer can move them by radians) finds
only flat, oscillating ground there and never comes back. The loss therefore adds
(|v| - pi)^2 outside the principal ball, and equals the geodesic angle inside it, where
rotation vectors and rotations correspond one to one.
"""

from __future__ import annotations

import math

import keras
from keras import ops

SMALL_ANGLE_SQ = 1e-6  # below this squared angle (rad^2) use the Taylor series of sin(t/2)/t
NORM_EPS = 1e-7  # smooths |v| at v = 0: sqrt(|v|^2 + eps^2) - eps, exact to 1e-7 rad


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


def principal_ball_penalty(rotvec):
    """(|v| - pi)^2 for rotation vectors longer than pi, else 0; smooth at v = 0."""
    norm = ops.sqrt(ops.sum(ops.square(rotvec), axis=-1) + NORM_EPS**2)
    return ops.square(ops.relu(norm - math.pi))


@keras.saving.register_keras_serializable(package="posenet")
def rotvec_mse(y_true, y_pred):
    """Mean squared error over the three rotation-vector components (the original's loss)."""
    return ops.mean(ops.square(y_pred - y_true), axis=-1)


@keras.saving.register_keras_serializable(package="posenet")
def geodesic_loss(y_true, y_pred):
    """Geodesic angle (radians) between target and prediction, plus the principal-ball penalty."""
    return geodesic_angle(y_true, y_pred) + principal_ball_penalty(y_pred)


LOSSES = {"mse": rotvec_mse, "geodesic": geodesic_loss}
