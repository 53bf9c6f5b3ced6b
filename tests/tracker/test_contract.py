"""The Opentrack contract checker and the shared preprocessing (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from posenet.core.errors import PosenetError
from posenet.tracker import contract

OPENTRACK_POSE = "head-pose-0.4-small-int8.onnx"
OPENTRACK_LOCALIZER = "head-localizer.onnx"


def _pose_like(path, input_shape=(1, 1, 129, 129), names=("pos_size", "quat", "box"),
               sizes=(3, 4, 4), version=contract.POSE_MODEL_VERSION, input_name="x"):
    """A tiny ONNX graph: global mean of the input, broadcast into each named output."""
    nodes = [helper.make_node("ReduceMean", [input_name], ["m"], axes=[1, 2, 3], keepdims=0)]
    outputs, inits = [], []
    for name, size in zip(names, sizes):
        inits.append(helper.make_tensor(f"w_{name}", TensorProto.FLOAT, [1, size], np.ones(size)))
        nodes.append(helper.make_node("Unsqueeze", ["m", "ax"], [f"u_{name}"]))
        nodes.append(helper.make_node("Mul", [f"u_{name}", f"w_{name}"], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, size]))
    inits.append(helper.make_tensor("ax", TensorProto.INT64, [1], [1]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.model_version = version
    onnx.save(model, str(path))
    return path


def test_opentrack_models_follow_the_contract(opentrack_models):
    assert contract.check_pose_model(opentrack_models / OPENTRACK_POSE) == []
    assert contract.check_localizer(opentrack_models / OPENTRACK_LOCALIZER) == []


def test_opentrack_models_are_not_each_other(opentrack_models):
    problems = contract.check_pose_model(opentrack_models / OPENTRACK_LOCALIZER)
    assert any("'quat' is missing" in p for p in problems)
    assert any("model version is 0" in p for p in problems)
    assert any("[1, 1, 224, 288]" in p for p in contract.check_localizer(opentrack_models / OPENTRACK_POSE))


def test_a_minimal_conforming_graph_passes(tmp_path):
    assert contract.check_pose_model(_pose_like(tmp_path / "ok.onnx")) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"input_shape": (1, 3, 129, 129)}, "1 channel"),
    ({"input_shape": (2, 1, 129, 129)}, "batch 1"),
    ({"input_shape": (1, 129, 129)}, "rank 3"),
    ({"input_name": "image"}, "named 'image'"),
    ({"version": 3}, "model version is 3"),
    ({"names": ("pos_size", "quat", "box"), "sizes": (3, 3, 4)}, "'quat' has shape [1, 3]"),
    ({"names": ("pos_size", "rotation", "box")}, "'quat' is missing"),
])
def test_broken_models_fail_with_a_clear_message(tmp_path, kwargs, message):
    problems = contract.check_pose_model(_pose_like(tmp_path / "bad.onnx", **kwargs))
    assert any(message in p and "bad.onnx" in p for p in problems), problems
    with pytest.raises(PosenetError, match="bad.onnx"):
        contract.require_contract(tmp_path / "bad.onnx", "pose")


def test_unreadable_or_missing_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    assert "not a readable ONNX model" in contract.check_pose_model(junk)[0]
    assert "no such model file" in contract.check_localizer(tmp_path / "none.onnx")[0]


def test_brightness_normalisation_rules():
    dark = np.full((129, 129), 40, np.uint8)
    np.testing.assert_allclose(contract.normalize_brightness(dark), 0.45 - 0.5, atol=1e-6)
    black = np.zeros((8, 8), np.uint8)
    black[0, 0] = 255  # p90 = 0 -> floor 5
    assert contract.normalize_brightness(black)[0, 0] == pytest.approx(255 * 0.45 / 5 - 0.5, rel=1e-6)
    bright = np.full((16, 16), 200, np.uint8)
    np.testing.assert_allclose(contract.normalize_brightness(bright), 200 / 255 - 0.5, atol=1e-6)
    batch = np.stack([dark[:16, :16], bright])
    np.testing.assert_allclose(contract.normalize_brightness(batch)[1], contract.normalize_brightness(bright))


def test_patch_units_round_trip_and_crop():
    box = np.array([10.0, 20.0, 50.0, 80.0])
    center, side = contract.patch_square(box)
    assert side == 63 and np.allclose(center, [30, 50])  # Opentrack: int(1.05 * max(w, h))
    corners = contract.patch_to_image(np.array([[-1.0, -1.0], [1.0, 1.0]]), center, side)
    np.testing.assert_allclose(corners, [[-1.5, 18.5], [61.5, 81.5]])
    np.testing.assert_allclose(contract.image_to_patch(corners, center, side), [[-1, -1], [1, 1]])
    gray = np.zeros((100, 100), np.uint8)
    gray[20:80, 0:60] = 255  # the face box, 1.5 px inside the patch on each side
    patch = contract.crop_patch(gray, box, 63)
    assert patch.shape == (63, 63)
    assert patch[3:-3, 3:-3].min() == 255 and patch[0, 0] < 255
    frame = contract.frame_to_image(np.array([-1.0, -1.0, 0.0, 1.0]), 288, 224)
    np.testing.assert_allclose(frame, [0, 0, 144, 224])
    np.testing.assert_allclose(contract.image_to_frame(frame, 288, 224), [-1, -1, 0, 1])


def test_opentrack_pose_model_agrees_with_our_conventions(shared_data, opentrack_models):
    """Their model, fed through our crop and normalisation, reads our quaternion frame and patch units."""
    import onnxruntime as ort

    from posenet.core import geometry
    from posenet.core.h5format import read_dataset

    dataset = read_dataset(shared_data / "opentrack_format_sample.h5")
    session = ort.InferenceSession(str(opentrack_models / OPENTRACK_POSE), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for i in range(len(dataset)):
        roi = dataset["rois"][i]
        patch = contract.crop_patch(contract.to_gray(dataset.image(i)), roi)
        out = dict(zip(names, session.run(None, {"x": contract.normalize_brightness(patch)[None, None]})))
        assert geometry.geodesic_deg(dataset["quats"][i], out["quat"][0]) < 15.0
        center, side = contract.patch_square(roi)
        head = contract.patch_to_image(out["pos_size"][:, None, :], center, side)[0, 0]
        np.testing.assert_allclose(head[:2], dataset["coords"][i][:2], atol=0.1 * side)
        assert head[2] == pytest.approx(dataset["coords"][i][2], rel=0.25)


def test_patch_centre_is_clamped_into_the_frame_for_training_and_runtime_alike():
    gray = np.zeros((100, 200), np.uint8)
    gray[:, 190:] = 255  # a bright strip at the right edge
    box = np.array([230.0, 40.0, 270.0, 80.0])  # drifted past the right edge
    center, side = contract.patch_square(box, contract.frame_size(gray))
    np.testing.assert_allclose(center, [200.0, 60.0])
    assert side == int(1.05 * 40)
    patch = contract.crop_patch(gray, box, size=int(side))
    assert patch[:, :8].mean() < 10 and patch[:, -8:].mean() > 245  # frame interior left, strip and edge right
    unclamped, _ = contract.patch_square(box)
    np.testing.assert_allclose(unclamped, [250.0, 60.0])


def test_localizer_input_is_the_aspect_crop_and_maps_boxes_back():
    gray = np.full((480, 800), 128, np.uint8)
    x, window = contract.localizer_input(gray)
    assert x.shape == contract.LOCALIZER_INPUT_HW and x.dtype == np.float32
    assert window == contract.aspect_crop(800, 480) == (80, 0, 640, 480)
    np.testing.assert_allclose(contract.localizer_box(np.array([-1.0, -1.0, 1.0, 1.0]), window), [80, 0, 720, 480])
