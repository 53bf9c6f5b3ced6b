"""Losses and metrics: stable geodesic loss, and TF metrics that agree with posenet.core.geometry."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from posenet.core import geometry
from posenet.core.evaluation import SUMMARY_KEYS, per_sample_errors, summarize
from posenet.study.losses import LOSSES, geodesic_loss, rotvec_mse
from posenet.study.metrics import AccuracyAtDeg, EulerMAE, GeodesicErrorDeg


def random_rotvecs(n: int, seed: int, max_angle: float = np.pi) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes * rng.uniform(0, max_angle, size=(n, 1))


def loss_and_grad(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = tf.constant(y_true, tf.float32)
    y_pred = tf.Variable(np.asarray(y_pred, np.float32))
    with tf.GradientTape() as tape:
        loss = geodesic_loss(y_true, y_pred)
        total = tf.reduce_sum(loss)
    return loss.numpy(), tape.gradient(total, y_pred).numpy()


def test_losses_table():
    assert LOSSES == {"mse": rotvec_mse, "geodesic": geodesic_loss}
    np.testing.assert_allclose(rotvec_mse(np.zeros((1, 3)), np.array([[1.0, 2.0, 2.0]])), [3.0])


def test_geodesic_loss_equals_geodesic_angle():
    r_true, r_pred = random_rotvecs(200, 1), random_rotvecs(200, 2)
    loss, grad = loss_and_grad(r_true, r_pred)
    expected = geometry.geodesic_rad(geometry.rotvec_to_quat(r_true), geometry.rotvec_to_quat(r_pred))
    np.testing.assert_allclose(loss, expected, atol=2e-5)
    assert np.isfinite(grad).all()


@pytest.mark.parametrize("case", ["equal", "equal_zero", "zero_vs_small", "near_pi", "exactly_pi", "large_norm"])
def test_geodesic_loss_is_finite_at_singular_points(case):
    base = random_rotvecs(16, 3, max_angle=2.5)
    flip = np.array([[0.0, 0.0, np.pi]])
    y_true, y_pred = {
        "equal": (base, base),
        "equal_zero": (np.zeros((4, 3)), np.zeros((4, 3))),
        "zero_vs_small": (np.zeros((4, 3)), np.full((4, 3), 1e-5)),
        "near_pi": (np.zeros((1, 3)), flip * (1 - 1e-6)),
        "exactly_pi": (np.array([[0.0, 0.0, -np.pi]]), flip),  # the same rotation twice
        "large_norm": (np.zeros((1, 3)), np.array([[0.0, 2 * np.pi - 1e-4, 0.0]])),
    }[case]
    loss, grad = loss_and_grad(y_true, y_pred)
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    expected = geometry.geodesic_rad(geometry.rotvec_to_quat(y_true), geometry.rotvec_to_quat(y_pred))
    excess = np.clip(np.linalg.norm(y_pred, axis=-1) - np.pi, 0, None)
    np.testing.assert_allclose(loss, expected + excess**2, atol=1e-4)
    if case.startswith("equal"):
        np.testing.assert_allclose(grad, 0.0, atol=1e-3)


def test_geodesic_loss_pulls_long_vectors_back_into_the_principal_ball():
    y_pred = np.array([[0.0, 0.0, 7.0]])  # 7 rad about z: the same rotation as 7 - 2 pi
    loss, grad = loss_and_grad(np.array([[0.0, 0.0, 7.0 - 2 * np.pi]]), y_pred)
    assert loss[0] == pytest.approx((7.0 - np.pi) ** 2, abs=1e-4)  # angle 0, penalty only
    assert grad[0, 2] > 0  # descending shortens the vector


def test_geodesic_gradient_points_toward_target():
    y_true = np.array([[0.3, -0.2, 0.1]])
    y_pred = y_true + np.array([[0.05, 0.0, 0.0]])
    _, grad = loss_and_grad(y_true, y_pred)
    assert grad[0, 0] > 0 and np.linalg.norm(grad) < 10


def keras_metric(metric, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    metric.update_state(tf.constant(y_true, tf.float32), tf.constant(y_pred, tf.float32))
    return float(metric.result())


def test_keras_metrics_match_geometry():
    r_true, r_pred = random_rotvecs(300, 4, max_angle=1.2), random_rotvecs(300, 5, max_angle=1.2)
    r_pred[:100] = r_true[:100] + 0.05  # some within 10 degrees
    q_true, q_pred = geometry.rotvec_to_quat(r_true), geometry.rotvec_to_quat(r_pred)
    summary = summarize(q_true, q_pred)
    assert keras_metric(GeodesicErrorDeg(), r_true, r_pred) == pytest.approx(summary["geodesic_mean"], abs=1e-3)
    assert keras_metric(AccuracyAtDeg(10), r_true, r_pred) == pytest.approx(summary["acc10"], abs=1e-6)
    assert 0.2 < summary["acc10"] < 0.5
    for axis in ("yaw", "pitch", "roll"):
        assert keras_metric(EulerMAE(axis), r_true, r_pred) == pytest.approx(summary[f"mae_{axis}"], abs=1e-2)


def test_metric_names_and_config_round_trip():
    metric = AccuracyAtDeg(5)
    assert metric.name == "acc5" and EulerMAE("roll").name == "mae_roll"
    clone = AccuracyAtDeg.from_config(metric.get_config())
    assert clone.threshold == 5 and clone.name == "acc5"


def test_summarize_counts_nan_predictions_as_failures():
    q_true = geometry.rotvec_to_quat(random_rotvecs(5, 6, max_angle=1.0))
    q_pred = q_true.copy()
    q_pred[1] = np.nan
    summary = summarize(q_true, q_pred)
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["n"] == 5 and summary["failures"] == 1
    assert summary["mae"] == pytest.approx(0.0, abs=1e-6) and summary["acc10"] == 1.0
    errors = per_sample_errors(q_true, q_pred)
    assert np.isnan(errors["geodesic"][1]) and np.isfinite(errors["geodesic"][[0, 2, 3, 4]]).all()


def test_per_sample_errors_known_yaw_offset():
    q_true = geometry.aflw_to_quat(np.array([[0.1, 0.2, -0.1]]))
    q_pred = geometry.aflw_to_quat(np.array([[0.1, 0.2 + np.radians(7), -0.1]]))
    errors = per_sample_errors(q_true, q_pred)
    assert errors["err_yaw"][0] == pytest.approx(7, abs=1e-6)
    assert errors["err_pitch"][0] == pytest.approx(0, abs=1e-6)
    assert errors["geodesic"][0] == pytest.approx(7, abs=1e-6)
    assert errors["yaw_true"][0] == pytest.approx(np.degrees(0.2))
