"""The rotation conventions: round trips, the AFLW mapping, mirror and in-plane rules."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.transform import Rotation

from posenet.core import geometry as g

unit_quats = arrays(np.float64, 4, elements=st.floats(-1, 1)).filter(lambda q: np.linalg.norm(q) > 0.1)
angles = st.floats(-np.pi + 1e-3, np.pi - 1e-3)


def same_rotation(q1, q2, tol_deg=1e-6):
    return g.geodesic_deg(q1, q2) < tol_deg


GIMBAL_BAND_COS_YAW = 1e-6  # within this of |yaw| = 90 deg the AFLW angles are degenerate
GIMBAL_BAND_TOL_DEG = 1e-4  # scipy's as_euler then sets the third angle to 0: ~6e-6 deg of rotation is lost


@settings(max_examples=200, deadline=None)
@given(unit_quats)
def test_round_trips_between_all_representations(q):
    q = g.canonical_quat(q)
    assert q[3] >= 0
    assert same_rotation(g.matrix_to_quat(g.quat_to_matrix(q)), q)
    assert same_rotation(g.rotvec_to_quat(g.quat_to_rotvec(q)), q)
    assert same_rotation(g.matrix_to_quat(g.rotvec_to_matrix(g.matrix_to_rotvec(g.quat_to_matrix(q)))), q)
    cos_yaw = np.hypot(*g.quat_to_matrix(q)[0, :2])  # R = Rx Ry Rz: row 0 is (cos yaw cos roll, -cos yaw sin roll, sin yaw)
    in_band = cos_yaw < GIMBAL_BAND_COS_YAW  # e.g. q = (0, 1, 5.96e-08, 1), drawn once in CI: 4.8e-6 deg
    assert same_rotation(g.aflw_to_quat(g.quat_to_aflw(q)), q, GIMBAL_BAND_TOL_DEG if in_band else 1e-6)


def test_the_aflw_round_trip_inside_the_gimbal_band():
    q = g.canonical_quat(np.array([0.0, 1.0, 5.96e-08, 1.0]) / np.sqrt(2.0))
    assert np.hypot(*g.quat_to_matrix(q)[0, :2]) < GIMBAL_BAND_COS_YAW
    assert same_rotation(g.aflw_to_quat(g.quat_to_aflw(q)), q, GIMBAL_BAND_TOL_DEG)


@settings(max_examples=100, deadline=None)
@given(st.floats(-1.4, 1.4), st.floats(-1.4, 1.4), st.floats(-1.4, 1.4))
def test_aflw_angles_round_trip_away_from_gimbal_lock(pitch, yaw, roll):
    pyr = np.array([pitch, yaw, roll])
    np.testing.assert_allclose(g.quat_to_aflw(g.aflw_to_quat(pyr)), pyr, atol=1e-9)


def test_aflw_mapping_worked_examples():
    # Pure yaw: rotation about the camera's y axis (down), angle = yaw.
    q = g.aflw_to_quat(np.radians([0.0, 30.0, 0.0]))
    np.testing.assert_allclose(g.quat_to_rotvec(q), [0, np.radians(30), 0], atol=1e-12)
    # Pure pitch: rotation about x by MINUS pitch (AFLW's pitch sign).
    q = g.aflw_to_quat(np.radians([20.0, 0.0, 0.0]))
    np.testing.assert_allclose(g.quat_to_rotvec(q), [-np.radians(20), 0, 0], atol=1e-12)
    # Composite: intrinsic XYZ, i.e. R = Rx(-pitch) Ry(yaw) Rz(roll).
    p, y, r = np.radians([10.0, -40.0, 25.0])
    expected = Rotation.from_rotvec([-p, 0, 0]) * Rotation.from_rotvec([0, y, 0]) * Rotation.from_rotvec([0, 0, r])
    np.testing.assert_allclose(g.quat_to_matrix(g.aflw_to_quat([p, y, r])), expected.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(g.ypr_deg(g.aflw_to_quat([p, y, r])), [-40.0, 10.0, 25.0], atol=1e-9)


def test_neck_pose_nods_about_the_turned_ear_axis():
    turn, nod, tilt = np.radians([70.0, -20.0, 15.0])
    ear, nose = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])
    turned = g.quat_to_matrix(g.neck_to_quat([turn, 0.0, 0.0]))
    nodded = g.quat_to_matrix(g.neck_to_quat([turn, nod, 0.0]))
    np.testing.assert_allclose(nodded @ ear, turned @ ear, atol=1e-12)  # the nod keeps the turned ear axis
    assert (nodded @ nose)[1] > 0.3  # and the nose goes down in the image: a profile looking down
    tilted = g.quat_to_matrix(g.neck_to_quat([turn, nod, tilt]))
    np.testing.assert_allclose(tilted @ nose, nodded @ nose, atol=1e-12)  # the tilt turns about the nose
    for yaw_pitch_roll in ([turn, 0.0, 0.0], [0.0, nod, 0.0], [0.0, 0.0, tilt]):  # one joint alone: AFLW's angle
        aflw = np.array(yaw_pitch_roll)[[1, 0, 2]]
        assert same_rotation(g.neck_to_quat(yaw_pitch_roll), g.aflw_to_quat(aflw))
    yaw, pitch, roll = g.ypr_deg(g.neck_to_quat([turn, nod, 0.0]))  # AFLW reads the nod as pitch and roll
    assert yaw > 45.0 and pitch < -25.0 and roll < -25.0


def test_opentrack_sample_quaternions_match_the_aflw_mapping(shared_data):
    """Opentrack's own file (AFLW2000 images 02788 and 02773) agrees with our AFLW mapping.

    The opal23 label file stores yaw = -deg(Pose_Para yaw), pitch and roll = +deg.
    """
    import h5py

    labels = {}
    for line in (shared_data / "aflw2000" / "aflw2000_all_labels_opal23.txt").read_text().splitlines()[1:]:
        _, name, yaw, pitch, roll = line.split(";")[:5]
        labels[name] = np.radians([float(pitch), -float(yaw), float(roll)])
    with h5py.File(shared_data / "opentrack_format_sample.h5", "r") as f:
        stored = f["quats"][:]
    ours = g.aflw_to_quat(np.stack([labels["image02788"], labels["image02773"]]))
    np.testing.assert_array_less(g.geodesic_deg(stored, ours), 0.01)


def test_geodesic_is_stable_at_zero_and_pi():
    q = g.aflw_to_quat([0.1, 0.2, 0.3])
    assert g.geodesic_deg(q, q) == pytest.approx(0.0, abs=1e-9)
    tiny = g.rotate_quat_inplane(q, 1e-7)
    assert g.geodesic_rad(q, tiny) == pytest.approx(1e-7, rel=1e-3)  # acos would return 0 here
    near_pi = g.rotate_quat_inplane(q, np.pi - 1e-6)
    assert g.geodesic_rad(q, near_pi) == pytest.approx(np.pi - 1e-6, abs=1e-9)
    assert g.geodesic_deg(q, -q) == pytest.approx(0.0, abs=1e-9)  # q and -q: same rotation


def test_euler_errors_are_wrap_safe():
    a = g.aflw_to_quat(np.radians([0.0, 0.0, 179.0]))
    b = g.aflw_to_quat(np.radians([0.0, 0.0, -179.0]))
    np.testing.assert_allclose(g.euler_errors_deg(a, b), [0.0, 0.0, 2.0], atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(unit_quats)
def test_mirror_rule_equals_conjugation_by_the_flip(q):
    flip = np.diag([-1.0, 1.0, 1.0])
    expected = flip @ g.quat_to_matrix(q) @ flip
    np.testing.assert_allclose(g.quat_to_matrix(g.mirror_quat(q)), expected, atol=1e-9)
    rotvec = g.quat_to_rotvec(q)
    assert same_rotation(g.rotvec_to_quat(g.mirror_rotvec(rotvec)), g.mirror_quat(q))
    np.testing.assert_allclose(g.mirror_quat(g.mirror_quat(q)), g.canonical_quat(q), atol=1e-12)


def test_mirrored_projection_matches_mirrored_pose():
    """Projecting mirrored 3D points equals mirroring the 2D projection (x -> W - x)."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(20, 3)) * 50
    q, t = g.aflw_to_quat([0.3, -0.5, 0.2]), np.array([15.0, -10.0, 600.0])
    camera = g.camera_for_image(640, 480)
    image = g.project(g.transform(points, q, t), camera)
    flip = np.array([-1.0, 1.0, 1.0])
    mirrored = g.project(g.transform(points * flip, g.mirror_quat(q), t * flip), camera)
    np.testing.assert_allclose(mirrored, g.mirror_x(image, 640), atol=1e-9)
    roi = np.array([10.0, 20.0, 110.0, 220.0])
    np.testing.assert_allclose(g.mirror_roi(roi, 640), [530.0, 20.0, 630.0, 220.0])


