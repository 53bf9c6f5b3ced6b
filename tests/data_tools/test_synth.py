"""The synthetic renderer: determinism, exact labels, the mirror rule, and CLI errors."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_tools import synth
from posenet.cli import main
from posenet.core import geometry
from posenet.core.facemodel import AFLW_3DMM_LANDMARKS_68, FLIP_PERMUTATION_68, LANDMARKS_68
from posenet.core.h5format import decode_image, read_dataset
from posenet.core.paths import REPO

CLEAN = synth.SynthConfig(lossy=False, degrade=False, occluder_probability=0.0)
MEAN_FACE = dataclasses.replace(CLEAN, identity_scale=0.0, expression_scale=0.0, brow_lowering_mm=0.0)  # the layout itself
# A person's optional draws come before the steep-pitch draw (`wide_pitch_share`), so only without it do
# two variants share every pose.
PAIRED = dataclasses.replace(CLEAN, wide_pitch_share=0.0)
LAYOUT = synth.layout_points(CLEAN.face_layout, CLEAN.neutral_mouth)  # the 68 points the default faces are drawn with


def _translation(coords: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Head centre (mm, camera frame) from the stored coords and camera."""
    x, y, size = np.asarray(coords, np.float64)
    fx, fy, cx, cy = np.asarray(camera, np.float64)
    z = fx * synth.HEAD_SIZE_MM / size
    return np.array([(x - cx) * z / fx, (y - cy) * z / fy, z])


def _solve_pnp(model: np.ndarray, points: np.ndarray, camera: np.ndarray) -> np.ndarray:
    ok, rotvec, _ = cv2.solvePnP(model.astype(np.float64), points.astype(np.float64),
                                 geometry.intrinsics(camera), None, flags=cv2.SOLVEPNP_ITERATIVE)
    assert ok
    return geometry.rotvec_to_quat(rotvec.ravel())


def test_same_seed_gives_identical_bytes_and_samples_regenerate_alone():
    config = synth.SynthConfig()
    first = synth.synthesize(config, 5, seed=3, workers=1)
    again = synth.synthesize(config, 5, seed=3, workers=2)
    for a, b in zip(first["images"], again["images"]):
        assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(first["pt3d_68"], again["pt3d_68"])
    alone = synth.render_sample(config, 3, 4)
    assert alone["images"].tobytes() == first["images"][4].tobytes()
    np.testing.assert_array_equal(alone["quats"], first["quats"][4])
    other = synth.synthesize(config, 2, seed=4, workers=1)
    assert other["images"][0].tobytes() != first["images"][0].tobytes()


def test_written_files_are_byte_identical(tmp_path):
    paths = [tmp_path / "a.h5", tmp_path / "b.h5"]
    for path in paths:
        synth.write_synth(path, synth.SynthConfig(), 3, seed=9, workers=1)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert not list(tmp_path.glob("*.tmp"))


def test_labels_are_exact_projections_and_pnp_recovers_the_pose():
    fields = synth.synthesize(synth.SynthConfig(), 12, seed=5, workers=1)
    for i in range(12):
        camera = fields["camera"][i]
        translation = _translation(fields["coords"][i], camera)
        model = fields["model_68"][i].astype(np.float64)
        posed = geometry.transform(model, fields["quats"][i], translation)
        np.testing.assert_allclose(geometry.project(posed, camera), fields["pt2d_68"][i], atol=0.01)
        np.testing.assert_allclose(fields["pt3d_68"][i, :, :2], fields["pt2d_68"][i])
        quat = _solve_pnp(model, fields["pt2d_68"][i], camera)
        assert geometry.geodesic_deg(fields["quats"][i], quat) < 0.5


def test_mean_face_config_uses_the_layout_and_covers_the_ranges():
    fields = synth.synthesize(MEAN_FACE, 8, seed=2, workers=1)
    np.testing.assert_allclose(fields["model_68"], np.broadcast_to(LAYOUT, (8, 68, 3)), atol=1e-4)
    neck = Rotation.from_quat(fields["quats"].astype(np.float64)).as_euler(geometry.NECK_EULER_ORDER, degrees=True)
    assert np.all(np.abs(neck) <= [90.01, 60.01, 45.01])  # the drawn turn, nod and tilt stay in their ranges


@pytest.mark.parametrize("distribution", synth.POSE_DISTRIBUTIONS)
def test_pose_distributions_stay_in_the_ranges(distribution):
    config = dataclasses.replace(synth.SynthConfig(), pose_distribution=distribution, yaw_range=80.0,
                                 pitch_range=40.0, roll_range=30.0, neck_pose=False)  # AFLW's angles drawn
    angles = np.abs(geometry.ypr_deg(np.stack([synth.sample_pose(config, np.random.default_rng([3, i]))
                                               for i in range(2000)])))
    assert np.all(angles <= [80.0 + 1e-6, 40.0 + 1e-6, 30.0 + 1e-6])
    near_frontal = np.mean(np.all(angles <= [30.0, 15.0, 15.0], axis=1))
    if distribution == "realistic":  # mostly near frontal, yet profiles remain
        assert near_frontal > 0.3 and np.mean(angles[:, 0] > 60.0) > 0.05
    else:
        assert near_frontal < 0.15 and np.mean(angles[:, 0] > 60.0) > 0.2


