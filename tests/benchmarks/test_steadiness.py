"""`posenet bench steadiness`: frame-to-frame rotation, measured on a short synthetic clip with tiny
contract models (a pose net whose rotation follows the patch's brightness, so it wobbles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, save

from posenet.benchmarks import steadiness
from posenet.core import geometry
from posenet.tracker import track

WOBBLE = [2.0, 0.0, 0.0, 0.0]  # quat = (0, 0, 0, 1) + WOBBLE * mean(x): a rotation about x that follows the patch


def contract_model(path: Path, hw: tuple[int, int], outputs: dict[str, list], version: int,
                   wobble: str | None = None) -> Path:
    """Input x [1, 1, H, W]; constant outputs, the one named `wobble` plus WOBBLE * mean(x)."""
    nodes = [helper.make_node("ReduceMean", ["x"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "wobble"], ["tilt"])]
    initializers = [helper.make_tensor("wobble", TensorProto.FLOAT, [1, 4], WOBBLE)]
    graph_outputs = []
    for name, values in outputs.items():
        initializers.append(helper.make_tensor(f"{name}_value", TensorProto.FLOAT, [1, len(values)], values))
        nodes.append(helper.make_node("Add", [f"{name}_value", "tilt"] if name == wobble else [f"{name}_value", "zero"],
                                      [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, len(values)]))
    initializers.append(helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]))
    graph = helper.make_graph(nodes, "wobble", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, *hw])],
                              graph_outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version, model.model_version = 8, version
    save(model, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A folder with a localizer and a wobbling pose net under Opentrack's file names."""
    folder = tmp_path_factory.mktemp("models")
    contract_model(folder / track.MODEL_FILES["localizer"][1], (224, 288), {"logit_box": [4.0, -0.3, -0.4, 0.3, 0.4]}, 0)
    contract_model(folder / track.MODEL_FILES["pose"][1], (129, 129),
                   {"pos_size": [0.0, 0.0, 0.5], "quat": [0.0, 0.0, 0.0, 1.0], "box": [-0.9, -0.9, 0.9, 0.9]}, 4,
                   wobble="quat")
    return folder


def test_frame_rotations_skip_missing_frames():
    q = [geometry.aflw_to_quat(np.radians([a, 0.0, 0.0])) for a in (0.0, 1.0, 3.0, 10.0)]
    angles = steadiness.frame_rotations([q[0], q[1], None, q[2], q[3]])
    assert angles == pytest.approx([1.0, 7.0])
    figures = steadiness.summarize([q[0], q[1], None, q[2], q[3]])
    assert figures.pairs == 2 and figures.tracked == 4 and figures.median_deg == pytest.approx(4.0)
    assert np.isnan(steadiness.summarize([None, q[0]]).median_deg)


def test_benchmark_on_the_synthetic_clip(models, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(steadiness, "STILL_VIDEO", tmp_path / "missing.mp4")  # the synthetic head stands in
    monkeypatch.setattr(steadiness, "SYNTH_FRAMES", {True: 12, False: 12})
    monkeypatch.setattr(track, "OPENTRACK_MODELS", models)
    monkeypatch.setattr(track, "OUR_MODELS", tmp_path / "none")
    lines = steadiness.benchmark(quick=True)
    rows = [line for line in lines if line.startswith("| Opentrack")]
    assert len(rows) == len(steadiness.SMOOTHING) and "synthetic moving head (12 frames" in lines[0]
    medians = {row.split("|")[3].strip(): float(row.split("|")[4]) for row in rows}
    assert all(row.split("|")[6].strip() == "12/12" for row in rows)
    assert medians["1"] > 0 and medians["0.3"] < medians["1"]  # the brightness wobble is there, and smoothed
    assert "median" in capsys.readouterr().out


def test_measure_with_our_pose_net_given(models, monkeypatch, tmp_path):
    monkeypatch.setattr(track, "OPENTRACK_MODELS", models)
    monkeypatch.setattr(track, "OUR_MODELS", tmp_path / "none")  # no localizer of ours, whatever work/ holds
    pose = models / track.MODEL_FILES["pose"][1]
    sets = steadiness.model_sets(pose)
    assert [label for label, *_ in sets] == ["Opentrack", "ours pose + Opentrack localizer"]
    frames = [np.full((240, 320), level, np.uint8) for level in (40, 40, 200, 200)]
    figures = steadiness.measure(track.Localizer(sets[1][1]), track.PoseEstimator(pose), frames, 56.0, "1")
    assert figures.tracked == 4 and figures.pairs == 3 and figures.median_deg == pytest.approx(0.0, abs=1e-3)