@settings(max_examples=50, deadline=None)
@given(unit_quats, angles)
def test_inplane_rotation_matches_the_image_affine(q, angle):
    """Rotating the scene by Rz(a) moves projections as inplane_affine about the principal point."""
    points = np.array([[30.0, -20.0, 10.0], [-40.0, 15.0, -5.0], [0.0, 50.0, 20.0]])
    t = np.array([0.0, 0.0, 700.0])
    camera = g.camera_for_image(400, 300)
    before = g.project(g.transform(points, q, t), camera)
    after = g.project(g.transform(points, g.rotate_quat_inplane(q, angle), t), camera)
    affine = g.inplane_affine(camera[2:], angle)
    np.testing.assert_allclose(g.apply_affine(before, affine), after, atol=1e-6)


def test_head_coords_and_projection():
    camera = np.array([500.0, 500.0, 320.0, 240.0])
    coords = g.head_coords(np.array([50.0, -25.0, 1000.0]), camera)
    np.testing.assert_allclose(coords, [345.0, 227.5, 50.0])
    np.testing.assert_allclose(g.intrinsics(camera) @ [50, -25, 1000] / 1000, [345.0, 227.5, 1.0])


def test_box_iou():
    box = np.array([0.0, 0.0, 10.0, 10.0])
    assert g.box_iou(box, box) == 1.0
    assert g.box_iou(box, box + 20) == 0.0
    assert g.box_iou(box, np.array([5.0, 0.0, 15.0, 10.0])) == pytest.approx(50 / 150)
    assert g.box_iou(box, np.array([20.0, 20.0, 30.0, 30.0])) == 0.0
    assert g.box_iou(box, np.array([3.0, 3.0, 3.0, 8.0])) == 0.0  # degenerate box