def test_pose_spread_and_pitch_centre_shape_the_realistic_pitches():
    def pitches(**changes) -> np.ndarray:  # the normal part alone: no wide share; AFLW's angles drawn
        config = dataclasses.replace(synth.SynthConfig(), wide_pitch_share=0.0, neck_pose=False, **changes)
        poses = np.stack([synth.sample_pose(config, np.random.default_rng([4, i])) for i in range(2000)])
        return geometry.ypr_deg(poses)[:, 1]

    default = pitches()
    assert 11.0 < np.std(default) < 15.0 < 18.0 < np.std(pitches(pose_sigma_deg=(30.0, 20.0, 9.0))) < 22.0
    np.testing.assert_allclose(pitches(pitch_centre_deg=-4.0), default - 4.0, atol=1e-6)  # the same draws, moved
    for changes, message in (({"pose_sigma_deg": (30.0, 0.0, 9.0)}, "pose spread"),
                             ({"pitch_centre_deg": 70.0}, "pitch centre"), ({"wide_pitch_share": 1.5}, "wide pitch")):
        with pytest.raises(synth.PosenetError, match=message):
            synth.synthesize(dataclasses.replace(CLEAN, **changes), 1, seed=0, workers=1)


def test_wide_pitch_share_spreads_that_share_over_the_range_and_keeps_the_other_draws():
    def angles(share: float) -> np.ndarray:
        config = dataclasses.replace(synth.SynthConfig(), wide_pitch_share=share, neck_pose=False)
        return geometry.ypr_deg(np.stack([synth.sample_pose(config, np.random.default_rng([5, i])) for i in range(2000)]))

    normal, quarter, every = angles(0.0), angles(0.25), angles(1.0)
    steep = np.abs(quarter[:, 1]) > 40.0
    assert np.mean(np.abs(normal[:, 1]) > 40.0) < 0.01 < 0.05 < np.mean(steep) < 0.13
    assert abs(np.mean(np.abs(every[:, 1])) - 30.0) < 2.0  # uniform over +-60: mean |pitch| 30
    changed = ~np.isclose(quarter[:, 1], normal[:, 1], atol=1e-6)
    assert 0.2 < np.mean(changed) < 0.3
    np.testing.assert_allclose(quarter[:, [0, 2]], normal[:, [0, 2]], atol=1e-6)  # the same people, turned alike


def test_neck_pose_composes_the_same_draws_the_neck_way():
    def poses(neck: bool) -> np.ndarray:
        config = dataclasses.replace(synth.SynthConfig(), neck_pose=neck)
        return np.stack([synth.sample_pose(config, np.random.default_rng([6, i])) for i in range(2000)])

    aflw, neck = poses(False), poses(True)
    drawn = np.radians(geometry.ypr_deg(aflw))  # (yaw, pitch, roll): neck_to_quat's order too
    np.testing.assert_allclose(geometry.geodesic_deg(geometry.neck_to_quat(drawn), neck),
                               0.0, atol=1e-6)  # the same people, turned and nodded in the neck's order
    for labels, turned_heads_roll in ((geometry.ypr_deg(aflw), False), (geometry.ypr_deg(neck), True)):
        turned = np.abs(labels[:, 0]) > 45.0
        tilt = labels[turned, 2] * np.sign(labels[turned, 0])  # roll towards the turn
        rolled = np.mean(np.abs(tilt) > 20.0)
        coupled = np.corrcoef(labels[turned, 1], tilt)[0, 1]
        assert (rolled > 0.3 and coupled > 0.8) if turned_heads_roll else (rolled < 0.1 and abs(coupled) < 0.2)


def test_frontal_face_landmarks_lie_in_the_roi_and_the_image():
    config = dataclasses.replace(CLEAN, yaw_range=0.0, pitch_range=0.0, roll_range=0.0)
    sample = synth.render_sample(config, 0, 0)
    x0, y0, x1, y1 = sample["rois"]
    points = sample["pt2d_68"]
    assert np.all((points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1))
    assert 0 <= x0 < x1 <= config.size and 0 <= y0 < y1 <= config.size
    image = decode_image(sample["images"])
    assert image.shape == (config.size, config.size, 3)
    nose = np.round(points[30]).astype(int)
    background = image[2, 2].astype(int)
    assert np.abs(image[nose[1], nose[0]].astype(int) - background).sum() > 0  # the face is drawn there


def test_mirror_rule_end_to_end():
    sample = synth.render_sample(MEAN_FACE, 7, 1)
    image = decode_image(sample["images"])
    width = image.shape[1]
    flipped_points = geometry.mirror_x(sample["pt2d_68"], width)[FLIP_PERMUTATION_68]
    fx, fy, cx, cy = sample["camera"].astype(np.float64)
    mirrored_camera = np.array([fx, fy, width - cx, cy])
    quat = _solve_pnp(LAYOUT, flipped_points, mirrored_camera)
    assert geometry.geodesic_deg(geometry.mirror_quat(sample["quats"]), quat) < 1.0


