"""The ONNX Runtime tracker: geometry helpers, Opentrack's models on real and synthetic data,
the `posenet track` command end to end, and bad inputs.

Tests without ../shared use tiny contract models built here with onnx.helper (constant
outputs), so the command runs end to end everywhere.
"""

from __future__ import annotations

import csv
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import scipy.io
from onnx import TensorProto, helper

from posenet.cli import main
from posenet.core import geometry
from posenet.core.errors import PosenetError
from posenet.core.h5format import Dataset, encode_image
from posenet.tracker import contract, track
from posenet.tracker.udp import unpack

OPENTRACK_POSE = "head-pose-0.4-small-int8.onnx"
OPENTRACK_LOCALIZER = "head-localizer.onnx"


# --- tiny contract models -------------------------------------------------------------------

def constant_model(path: Path, input_hw: tuple[int, int], outputs: dict[str, list], version: int = 4,
                   extra_nodes: tuple = (), extra_initializers: tuple = (), nothing: str = "mean") -> Path:
    """An ONNX model with input x [1, 1, H, W] whose outputs are constants (plus 0 * `nothing`, by
    default the mean of x); each output gets shape [1, *shape of its values]. `extra_nodes` may
    compute another `nothing` from x (a loop, say), so that every output waits for it."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["mean"], keepdims=0), *extra_nodes,
             helper.make_node("Mul", [nothing, "zero"], ["nothing"])]
    initializers = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]), *extra_initializers]
    graph_outputs = []
    for name, values in outputs.items():
        array = np.asarray(values, dtype=np.float32)
        shape = [1, *array.shape]
        initializers.append(helper.make_tensor(f"{name}_value", TensorProto.FLOAT, shape, array.ravel().tolist()))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    return save_model(path, nodes, initializers, input_hw, graph_outputs, version)


def save_model(path: Path, nodes: list, initializers: list, input_hw: tuple[int, int], graph_outputs: list,
               version: int) -> Path:
    graph = helper.make_graph(nodes, "constant", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, *input_hw])],
                              graph_outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    model.model_version = version
    onnx.save(model, path)
    return path


def dummy_localizer(path: Path, logit: float = 4.0) -> Path:
    return constant_model(path, (224, 288), {"logit_box": [logit, -0.3, -0.4, 0.3, 0.4]}, version=0)


def dummy_pose(path: Path, **overrides) -> Path:
    outputs = {"pos_size": [0.0, 0.0, 0.5], "quat": [0.0, 0.0, 0.0, 1.0], "box": [-0.9, -0.9, 0.9, 0.9]}
    return constant_model(path, (129, 129), {**outputs, **overrides})


@pytest.fixture(scope="module")
def dummy_models(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("models")
    return dummy_localizer(folder / "loc.onnx"), dummy_pose(folder / "pose.onnx")


@pytest.fixture(scope="module")
def opentrack(opentrack_models) -> tuple[Path, Path]:
    return opentrack_models / OPENTRACK_LOCALIZER, opentrack_models / OPENTRACK_POSE


def write_frames(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"frame_{i:04d}.png"), frame)
    return folder


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --- helpers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size, crop", [((1280, 720), (160, 0, 960, 720)), ((640, 480), (0, 0, 640, 480)),
                                        ((480, 640), (0, 140, 480, 360))])
def test_localizer_sees_the_centred_4_3_crop(size, crop):
    assert contract.aspect_crop(*size) == crop


def test_head_position_inverts_the_projection():
    camera = geometry.camera_for_image(640, 480, track.focal_px(640, 56.0))
    center = np.array([-80.0, 35.0, 650.0])
    x, y, size = geometry.head_coords(center, camera)
    assert track.head_position_mm(np.array([x, y]), size, camera) == pytest.approx(center)


def test_smoother_blends_and_resets():
    smoother = track.Smoother(0.5)
    q0, q1 = geometry.aflw_to_quat([0.0, 0.0, 0.0]), geometry.aflw_to_quat([0.0, np.radians(20), 0.0])
    smoother(q0, np.zeros(3))
    quat, position = smoother(-q1, np.full(3, 10.0))  # sign-flipped input is the same rotation
    assert geometry.ypr_deg(quat)[0] == pytest.approx(10.0, abs=0.2)
    assert position == pytest.approx(np.full(3, 5.0))
    smoother.reset()
    quat, _ = smoother(q1, np.zeros(3))
    assert geometry.geodesic_deg(q1, quat) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(PosenetError, match="--smooth"):
        track.Smoother(0.0)


def noisy_still_head(count: int, noise_deg: float, seed: int = 0) -> list[np.ndarray]:
    """Quaternions of a still head seen through white rotation noise of `noise_deg` per axis."""
    rng = np.random.default_rng(seed)
    return [geometry.aflw_to_quat(np.radians(rng.normal(0.0, noise_deg, 3))) for _ in range(count)]


def jitter_deg(quats: list[np.ndarray]) -> float:
    return float(np.median(geometry.geodesic_deg(np.array(quats[:-1]), np.array(quats[1:]))))


def test_auto_smoother_weights_by_the_pose_nets_uncertainty():
    measured = noisy_still_head(60, 3.0)
    unsure, sure = track.Smoother(None), track.Smoother(None)
    unsure_out = [unsure(q, np.zeros(3), np.radians(5.0))[0] for q in measured]
    sure_out = [sure(q, np.zeros(3), np.radians(0.05))[0] for q in measured]
    assert jitter_deg(unsure_out) < jitter_deg(measured) / 3  # an unsure net is averaged
    assert geometry.geodesic_deg(np.array(sure_out), np.array(measured)).max() < 1.0  # a sure one followed
    assert track.parse_smooth("auto") is None and track.parse_smooth("0.5") == 0.5
    with pytest.raises(PosenetError, match="--smooth soft: expected a value in"):
        track.parse_smooth("soft")


def test_auto_smoother_follows_motion_within_two_frames():
    smoother = track.Smoother(None)
    still, turned = geometry.aflw_to_quat([0.0, 0.0, 0.0]), geometry.aflw_to_quat([0.0, np.radians(30), 0.0])
    for _ in range(20):
        smoother(still, np.zeros(3), np.radians(5.0))
    outputs = [smoother(turned, np.zeros(3), np.radians(5.0))[0] for _ in range(2)]
    assert geometry.geodesic_deg(turned, outputs[1]) < 3.0  # a 30 deg turn is motion, not noise
    plain = track.Smoother(None)  # a pose net without rotaxis_scales_tril: the fallback noise
    plain(still, np.zeros(3))
    assert np.isfinite(plain(turned, np.zeros(3))[0]).all()


def test_pose_estimator_maps_patch_units_to_frame_pixels(tmp_path):
    pose = track.PoseEstimator(dummy_pose(tmp_path / "p.onnx", pos_size=[0.5, -0.5, 0.25]))
    gray = np.full((480, 640), 100, np.uint8)
    face = pose(gray, np.array([200.0, 100.0, 300.0, 180.0]))  # centre (250, 140), side int(1.05 * 100)
    assert face.center == pytest.approx([250 + 0.5 * 52.5, 140 - 0.5 * 52.5])
    assert face.size == pytest.approx(0.25 * 52.5)
    assert face.box == pytest.approx([250 - 0.9 * 52.5, 140 - 0.9 * 52.5, 250 + 0.9 * 52.5, 140 + 0.9 * 52.5])
    assert face.quat == pytest.approx([0, 0, 0, 1])
    assert pose(gray, np.array([np.nan, 0, 1, 1])) is None


def test_tracker_runs_localizer_only_when_needed(dummy_models):
    tracker = track.Tracker(track.Localizer(dummy_models[0]), track.PoseEstimator(dummy_models[1]))
    gray = np.full((480, 640), 90, np.uint8)
    results = [tracker.step(gray, i) for i in range(20)]
    # the dummy pose net shrinks the box by 1.05 * 0.9 each frame; the IoU with the stored
    # localizer box falls under 0.25 after some frames, and only then does the localizer run again
    ran = [r.localized for r in results]
    assert ran[0] and 1 < tracker.localizer_runs < 5
    first_rerun = ran.index(True, 1)
    assert not any(ran[1:first_rerun])
    assert all(r.status == "ok" for r in results)


# --- Opentrack's own models ---------------------------------------------------------------------

def aflw2000_dataset(folder: Path) -> Dataset:
    """The AFLW2000-3D samples as a dataset: face box = extent of the 68 landmarks (x, y of pt3d_68)."""
    images, rois, quats = [], [], []
    for mat_path in sorted(folder.glob("*.mat")):
        labels = scipy.io.loadmat(mat_path)
        points = labels["pt3d_68"][:2]
        rois.append([points[0].min(), points[1].min(), points[0].max(), points[1].max()])
        quats.append(geometry.aflw_to_quat(labels["Pose_Para"][0, :3]))
        rgb = cv2.cvtColor(cv2.imread(str(mat_path.with_suffix(".jpg"))), cv2.COLOR_BGR2RGB)
        images.append(encode_image(rgb, lossy=False))
    return Dataset({"images": images, "rois": np.array(rois, np.float32), "quats": np.array(quats, np.float32)},
                   path=folder)


def test_opentrack_pose_model_on_aflw2000_matches_its_published_error(opentrack, shared_data):
    dataset = aflw2000_dataset(shared_data / "aflw2000")
    predictor = track.OnnxPosePredictor(opentrack[1])
    quats = predictor.predict(dataset)
    errors = geometry.euler_errors_deg(dataset["quats"], quats)
    mae = errors.mean()
    print(f"Opentrack pose model on {len(dataset)} AFLW2000-3D samples: MAE {mae:.2f} deg "
          f"(yaw {errors[:, 0].mean():.2f}, pitch {errors[:, 1].mean():.2f}, roll {errors[:, 2].mean():.2f})")
    assert predictor.name == Path(OPENTRACK_POSE).stem
    assert len(dataset) == 16 and mae < 6.0
    # the contract's quat is our camera frame as it comes: any axis swap or sign flip breaks this
    for flip in ([1, -1, -1, 1], [-1, 1, -1, 1], [-1, -1, 1, 1]):
        assert geometry.euler_errors_deg(dataset["quats"], quats * flip).mean() > 10.0


def test_predictor_needs_face_boxes(opentrack, tmp_path):
    dataset = Dataset({"images": [encode_image(np.zeros((8, 8, 3), np.uint8))]}, path=tmp_path / "x.h5")
    with pytest.raises(PosenetError, match="rois"):
        track.OnnxPosePredictor(opentrack[1]).predict(dataset)


def obama_frames(shared_data: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(shared_data / "video" / "obama.mp4"))
    frames = [capture.read()[1] for _ in range(count)]
    capture.release()
    return frames


def scheduled_checks(frames: int) -> int:
    """Face checks on a face tracked from frame 0 on: one every FACE_CHECK_FRAMES frames, none extra."""
    return (frames - 1) // track.FACE_CHECK_FRAMES


def test_tracker_follows_the_face_in_real_video(opentrack, shared_data):
    tracker = track.Tracker(track.Localizer(opentrack[0]), track.PoseEstimator(opentrack[1]))
    frames = obama_frames(shared_data, 20)
    results = [tracker.step(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), i, i / 25) for i, f in enumerate(frames)]
    assert [r.status for r in results] == ["ok"] * 20
    assert tracker.localizer_runs - tracker.face_checks == 1 and results[0].localized
    assert tracker.face_checks == scheduled_checks(len(results))  # a real face never looks doubtful
    centers = np.array([(r.box[:2] + r.box[2:]) / 2 for r in results])
    widths = np.array([r.box[2] - r.box[0] for r in results])
    # the face in this clip sits near (650, 280) of the 1280 x 720 frame, about 230 px wide
    assert np.all(np.abs(centers - [650, 280]).max(axis=1) < 80) and np.all((150 < widths) & (widths < 330))
    assert np.all(np.abs(np.diff(centers, axis=0)) < 25)  # the box moves smoothly with the head
    assert np.all(np.abs(np.array([r.ypr for r in results])) < 60)


def test_tracker_follows_the_synthetic_moving_head(opentrack):
    from posenet.tracker.video import render_moving_head

    video = render_moving_head(n_frames=36)
    tracker = track.Tracker(track.Localizer(opentrack[0]), track.PoseEstimator(opentrack[1]), video.fov_deg)
    results = [tracker.step(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), i) for i, f in enumerate(video.frames)]
    assert all(r.status == "ok" for r in results)
    errors = geometry.geodesic_deg(video.quats, np.array([r.quat for r in results]))
    print(f"synthetic moving head, Opentrack's models: median geodesic error {np.median(errors):.1f} deg, "
          f"localizer ran {tracker.localizer_runs} times in {len(results)} frames")
    assert np.median(errors) < 8.0
    assert tracker.localizer_runs - tracker.face_checks == 1  # only at the start: the track is never lost
    assert tracker.face_checks == scheduled_checks(len(results))
    depth = np.array([r.position_mm[2] for r in results])
    assert np.all(np.abs(depth / video.translations[:, 2] - 1) < 0.2)


# --- the command end to end -----------------------------------------------------------------------

def test_track_command_on_image_folder(dummy_models, tmp_path, capsys):
    frames = [np.full((240, 320, 3), 60 + 10 * i, np.uint8) for i in range(5)]
    folder = write_frames(tmp_path / "frames", frames)
    out_csv, out_video = tmp_path / "track.csv", tmp_path / "track.mp4"
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2.0)
    port = receiver.getsockname()[1]
    code = main(["track", "--images", str(folder), "--localizer", str(dummy_models[0]), "--pose", str(dummy_models[1]),
                 "--csv", str(out_csv), "--out", str(out_video), "--udp", f"127.0.0.1:{port}", "--smooth", "0.5"])
    assert code == 0
    rows = read_csv(out_csv)
    assert [r["status"] for r in rows] == ["ok"] * 5 and list(rows[0]) == list(track.CSV_COLUMNS)
    assert float(rows[0]["qw"]) == pytest.approx(1.0) and float(rows[0]["z_mm"]) > 0
    assert [float(r["time"]) for r in rows[:2]] == pytest.approx([0.0, 1 / 30], abs=1e-3)
    capture = cv2.VideoCapture(str(out_video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and capture.read()[1].shape == (240, 320, 3)
    packets = [unpack(receiver.recv(64)) for _ in range(5)]
    receiver.close()
    assert packets[0][2] == pytest.approx(float(rows[0]["z_mm"]) / 10, rel=1e-4)
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("tracked 5 frames (5 ok, 0 no face, 0 lost)") and "5 UDP packets" in summary
    assert not list(tmp_path.glob("*.tmp*"))


def test_track_command_on_video_file(dummy_models, tmp_path, capsys):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 240))
    for i in range(6):
        writer.write(np.full((240, 320, 3), 40 * i, np.uint8))
    writer.release()
    out_csv = tmp_path / "clip.csv"
    assert main(["track", "--video", str(path), "--localizer", str(dummy_models[0]), "--pose", str(dummy_models[1]),
                 "--csv", str(out_csv), "--max-frames", "4"]) == 0
    rows = read_csv(out_csv)
    assert len(rows) == 4 and [float(r["time"]) for r in rows] == pytest.approx([0, 0.04, 0.08, 0.12], abs=1e-3)
    assert "tracked 4 frames" in capsys.readouterr().out


def test_frames_without_face_give_empty_rows(tmp_path, capsys):
    localizer = dummy_localizer(tmp_path / "noface.onnx", logit=-4.0)
    folder = write_frames(tmp_path / "frames", [np.full((120, 160, 3), 128, np.uint8)] * 3)
    out_csv = tmp_path / "t.csv"
    assert main(["track", "--images", str(folder), "--localizer", str(localizer),
                 "--pose", str(dummy_pose(tmp_path / "p.onnx")), "--csv", str(out_csv)]) == 0
    rows = read_csv(out_csv)
    assert [r["status"] for r in rows] == ["no face"] * 3
    assert all(r["qw"] == "" and r["x0"] == "" for r in rows) and rows[0]["score"] != ""
    assert "0 ok, 3 no face" in capsys.readouterr().out


def test_opentrack_localizer_finds_no_face_in_blank_frames(opentrack, tmp_path):
    frames = [np.full((480, 640, 3), 128, np.uint8), np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)]
    out_csv = tmp_path / "t.csv"
    assert main(["track", "--images", str(write_frames(tmp_path / "f", frames)), "--localizer", str(opentrack[0]),
                 "--pose", str(opentrack[1]), "--csv", str(out_csv)]) == 0
    assert [r["status"] for r in read_csv(out_csv)] == ["no face", "no face"]


def test_track_command_on_real_video(opentrack, shared_data, tmp_path):
    out_csv = tmp_path / "obama.csv"
    assert main(["track", "--video", str(shared_data / "video" / "obama.mp4"), "--localizer", str(opentrack[0]),
                 "--pose", str(opentrack[1]), "--csv", str(out_csv), "--max-frames", "10"]) == 0
    assert [r["status"] for r in read_csv(out_csv)] == ["ok"] * 10


# --- bad input -------------------------------------------------------------------------------------

def run_failing(args: list[str], capsys) -> str:
    assert main(args) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # a progress bar may precede the error
    errors = [line for line in lines if "posenet: error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in "".join(lines)
    return errors[0]


def test_missing_and_unreadable_video(dummy_models, tmp_path, capsys):
    models = ["--localizer", str(dummy_models[0]), "--pose", str(dummy_models[1])]
    assert "no such video file" in run_failing(["track", "--video", str(tmp_path / "nope.mp4"), *models], capsys)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    assert "not a readable video" in run_failing(["track", "--video", str(garbage), *models, "--csv",
                                                  str(tmp_path / "x.csv")], capsys)
    assert not (tmp_path / "x.csv").exists()


def test_missing_camera_fails_quickly(dummy_models, capsys):
    start = time.monotonic()
    err = run_failing(["track", "--camera", "97", "--localizer", str(dummy_models[0]), "--pose", str(dummy_models[1])],
                      capsys)
    assert "--camera 97" in err and time.monotonic() - start < track.CAMERA_TIMEOUT_S + 5


def test_negative_camera_index_is_one_line(dummy_models, capsys):
    err = run_failing(["track", "--camera", "-1", "--localizer", str(dummy_models[0]), "--pose", str(dummy_models[1])],
                      capsys)
    assert "--camera -1: a camera index is 0 or more" in err


def test_image_folder_problems(dummy_models, tmp_path, capsys):
    models = ["--localizer", str(dummy_models[0]), "--pose", str(dummy_models[1])]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no images" in run_failing(["track", "--images", str(empty), *models], capsys)
    (empty / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    assert "broken.jpg: not a readable image" in run_failing(["track", "--images", str(empty), *models], capsys)


def test_model_breaking_the_contract(dummy_models, tmp_path, capsys):
    wrong = constant_model(tmp_path / "wrong.onnx", (129, 129), {"quaternion": [0, 0, 0, 1], "box": [0, 0, 1, 1]})
    err = run_failing(["track", "--images", str(tmp_path), "--localizer", str(dummy_models[0]), "--pose", str(wrong)],
                      capsys)
    assert "wrong.onnx" in err and "pose" in err
    not_onnx = tmp_path / "text.onnx"
    not_onnx.write_text("hello")
    assert "text.onnx" in run_failing(["track", "--images", str(tmp_path), "--localizer", str(not_onnx)], capsys)


def test_no_default_models_says_what_to_pass(monkeypatch, tmp_path):
    monkeypatch.setattr(track, "OUR_MODELS", tmp_path / "ours")
    monkeypatch.setattr(track, "OPENTRACK_MODELS", tmp_path / "theirs")
    with pytest.raises(PosenetError, match="--pose"):
        track.default_model("pose")


# --- face check: "ok" means a face (issue #14) --------------------------------------------------

FACE_GAIN = 40.0  # brightness localizer: logit = FACE_GAIN * mean(x); a frame brighter than mid-grey holds a face
STEADY_BOX = [-1 / contract.PATCH_SCALE, -1 / contract.PATCH_SCALE, 1 / contract.PATCH_SCALE, 1 / contract.PATCH_SCALE]


def brightness_localizer(path: Path) -> Path:
    """A localizer that sees a face (always in the same box) exactly when the frame is brighter than mid-grey."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "gain"], ["logit"]),
             helper.make_node("Reshape", ["logit", "shape"], ["logit_2d"]),
             helper.make_node("Concat", ["logit_2d", "box"], ["logit_box"], axis=1)]
    initializers = [helper.make_tensor("gain", TensorProto.FLOAT, [], [FACE_GAIN]),
                    helper.make_tensor("shape", TensorProto.INT64, [2], [1, 1]),
                    helper.make_tensor("box", TensorProto.FLOAT, [1, 4], [-0.3, -0.4, 0.3, 0.4])]
    outputs = [helper.make_tensor_value_info("logit_box", TensorProto.FLOAT, [1, 5])]
    return save_model(path, nodes, initializers, contract.LOCALIZER_INPUT_HW, outputs, version=0)


