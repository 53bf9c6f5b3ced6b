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

from posenet.training import rotations
from posenet.training.rotations import geodesic_angle

NORM_EPS = rotations.NORM_EPS


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