def test_mirrored_pose_renders_the_mirrored_image():
    """Rendering the mirrored pose under mirrored light matches the flipped image."""
    rng = np.random.default_rng(0)
    appearance = dataclasses.replace(synth.sample_appearance(MEAN_FACE, rng), detail=0.0)
    mirror = np.array([-1.0, 1.0, 1.0])
    mirrored_appearance = dataclasses.replace(appearance, light_dirs=appearance.light_dirs * mirror)
    quat = geometry.aflw_to_quat(np.radians([10.0, 35.0, 15.0]))
    camera, size = np.array([300.0, 300.0, 128.0, 128.0]), (256, 256)
    translation = np.array([20.0, -10.0, 600.0])
    image, points = synth.render_view(appearance, quat, translation, camera, size)
    mirrored, mirrored_points = synth.render_view(mirrored_appearance, geometry.mirror_quat(quat),
                                                  translation * mirror, camera, size)
    np.testing.assert_allclose(mirrored_points, geometry.mirror_x(points, 256)[FLIP_PERMUTATION_68], atol=1e-6)
    difference = np.abs(mirrored.astype(int) - image[:, ::-1].astype(int))
    assert np.mean(difference) < 4.0


def test_scene_mode_frames_with_and_without_faces():
    config = dataclasses.replace(CLEAN, mode="scene", face_probability=0.5)
    fields = synth.synthesize(config, 10, seed=1, workers=1)
    has = fields["hasface"]
    assert has.dtype == bool and has.any() and not has.all()
    assert decode_image(fields["images"][0]).shape == (224, 288, 3)
    np.testing.assert_array_equal(fields["rois"][~has], 0.0)
    rois = fields["rois"][has]
    assert np.all((rois[:, 0] < rois[:, 2]) & (rois[:, 1] < rois[:, 3]))
    assert np.all((rois >= 0) & (rois <= [288, 224, 288, 224]))


def test_render_view_landmarks_follow_the_pose():
    appearance = synth.sample_appearance(CLEAN, np.random.default_rng(1))
    camera = np.array([500.0, 500.0, 320.0, 240.0])
    quat = geometry.aflw_to_quat(np.radians([0.0, 20.0, 0.0]))
    frame, points = synth.render_view(appearance, quat, np.array([0.0, 0.0, 800.0]), camera, (640, 480))
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
    expected = geometry.project(geometry.transform(appearance.model_points(), quat, np.array([0.0, 0.0, 800.0])), camera)
    np.testing.assert_allclose(points, expected, atol=1e-9)


def test_cli_writes_a_valid_file(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["data", "synth", "--n", "4", "--out", str(out), "--seed", "1", "--workers", "1", "--png"]) == 0
    dataset = read_dataset(out)
    assert len(dataset) == 4 and dataset["pt3d_68"].shape == (4, 68, 3)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--n", "0"], ["--n", "-3"], ["--n", "2", "--size", "8"],
                                  ["--n", "2", "--yaw-range", "400"], ["--n", "1", "--seed", "-1"]])