def steady_pose(path: Path, **overrides) -> Path:
    """A constant pose net whose next box is (to a pixel) the box it was given: no drift, so Opentrack's
    loop never runs the localizer again on its own."""
    return dummy_pose(path, **{"box": STEADY_BOX, **overrides})


def blobs(seed: int, low: int, high: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A BGR frame of smooth random blobs between grey levels low and high (a texture that survives
    the pixel shifts of a tracked box, unlike pixel noise)."""
    coarse = np.random.default_rng(seed).uniform(low, high, (size[0] // 10, size[1] // 10)).astype(np.float32)
    gray = cv2.resize(coarse, size[::-1], interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def statuses(tracker: track.Tracker, frames: list[np.ndarray]) -> list[str]:
    return [tracker.step(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), i).status for i, f in enumerate(frames)]


@pytest.fixture()
def face_models(tmp_path) -> tuple[track.Localizer, Path]:
    return track.Localizer(brightness_localizer(tmp_path / "bright.onnx")), tmp_path


def test_a_cut_away_from_the_face_is_not_ok(face_models):
    """Opentrack's loop kept "tracking" after a cut (its box does not drift); the patch check sees the cut."""
    localizer, folder = face_models
    tracker = track.Tracker(localizer, track.PoseEstimator(steady_pose(folder / "p.onnx")))
    face, other = blobs(0, 150, 255), blobs(1, 0, 100)
    got = statuses(tracker, [other] * 2 + [face] * 4 + [other] * 4 + [face] * 2)
    assert got == ["no face"] * 2 + ["ok"] * 4 + ["lost"] + ["no face"] * 3 + ["ok"] * 2
    assert tracker.face_checks == 1


def test_a_fading_face_is_dropped_within_the_check_period(face_models):
    """The same pattern darkening: no cut to see and no uncertainty output, so the periodic check finds it."""
    localizer, folder = face_models
    tracker = track.Tracker(localizer, track.PoseEstimator(steady_pose(folder / "p.onnx")))
    pattern = blobs(0, 150, 255).astype(np.float32)
    gains = np.r_[np.ones(3), np.linspace(1.0, 0.3, 4), np.full(2 * track.FACE_CHECK_FRAMES, 0.3)]
    frames = [(pattern * gain).astype(np.uint8) for gain in gains]
    got = statuses(tracker, frames)
    gone = next(i for i, f in enumerate(frames) if f.mean() < 127.5)  # the localizer's no-face boundary
    assert got[:gone] == ["ok"] * gone
    assert "ok" not in got[gone + track.FACE_CHECK_FRAMES - 1:]


@pytest.mark.parametrize("spread, expected", [(0.5, "lost"), (0.01, "ok")])
def test_an_unsure_pose_net_calls_the_localizer(face_models, spread, expected):
    """A darkened frame (same pattern: no cut) right after a localizer run: only the pose net's
    rotation uncertainty can ask for a check before the period is over."""
    localizer, folder = face_models
    pose = steady_pose(folder / "p.onnx", rotaxis_scales_tril=np.eye(3) * spread)
    tracker = track.Tracker(localizer, track.PoseEstimator(pose))
    pattern = blobs(0, 150, 255).astype(np.float32)
    got = statuses(tracker, [pattern.astype(np.uint8), (pattern * 0.3).astype(np.uint8)])
    assert got == ["ok", expected]


def test_face_check_off_is_opentracks_loop(face_models):
    localizer, folder = face_models
    tracker = track.Tracker(localizer, track.PoseEstimator(steady_pose(folder / "p.onnx")), face_check=False)
    face, other = blobs(0, 150, 255), blobs(1, 0, 100)
    assert statuses(tracker, [face] + [other] * 3) == ["ok"] * 4 and tracker.localizer_runs == 1


def fit_4_3(bgr: np.ndarray, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """The centred 4:3 crop (what the localizer sees of any frame) at 640 x 480."""
    x0, y0, width, height = contract.aspect_crop(bgr.shape[1], bgr.shape[0])
    return cv2.resize(bgr[y0:y0 + height, x0:x0 + width], size, interpolation=cv2.INTER_AREA)


# animal photos on which Opentrack's localizer alone finds no face (on dogs.jpg it finds one: p = 0.83)
ANIMALS = ("giraffe", "eagle", "horses", "dog")


def test_real_animal_photos_cut_with_a_real_face(opentrack, shared_data):
    """Issue #14: animal photos with a face cut in; with Opentrack's loop the animals after the face were "ok"."""
    animals = {name: fit_4_3(cv2.imread(str(shared_data / "negatives" / f"{name}.jpg"))) for name in ANIMALS}
    faces = [fit_4_3(f) for f in obama_frames(shared_data, 7)]
    frames = [animals["giraffe"]] * 2 + faces[:4] + [animals[name] for name in ANIMALS for _ in range(3)] + faces[4:]
    has_face = [any(f is face for face in faces) for f in frames]
    localizer, pose = track.Localizer(opentrack[0]), track.PoseEstimator(opentrack[1])

    def ok_frames(tracker: track.Tracker, label: str) -> list[bool]:
        ok = [status == "ok" for status in statuses(tracker, frames)]
        print(f"{label}: {sum(ok)} ok of {len(frames)} frames, {sum(o and not h for o, h in zip(ok, has_face))} "
              f"of them without a face")
        return ok

    assert ok_frames(track.Tracker(localizer, pose), "face check") == has_face
    # Opentrack's loop, what the tracker did before: the first animals after the face stay "ok"
    opentracks = ok_frames(track.Tracker(localizer, pose, face_check=False), "Opentrack's loop")
    assert opentracks[6] and not has_face[6]


# --- model runs with a time limit (issue #14) ----------------------------------------------------

HUGE_TRIP_COUNT = 10 ** 15


def looping_pose(path: Path) -> Path:
    """A pose net with a valid interface whose every output waits on a Loop of HUGE_TRIP_COUNT steps."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["acc_in", "one"], ["acc_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [])],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    loop = helper.make_node("Loop", ["trips", "true", "mean"], ["acc"], body=body)
    initializers = (helper.make_tensor("trips", TensorProto.INT64, [], [HUGE_TRIP_COUNT]),
                    helper.make_tensor("true", TensorProto.BOOL, [], [True]))
    outputs = {"pos_size": [0.0, 0.0, 0.5], "quat": [0.0, 0.0, 0.0, 1.0], "box": [-0.9, -0.9, 0.9, 0.9]}
    path = constant_model(path, (129, 129), outputs, extra_nodes=(loop,), extra_initializers=initializers,
                          nothing="acc")
    onnx.checker.check_model(onnx.load(path))  # a valid model: only its run time is wrong
    return path


def test_a_looping_pose_model_is_stopped(dummy_models, tmp_path, capsys):
    pose = looping_pose(tmp_path / "loop.onnx")
    start = time.monotonic()
    with pytest.raises(PosenetError, match=r"loop.onnx: a model run took longer than 0.3 s"):
        track.PoseEstimator(pose, timeout_s=0.3)
    folder = write_frames(tmp_path / "frames", [np.full((240, 320, 3), 128, np.uint8)])
    err = run_failing(["track", "--images", str(folder), "--localizer", str(dummy_models[0]), "--pose", str(pose),
                       "--model-timeout", "0.3"], capsys)
    assert "loop.onnx: a model run took longer than 0.3 s and was stopped (raise the limit with --model-timeout)" in err
    assert time.monotonic() - start < 10


def test_evaluate_stops_a_looping_pose_model(tmp_path, monkeypatch, capsys):
    from tracker_fixtures import face_file

    from posenet.tracker import runtime

    monkeypatch.setattr(runtime, "MODEL_TIMEOUT_S", 0.3)
    data = face_file(tmp_path / "faces.h5", 2)
    err = run_failing(["evaluate", str(looping_pose(tmp_path / "loop.onnx")), "--data", str(data)], capsys)
    assert "loop.onnx: a model run took longer than 0.3 s" in err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_model_timeout_must_be_positive(dummy_models, tmp_path, capsys, value):
    err = run_failing(["track", "--images", str(tmp_path), "--localizer", str(dummy_models[0]),
                       "--pose", str(dummy_models[1]), "--model-timeout", value], capsys)
    assert f"--model-timeout {float(value)}: expected a positive number of seconds" in err


# --- bad frames and bad model outputs (issue #14) ------------------------------------------------

def test_one_pixel_image_is_a_frame_without_face(dummy_models, tmp_path, capsys):
    frames = [np.full((1, 1, 3), 128, np.uint8), np.full((240, 320, 3), 128, np.uint8), np.zeros((1, 5, 3), np.uint8)]
    out_csv = tmp_path / "t.csv"
    assert main(["track", "--images", str(write_frames(tmp_path / "f", frames)), "--localizer", str(dummy_models[0]),
                 "--pose", str(dummy_models[1]), "--csv", str(out_csv)]) == 0
    assert [r["status"] for r in read_csv(out_csv)] == ["no face", "ok", "lost"]


@pytest.mark.parametrize("outputs", [{"quat": [0.0, 0.0, 0.0, 0.0]}, {"pos_size": [0.0, 0.0, 0.0]},
                                     {"pos_size": [0.0, 0.0, -0.5]}, {"pos_size": [0.0, 0.0, 1e-320]},
                                     {"quat": [0.0, 0.0, 0.0, 1e-9]}])
def test_pose_output_that_is_no_pose_gives_no_face(tmp_path, capsys, outputs):
    """A zero quaternion crashed `track`; a zero or tiny head size gave an infinite distance marked "ok",
    sent over UDP. Such frames now have no pose and send nothing."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    out_csv = tmp_path / "t.csv"
    folder = write_frames(tmp_path / "f", [np.full((240, 320, 3), 128, np.uint8)] * 2)
    assert main(["track", "--images", str(folder), "--localizer", str(dummy_localizer(tmp_path / "l.onnx")),
                 "--pose", str(dummy_pose(tmp_path / "p.onnx", **outputs)), "--csv", str(out_csv),
                 "--udp", f"127.0.0.1:{port}"]) == 0
    receiver.close()
    assert [r["status"] for r in read_csv(out_csv)] == ["no face"] * 2
    out = capsys.readouterr().out
    assert "0 ok, 2 no face" in out and "0 UDP packets" in out


@pytest.mark.parametrize("value", ["-1", "0"])
def test_max_frames_must_be_positive(dummy_models, tmp_path, capsys, value):
    folder = write_frames(tmp_path / "f", [np.full((240, 320, 3), 128, np.uint8)])
    err = run_failing(["track", "--images", str(folder), "--localizer", str(dummy_models[0]),
                       "--pose", str(dummy_models[1]), "--max-frames", value], capsys)
    assert f"--max-frames {value}: expected at least 1" in err


def test_runtime_imports_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, posenet.tracker.track, posenet.tracker.udp; "
            "assert not {'tensorflow', 'keras'} & set(sys.modules), sorted({'tensorflow', 'keras'} & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
