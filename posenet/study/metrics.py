"""Study metrics: Keras metrics on rotation-vector batches, logged to TensorBoard every epoch.

Geodesic error, accuracy@10deg and yaw/pitch/roll MAE in the AFLW Euler convention, computed
in TF; what evaluation reports is `posenet.core.evaluation` (numpy, on quaternions), and the
tests check that both sides agree.

"Accuracy" is accuracy@10deg: the share of samples whose geodesic error is under 10 degrees.
The original study's Keras `accuracy` (an argmax over three regression outputs) measured
nothing and is not reported.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from posenet.core.evaluation import ACC_THRESHOLD_DEG, AXES
from posenet.training.rotations import geodesic_angle, rotvec_to_quat

# --- TF side: per-sample functions and Keras metrics ---------------------------------------

def geodesic_error_deg(y_true, y_pred):
    return geodesic_angle(y_true, y_pred) * (180.0 / math.pi)


def aflw_ypr(rotvec):
    """Rotation vectors (..., 3) -> AFLW (yaw, pitch, roll) radians (..., 3), as geometry.ypr_deg.

    R = R_XYZ(-pitch, yaw, roll), intrinsic XYZ: with R = Rx(a) Ry(b) Rz(c),
    a = atan2(-R12, R22), b = atan2(R02, hypot(R12, R22)), c = atan2(-R01, R00).
    """
    x, y, z, w = ops.unstack(rotvec_to_quat(rotvec), 4, axis=-1)
    r00 = 1.0 - 2.0 * (y * y + z * z)
    r01 = 2.0 * (x * y - z * w)
    r02 = 2.0 * (x * z + y * w)
    r12 = 2.0 * (y * z - x * w)
    r22 = 1.0 - 2.0 * (x * x + y * y)
    a = ops.arctan2(-r12, r22)
    b = ops.arctan2(r02, ops.sqrt(r12 * r12 + r22 * r22))
    c = ops.arctan2(-r01, r00)
    return ops.stack([b, -a, c], axis=-1)


def euler_errors(y_true, y_pred):
    """Wrap-safe absolute (yaw, pitch, roll) errors in degrees, (..., 3)."""
    diff = aflw_ypr(y_pred) - aflw_ypr(y_true)
    return ops.abs(ops.arctan2(ops.sin(diff), ops.cos(diff))) * (180.0 / math.pi)


@keras.saving.register_keras_serializable(package="posenet")
class GeodesicErrorDeg(keras.metrics.MeanMetricWrapper):
    """Mean geodesic error in degrees."""

    def __init__(self, name: str = "geodesic_deg", dtype=None):
        super().__init__(geodesic_error_deg, name=name, dtype=dtype)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="posenet")
class AccuracyAtDeg(keras.metrics.MeanMetricWrapper):
    """Share of samples with geodesic error under `threshold` degrees."""

    def __init__(self, threshold: float = ACC_THRESHOLD_DEG, name: str | None = None, dtype=None):
        self.threshold = float(threshold)
        within = lambda y_true, y_pred: ops.cast(geodesic_error_deg(y_true, y_pred) < self.threshold, "float32")
        super().__init__(within, name=name or f"acc{self.threshold:g}", dtype=dtype)

    def get_config(self) -> dict:
        return {"threshold": self.threshold, "name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="posenet")
class EulerMAE(keras.metrics.MeanMetricWrapper):
    """Mean absolute error in degrees of one AFLW Euler angle ("yaw", "pitch" or "roll")."""

    def __init__(self, axis: str = "yaw", name: str | None = None, dtype=None):
        self.axis = axis
        index = AXES.index(axis)
        error = lambda y_true, y_pred: euler_errors(y_true, y_pred)[..., index]
        super().__init__(error, name=name or f"mae_{axis}", dtype=dtype)

    def get_config(self) -> dict:
        return {"axis": self.axis, "name": self.name, "dtype": self.dtype}


def study_metrics() -> list[keras.metrics.Metric]:
    """The metrics every study run logs: geodesic_deg, acc10, mae_yaw, mae_pitch, mae_roll."""
    return [GeodesicErrorDeg(), AccuracyAtDeg(ACC_THRESHOLD_DEG), *(EulerMAE(axis) for axis in AXES)]