def test_cli_bad_values_fail_with_one_line(tmp_path, capsys, args):
    out = tmp_path / "bad.h5"
    assert main(["data", "synth", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("posenet: error:")
    assert not list(tmp_path.iterdir())


def test_cli_unwritable_output(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "s.h5"  # a file where the output folder must be
    assert main(["data", "synth", "--n", "2", "--out", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert (tmp_path / "afile").read_text() == "x"


def test_cli_unknown_flag_exits_2(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth", "--n", "2", "--out", str(tmp_path / "s.h5"), "--bogus"])
    assert exit_info.value.code == 2


def test_background_photos_are_used(tmp_path):
    folder = tmp_path / "backgrounds"
    folder.mkdir()
    stripes = np.zeros((120, 160, 3), np.uint8)
    stripes[::8] = (255, 0, 255)
    cv2.imwrite(str(folder / "stripes.png"), stripes)
    rng = np.random.default_rng(0)
    photos = [synth.make_background(rng, 64, 48, str(folder)) for _ in range(10)]
    assert all(p.shape == (48, 64, 3) for p in photos)
    assert any((p[..., 1] < 30).mean() > 0.8 for p in photos)  # the magenta/black stripes, not a procedural one
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["data", "synth", "--n", "2", "--out", str(tmp_path / "s.h5"), "--backgrounds", str(empty)]) == 2


def test_frames_larger_than_the_noise_bank():
    config = synth.SynthConfig(mode="scene", scene_size=(640, 520), face_probability=1.0)
    sample = synth.render_sample(config, 0, 0)
    assert decode_image(sample["images"]).shape == (520, 640, 3) and sample["hasface"]


def test_glasses_occlude_without_changing_labels():
    with_glasses = synth.render_sample(dataclasses.replace(CLEAN, glasses_probability=1.0), 4, 0)
    without = synth.render_sample(dataclasses.replace(CLEAN, glasses_probability=0.0), 4, 0)
    for name in ("quats", "pt3d_68", "rois", "camera"):
        np.testing.assert_array_equal(with_glasses[name], without[name])
    assert with_glasses["images"].tobytes() != without["images"].tobytes()


def test_calibrated_head_frame_on_a_worked_example():
    """A face rendered at AFLW angles (yaw 20, pitch -10, roll 5) is labelled with exactly those
    angles; its landmarks are the anatomical model's seen 2.51 deg further pitched about x, so PnP
    with the calibrated model returns the rendered angles and PnP with the anatomical one does not."""
    from posenet.core.facemodel import AFLW_FRAME_PITCH_DEG, ANATOMICAL_LANDMARKS_68

    config = dataclasses.replace(MEAN_FACE, yaw_range=0.0, pitch_range=0.0, roll_range=0.0)
    sample = synth.render_sample(config, 0, 0)
    assert np.allclose(geometry.ypr_deg(sample["quats"].astype(np.float64)), 0.0, atol=1e-4)
    quat = geometry.aflw_to_quat(np.radians([-10.0, 20.0, 5.0]))  # (pitch, yaw, roll)
    camera = np.array([5000.0, 5000.0, 128.0, 128.0])  # near-orthographic, as AFLW's labels
    translation = np.array([0.0, 0.0, 5000.0 * 100.0 / 80.0])
    points = geometry.project(geometry.transform(LANDMARKS_68, quat, translation), camera)
    np.testing.assert_allclose(geometry.ypr_deg(_solve_pnp(LANDMARKS_68, points, camera)), [20.0, -10.0, 5.0], atol=0.05)
    anatomical = geometry.ypr_deg(_solve_pnp(ANATOMICAL_LANDMARKS_68, points, camera))
    assert abs(geometry.geodesic_deg(_solve_pnp(ANATOMICAL_LANDMARKS_68, points, camera), quat)
               - AFLW_FRAME_PITCH_DEG) < 0.05
    assert abs(anatomical[1] - (-10.0)) > 2.0  # the uncalibrated model reads another pitch


def test_face_distance_sets_the_camera_distance_and_bad_ranges_are_refused():
    near = dataclasses.replace(MEAN_FACE, face_distance_mm=(400.0, 400.0))
    far = dataclasses.replace(MEAN_FACE, face_distance_mm=(3000.0, 3000.0))
    for config, distance in ((near, 400.0), (far, 3000.0)):
        fields = synth.synthesize(config, 4, seed=3, workers=1)
        depths = [_translation(fields["coords"][i], fields["camera"][i])[2] for i in range(4)]
        np.testing.assert_allclose(depths, distance, rtol=1e-3)
    with pytest.raises(synth.PosenetError, match="face distance"):
        synth.synthesize(dataclasses.replace(CLEAN, face_distance_mm=(900.0, 500.0)), 1, seed=0, workers=1)


def test_eye_opening_changes_the_pixels_but_not_the_labels():
    wide = synth.synthesize(CLEAN, 2, seed=4, workers=1)
    at_lids = synth.synthesize(dataclasses.replace(CLEAN, eye_opening=1.0), 2, seed=4, workers=1)
    for key in ("quats", "pt2d_68", "coords", "camera"):
        np.testing.assert_array_equal(wide[key], at_lids[key])
    assert all(bytes(a) != bytes(b) for a, b in zip(wide["images"], at_lids["images"]))
    with pytest.raises(synth.PosenetError, match="eye opening"):
        synth.synthesize(dataclasses.replace(CLEAN, eye_opening=0.0), 1, seed=0, workers=1)


def test_fringe_probability_draws_fringe_styles():
    always = dataclasses.replace(CLEAN, fringe_probability=1.0)
    styles = [synth.sample_appearance(always, np.random.default_rng([7, i])).hair_style for i in range(20)]
    assert set(styles) <= set(synth.FRINGE_STYLES) and len(set(styles)) > 1
    default = [synth.sample_appearance(CLEAN, np.random.default_rng([7, i])).hair_style for i in range(80)]
    assert set(default) == set(range(len(synth.DETAILED_HAIR_STYLES)))  # by default every style alike
    with pytest.raises(synth.PosenetError, match="fringe probability"):
        synth.synthesize(dataclasses.replace(CLEAN, fringe_probability=1.5), 1, seed=0, workers=1)


def test_brow_lowering_moves_the_brows_toward_the_eyes_and_nothing_else():
    frontal = dataclasses.replace(MEAN_FACE, yaw_range=0.0, pitch_range=0.0, roll_range=0.0)

    def face_mm(config: synth.SynthConfig) -> np.ndarray:
        """Landmarks in mm from the eye centre (the crop itself follows the landmark box)."""
        points = synth.render_sample(config, 0, 0)["pt2d_68"].astype(np.float64)
        return (points - points[36:48].mean(axis=0)) * 90.0 / (points[45, 0] - points[36, 0])  # corners 90 mm apart

    model, lowered = face_mm(frontal), face_mm(dataclasses.replace(frontal, brow_lowering_mm=9.0))
    drop = lowered[17:27, 1] - model[17:27, 1]
    assert np.all(drop > 5.0) and 7.5 < drop.mean() < 9.5  # about 9 mm where the brow field is full
    np.testing.assert_allclose(lowered[28:], model[28:], atol=0.3)  # nose, eyes, mouth and jaw stay
    with pytest.raises(synth.PosenetError, match="brow lowering"):
        synth.synthesize(dataclasses.replace(CLEAN, brow_lowering_mm=30.0), 1, seed=0, workers=1)


def _gazing(jitter_deg=(0.0, 0.0)) -> synth.Appearance:
    person = synth.sample_appearance(CLEAN, np.random.default_rng(3))
    return dataclasses.replace(person, gaze_jitter_deg=np.array(jitter_deg))


def test_eyes_turn_toward_the_camera_within_their_range():
    person, on_axis = _gazing(), np.array([0.0, 0.0, 6000.0])  # far: the eyes see the camera along the axis
    turned = lambda pitch, yaw: synth.iris_offset_mm(person, geometry.aflw_to_quat(np.radians([pitch, yaw, 0.0])), on_axis)
    np.testing.assert_allclose(turned(0.0, 0.0), [0.0, 0.0], atol=0.1)  # a frontal head looks ahead
    down = turned(-10.0, 0.0)  # a head pitched down looks up at the camera (y down on the face)
    assert down[1] == pytest.approx(-synth.EYEBALL_RADIUS_MM * np.sin(np.radians(10.0)), abs=0.15) and abs(down[0]) < 0.05
    right, left = turned(0.0, 15.0), turned(0.0, -15.0)
    assert right[0] == pytest.approx(-left[0]) and right[0] > 2.5  # the irises move against the head's turn
    profile = turned(0.0, 80.0)  # beyond the eyes' range: they turn as far as they can
    assert profile[0] == pytest.approx(synth.EYEBALL_RADIUS_MM * np.sin(np.radians(synth.EYE_TURN_LIMIT_DEG[0])))
    assert synth.iris_offset_mm(_gazing((5.0, 0.0)), geometry.aflw_to_quat(np.zeros(3)), on_axis)[0] > 0.9
    assert synth.sample_appearance(CLEAN, np.random.default_rng(3)).gaze_jitter_deg is not None  # the default
    ahead = dataclasses.replace(CLEAN, eye_gaze="ahead")
    assert synth.sample_appearance(ahead, np.random.default_rng(3)).gaze_jitter_deg is None


def test_turned_eyes_paint_the_pupil_where_the_eye_looks_and_keep_the_labels():
    person = _gazing()
    centre = synth.EYE_CENTRES_MM[0, :2]
    dark = synth.REGIONS.index("dark")

    def pupil_darkness(offset_mm, at_mm):
        row = np.array([(at_mm[1] - synth.TEX_Y[0]) / synth.TEX_MM], np.float32)
        col = np.array([(at_mm[0] - synth.TEX_X[0]) / synth.TEX_MM], np.float32)
        albedo = synth._albedo(person, row, col, np.zeros(1, np.int32), np.asarray(offset_mm, np.float64))
        return float(person.colours[synth.REGIONS.index("sclera")].mean() - albedo.mean())

    up = np.array([0.0, -3.0])
    assert pupil_darkness(up, centre + up) > 100 > pupil_darkness(up, centre + [0.0, 3.5])  # the pupil went up
    assert pupil_darkness([0.0, 0.0], centre) > 100 and person.colours[dark].mean() < 60
    ahead = synth.synthesize(dataclasses.replace(PAIRED, eye_gaze="ahead"), 2, seed=4, workers=1)
    gazing = synth.synthesize(PAIRED, 2, seed=4, workers=1)
    assert all(bytes(a) != bytes(b) for a, b in zip(ahead["images"], gazing["images"]))
    for key in ("quats", "pt2d_68"):  # the gaze draws from its own stream: same people, poses and labels
        np.testing.assert_array_equal(ahead[key], gazing[key])
    with pytest.raises(synth.PosenetError, match="eye gaze"):
        synth.synthesize(dataclasses.replace(CLEAN, eye_gaze="sideways"), 1, seed=0, workers=1)


def test_the_aflw_3dmm_layout_moves_the_face_onto_its_points_with_exact_labels():
    warped = synth.synthesize(dataclasses.replace(MEAN_FACE, face_layout="aflw-3dmm"), 4, seed=6, workers=1)
    np.testing.assert_allclose(warped["model_68"], np.broadcast_to(AFLW_3DMM_LANDMARKS_68, (4, 68, 3)), atol=1e-4)
    for i in range(4):  # the labels are the posed points, and the pose is the same person's
        translation = _translation(warped["coords"][i], warped["camera"][i])
        posed = geometry.transform(AFLW_3DMM_LANDMARKS_68, warped["quats"][i], translation)
        np.testing.assert_allclose(geometry.project(posed, warped["camera"][i]), warped["pt2d_68"][i], atol=0.01)
    model = synth.synthesize(dataclasses.replace(MEAN_FACE, face_layout="model"), 4, seed=6, workers=1)
    np.testing.assert_array_equal(warped["quats"], model["quats"])  # no extra draw: a paired A/B
    assert all(bytes(a) != bytes(b) for a, b in zip(warped["images"], model["images"]))
    mesh, model_mesh = synth.head_mesh("aflw-3dmm"), synth.head_mesh()
    np.testing.assert_array_equal(mesh.vertices[:68], AFLW_3DMM_LANDMARKS_68)
    np.testing.assert_array_equal(mesh.texture_vertices, model_mesh.vertices)  # the paint stays the model's
    back = model_mesh.vertices[:, 2] > 80.0  # the back of the skull is pinned
    np.testing.assert_allclose(mesh.vertices[back], model_mesh.vertices[back], atol=0.2)
    assert np.abs(mesh.vertices[30] - model_mesh.vertices[30]).max() > 10.0  # the nose tip did move
    with pytest.raises(synth.PosenetError, match="face layout: unknown 'cartoon'"):
        synth.synthesize(dataclasses.replace(CLEAN, face_layout="cartoon"), 1, seed=0, workers=1)


def test_a_neutral_mouth_closes_the_layouts_lips_and_raises_its_jaw_only():
    fitted = synth.FACE_LAYOUTS["aflw-3dmm"]
    closed = synth.layout_points("aflw-3dmm", neutral_mouth=True)
    upper, lower = synth.INNER_LIPS
    assert np.linalg.norm(fitted[upper] - fitted[lower]) > 5.0  # the fits' mean expression: lips apart
    assert abs(np.linalg.norm(closed[upper] - closed[lower]) - synth.NEUTRAL_MOUTH_GAP_MM) < 0.3
    moved = np.linalg.norm(closed - fitted, axis=1) > 1e-9
    assert moved[8] and moved[lower] and not moved[:4].any() and not moved[17:48].any() and not moved[upper]
    assert closed[8, 1] < fitted[8, 1] - 4.0  # the chin rises with the jaw (y points down)
    np.testing.assert_array_equal(synth.layout_points("model", neutral_mouth=True), LANDMARKS_68)  # closed already
    faces = synth.synthesize(dataclasses.replace(MEAN_FACE, face_layout="aflw-3dmm", neutral_mouth=True), 2, seed=3,
                             workers=1)
    np.testing.assert_allclose(faces["model_68"], np.broadcast_to(closed, (2, 68, 3)), atol=1e-4)


def test_a_contour_kept_apart_leaves_the_jaw_surface_and_labels_the_layouts_points():
    config = dataclasses.replace(MEAN_FACE, face_layout="aflw-3dmm", warp_contour=False)
    faces = synth.synthesize(config, 4, seed=6, workers=1)
    np.testing.assert_allclose(faces["model_68"], np.broadcast_to(AFLW_3DMM_LANDMARKS_68, (4, 68, 3)), atol=1e-4)
    for i in range(4):  # the labels are the posed points
        translation = _translation(faces["coords"][i], faces["camera"][i])
        posed = geometry.transform(AFLW_3DMM_LANDMARKS_68, faces["quats"][i], translation)
        np.testing.assert_allclose(geometry.project(posed, faces["camera"][i]), faces["pt2d_68"][i], atol=0.01)
    warped = synth.synthesize(dataclasses.replace(config, warp_contour=True), 4, seed=6, workers=1)
    np.testing.assert_array_equal(faces["quats"], warped["quats"])  # no extra draw: a paired A/B
    kept, pushed = synth.head_mesh("aflw-3dmm", False, False), synth.head_mesh("aflw-3dmm")
    np.testing.assert_allclose(kept.vertices[synth.CONTOUR], LANDMARKS_68[synth.CONTOUR], atol=1e-6)  # the model's jaw
    np.testing.assert_allclose(kept.vertices[17:68], AFLW_3DMM_LANDMARKS_68[17:], atol=1e-6)  # the inner face warped
    assert not np.isin(kept.landmark_index[synth.CONTOUR], kept.triangles).any()  # labels off the surface
    jaw = np.abs(pushed.vertices[synth.CONTOUR] - kept.vertices[synth.CONTOUR]).max(axis=1)
    assert jaw.max() > 15.0  # where the warp would have pushed the cheeks


def test_hair_volume_reshapes_the_head_outline_only():
    bare = synth.synthesize(PAIRED, 12, seed=8, workers=1)
    haired = synth.synthesize(dataclasses.replace(PAIRED, hair_volume_mm=(20.0, 30.0)), 12, seed=8, workers=1)
    for key in ("quats", "pt2d_68", "model_68", "coords"):  # its own stream: the same people, poses and labels
        np.testing.assert_array_equal(bare[key], haired[key])
    styles = synth._hair_styles(CLEAN.detailed_face)
    rng_styles = [synth.sample_appearance(CLEAN, np.random.default_rng([8, i])).hair_style for i in range(12)]
    changed = [bytes(a) != bytes(b) for a, b in zip(bare["images"], haired["images"])]
    assert changed == [not styles[s].bald for s in rng_styles] and any(changed)  # bald crowns stay bare
    mesh = synth.head_mesh()
    for style, field in zip(synth.DETAILED_HAIR_STYLES, mesh.hair_field):
        assert not field[mesh.landmark_index].any()
        pushed = np.linalg.norm(field, axis=1) > 0.99
        crown = (mesh.vertices[:, 1] < -100) & (np.abs(mesh.vertices[:, 0]) < 20)
        assert pushed[crown].all() != style.bald  # the crown under hair moves out 1 mm per mm
    with pytest.raises(synth.PosenetError, match="hair volume"):
        synth.synthesize(dataclasses.replace(CLEAN, hair_volume_mm=(30.0, 20.0)), 1, seed=0, workers=1)


def _hair_pixels(pixels: np.ndarray, hair: np.ndarray, skin: np.ndarray) -> int:
    """How many of the RGB `pixels` are nearer the hair colour than the skin colour."""
    return int(np.sum(np.linalg.norm(pixels - hair, axis=1) < np.linalg.norm(pixels - skin, axis=1)))


def test_a_hairline_shift_moves_the_paint_above_the_brows_only():
    appearance = dataclasses.replace(synth.sample_appearance(MEAN_FACE, np.random.default_rng(3)), hair_style=0)
    quat, camera = geometry.aflw_to_quat(np.zeros(3)), np.array([600.0, 600.0, 128.0, 128.0])
    views = [synth.render_view(dataclasses.replace(appearance, hairline_shift_mm=shift), quat, np.array([0, 0, 600.0]),
                               camera, (256, 256)) for shift in (-20.0, 0.0, 20.0)]
    changed_rows = np.flatnonzero(np.abs(views[0][0].astype(int) - views[2][0].astype(int)).sum(axis=(1, 2)))
    brow_top = views[1][1][17:27, 1].min()
    assert changed_rows.size and changed_rows.max() < brow_top - 5  # the hairline moved, the brows did not
    skin, hair = appearance.colours[0], appearance.colours[1]
    column = [view[0][30:100, 128].astype(float) for view in views]  # down the forehead's midline
    hair_rows = [_hair_pixels(c, hair, skin) for c in column]
    assert hair_rows[0] > hair_rows[1] > hair_rows[2]  # a lower hairline: more hair above the brows
    plain = synth.synthesize(PAIRED, 6, seed=8, workers=1)
    shifted = synth.synthesize(dataclasses.replace(PAIRED, hairline_shift_mm=15.0), 6, seed=8, workers=1)
    np.testing.assert_array_equal(plain["pt2d_68"], shifted["pt2d_68"])  # its own stream: the same people and poses
    with pytest.raises(synth.PosenetError, match="hairline shift"):
        synth.synthesize(dataclasses.replace(CLEAN, hairline_shift_mm=-1.0), 1, seed=0, workers=1)


def test_a_hairline_tilt_lowers_the_hair_on_one_side_of_the_forehead_and_raises_it_on_the_other():
    appearance = dataclasses.replace(synth.sample_appearance(MEAN_FACE, np.random.default_rng(3)), hair_style=0)
    colours = appearance.colours.copy()
    colours[1] = (20.0, 15.0, 10.0)  # black hair: far from every skin tone however it is lit
    appearance = dataclasses.replace(appearance, colours=colours)
    skin, hair = colours[0], colours[1]
    quat, camera = geometry.aflw_to_quat(np.zeros(3)), np.array([600.0, 600.0, 128.0, 128.0])

    def hair_rows(tilt: float) -> list[int]:
        """Hair pixels above the brows down a column left and right of the forehead's midline."""
        image, points = synth.render_view(dataclasses.replace(appearance, hairline_tilt_mm=tilt), quat,
                                          np.array([0, 0, 600.0]), camera, (256, 256))
        brow_top = int(points[17:27, 1].min())
        columns = [image[20:brow_top, x].astype(float) for x in (100, 156)]
        return [_hair_pixels(c, hair, skin) for c in columns]

    level, tilted, mirrored = hair_rows(0.0), hair_rows(20.0), hair_rows(-20.0)
    assert (tilted[0] - level[0]) * (tilted[1] - level[1]) < 0  # lower on one side, higher on the other
    assert (mirrored[0] - level[0]) * (tilted[0] - level[0]) < 0  # the sign of the tilt picks the side
    plain = synth.synthesize(PAIRED, 6, seed=8, workers=1)
    tilted_set = synth.synthesize(dataclasses.replace(PAIRED, hairline_tilt_mm=15.0), 6, seed=8, workers=1)
    np.testing.assert_array_equal(plain["pt2d_68"], tilted_set["pt2d_68"])  # its own stream: the same people and poses
    assert not np.array_equal(plain["images"], tilted_set["images"])
    with pytest.raises(synth.PosenetError, match="hairline tilt"):
        synth.synthesize(dataclasses.replace(CLEAN, hairline_tilt_mm=40.0), 1, seed=0, workers=1)


def test_a_face_depth_scale_flattens_the_face_about_the_eyes_and_keeps_labels_exact():
    mesh = synth.head_mesh(*synth.sample_appearance(CLEAN, np.random.default_rng(0)).face)
    appearance = synth.sample_appearance(MEAN_FACE, np.random.default_rng(3))
    depth = synth.depth_moves(LAYOUT)[:, 2]  # before the eyes: negative
    for scale in (0.7, 1.2):
        points = dataclasses.replace(appearance, depth_scale=scale).model_points()
        np.testing.assert_allclose(points[:, :2], LAYOUT[:, :2], atol=1e-9)  # only depth changes
        np.testing.assert_allclose(points[:, 2] - LAYOUT[:, 2], (scale - 1.0) * depth, atol=1e-9)
    assert depth[30] < -30.0 < 60.0 < depth[0]  # the nose tip stands out, the contour sits back by the ears
    assert np.abs(mesh.depth_field[mesh.vertices[:, 2] > 80]).max() < 0.1 * abs(depth[30])  # the back barely moves
    plain = synth.synthesize(PAIRED, 6, seed=8, workers=1)
    flat = synth.synthesize(dataclasses.replace(PAIRED, face_depth_scale=(0.7, 0.9)), 6, seed=8, workers=1)
    np.testing.assert_array_equal(plain["quats"], flat["quats"])  # its own stream: the same people and poses
    assert np.all(np.abs(flat["model_68"][:, 30, 2] - LAYOUT[30, 2]) > 0.1 * abs(depth[30]) - 1.0)
    for i in range(6):  # labels stay exact projections of the flattened face
        posed = geometry.transform(flat["model_68"][i].astype(np.float64), flat["quats"][i],
                                   _translation(flat["coords"][i], flat["camera"][i]))
        np.testing.assert_allclose(geometry.project(posed, flat["camera"][i]), flat["pt2d_68"][i], atol=0.01)
    with pytest.raises(synth.PosenetError, match="face depth"):
        synth.synthesize(dataclasses.replace(CLEAN, face_depth_scale=(0.9, 0.8)), 1, seed=0, workers=1)


def test_feature_contrast_fades_brows_lips_and_dark_features_toward_the_skin():
    rng_seed = [6, 1]
    full = synth.sample_appearance(CLEAN, np.random.default_rng(rng_seed))
    faint = synth.sample_appearance(dataclasses.replace(CLEAN, feature_contrast=(0.0, 0.0)), np.random.default_rng(rng_seed))
    half = synth.sample_appearance(dataclasses.replace(CLEAN, feature_contrast=(0.5, 0.5)), np.random.default_rng(rng_seed))
    features = [synth.REGIONS.index(name) for name in synth.FEATURE_REGIONS]
    others = [i for i in range(len(synth.REGIONS)) if i not in features]
    skin = full.colours[0]
    np.testing.assert_allclose(faint.colours[features], np.broadcast_to(skin, (len(features), 3)))
    np.testing.assert_allclose(half.colours[features] - skin, 0.5 * (full.colours[features] - skin))
    np.testing.assert_array_equal(faint.colours[others], full.colours[others])
    np.testing.assert_array_equal(faint.coefficients, full.coefficients)
    with pytest.raises(synth.PosenetError, match="feature contrast"):
        synth.synthesize(dataclasses.replace(CLEAN, feature_contrast=(0.5, 1.2)), 1, seed=0, workers=1)


@pytest.mark.parametrize("face_on_axis, seen_head_on", [(True, True), (False, False)])
def test_face_on_axis_shows_a_near_face_at_its_labelled_pitch(face_on_axis, seen_head_on):
    """A weak-perspective fit (AFLW's labels) of a face 0.4 m from the camera reads its label's pitch
    only when the face, not the skull centre 40 mm above it, is on the optical axis."""
    config = dataclasses.replace(MEAN_FACE, face_distance_mm=(400.0, 400.0), face_on_axis=face_on_axis,
                                 yaw_range=30.0, pitch_range=20.0, roll_range=20.0)
    fields = synth.synthesize(config, 6, seed=2, workers=1)
    orthographic = np.array([30 * 256.0, 30 * 256.0, 128.0, 128.0])
    errors = [geometry.ypr_deg(_solve_pnp(LAYOUT, fields["pt2d_68"][i], orthographic))[1]
              - geometry.ypr_deg(fields["quats"][i].astype(np.float64))[1] for i in range(6)]
    assert (abs(np.mean(errors)) < 1.5) == seen_head_on, errors


def test_a_script_without_a_main_guard_gets_one_error_not_a_hang(tmp_path):
    """Worker processes re-import the script; unguarded, each renders again while starting and dies.
    The parent must say so (it used to replace the dead workers for ever)."""
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""
        from data_tools import synth
        synth.synthesize(synth.SynthConfig(), 64, 0, workers=2)
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode != 0
    assert 'the rendering worker processes died' in done.stderr and '__name__ == "__main__"' in done.stderr


def test_a_rendering_error_in_process_reaches_the_caller_as_itself(monkeypatch):
    """With workers=1 a failing render raises its own error (the handler for dead worker processes
    once turned it into an AttributeError)."""
    def broken(config, seed, index):
        raise ValueError(f"sample {index} cannot be drawn")

    monkeypatch.setattr(synth, "render_sample", broken)
    with pytest.raises(ValueError, match="sample 0 cannot be drawn"):
        synth.synthesize(CLEAN, 2, seed=0, workers=1)
