"""End to end: `posenet train` a tracker net for one tiny epoch, `posenet export` (float and --int8),
check contract and parity."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from tracker_fixtures import face_file, scene_file

from posenet import evaluate, export, quantize
from posenet.cli import main
from posenet.core import geometry, h5format
from posenet.core.errors import PosenetError
from posenet.tracker import contract


def _train(tmp_path, model: str, make_file, count: int, extra=()) -> str:
    train = make_file(tmp_path / f"{model}_train.h5", count, seed=1)
    val = make_file(tmp_path / f"{model}_val.h5", 4, seed=2)
    logdir = tmp_path / "runs"
    assert main(["train", "--model", model, "--train", str(train), "--val", str(val), "--logdir", str(logdir),
                 "--epochs", "1", "--batch-size", "4", *extra]) == 0
    return str(logdir / model)


@pytest.fixture(scope="module")
def pose_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("pose"), "pose_net", face_file, 8)


@pytest.fixture(scope="module")
def localizer_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("localizer"), "localizer", scene_file, 8)


def test_pose_run_layout(pose_run):
    done = json.loads(open(f"{pose_run}/done").read())
    assert done["epochs"] == 1 and np.isfinite(done["best_val_loss"]) and "val_geodesic_deg" in done


def test_pose_export_follows_the_contract(pose_run, tmp_path, capsys):
    out = tmp_path / "pose.onnx"
    assert main(["export", pose_run, "--out", str(out), "--opentrack"]) == 0
    assert "Opentrack contract ok" in capsys.readouterr().out
    assert contract.check_pose_model(out) == []
    model = onnx.load(str(out))
    assert model.model_version == 4 and model.doc_string == contract.POSE_DOC_STRING
    assert [o.name for o in model.graph.output] == [spec.name for spec in contract.POSE_OUTPUTS]
    assert not (tmp_path / "pose.onnx.tmp").exists()


def test_full_export_parity_and_dynamic_batch(pose_run, tmp_path):
    out = tmp_path / "full.onnx"
    summary = export.export_run(pose_run, out, "full")
    assert summary["max_abs_diff"] <= export.PARITY_TOLERANCE and summary["real"] > 0
    assert set(summary["per_output"]) == {"quat", "pos_size", "box", "keypoints", "rotaxis_scales_tril",
                                          "pos_size_scales_tril"}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    outputs = session.run(["keypoints"], {"x": np.zeros((3, 129, 129, 1), np.float32)})
    assert outputs[0].shape == (3, 68, 3)
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["posenet_task"] == "pose" and props["layout"] == "NHWC"


def test_localizer_export_follows_the_contract(localizer_run, tmp_path):
    out = tmp_path / "localizer.onnx"
    summary = export.export_run(localizer_run, out, "opentrack")
    assert summary["max_abs_diff"] <= export.PARITY_TOLERANCE
    assert contract.check_localizer(out) == []


def test_study_run_exports_rotvec(tmp_path):
    run = _train(tmp_path, "C1_NET", face_file, 8, ["--input-size", "32", "--run-name", "C1_NET"])
    out = tmp_path / "c1.onnx"
    summary = export.export_run(run, out, "full")
    assert summary["per_output"].keys() == {"rotvec"} and summary["max_abs_diff"] <= export.PARITY_TOLERANCE
    model = onnx.load(str(out))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["posenet_task"] == "rotvec" and props["input_size"] == "32" and props["normalization"]
    assert props["boxes"] == json.loads(open(f"{run}/config.json").read())["pipeline"]["boxes"] == "file"
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][1:] == [32, 32, 3]
    with pytest.raises(PosenetError, match="--opentrack needs a pose_net or localizer run"):
        export.export_run(run, tmp_path / "no.onnx", "opentrack")
    assert main(["export", run, "--out", str(tmp_path / "no.onnx"), "--opentrack", "--int8"]) == 2
    assert not (tmp_path / "no.onnx").exists()

    # `posenet evaluate` runs the ONNX file with the run's own preprocessing (from the metadata)
    test_file = face_file(tmp_path / "test.h5", 6, seed=3)
    dataset = h5format.read_dataset(test_file)
    onnx_quats = evaluate.make_predictor(str(out)).predict(dataset)
    keras_quats = evaluate.make_predictor(run).predict(dataset)
    assert np.isfinite(onnx_quats).all()
    assert geometry.geodesic_deg(onnx_quats, keras_quats).max() < 1e-3


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


INT8_LINE = re.compile(r"int8 quaternion vs float over (\d+) patches: mean ([\d.]+) deg, max ([\d.]+) deg; "
                       r"single-thread ms per input: float ([\d.]+), int8 ([\d.]+) \(speed-up ([\d.]+)x\); "
                       r"size (\d+) KiB -> (\d+) KiB")


def test_int8_pose_export(pose_run, tmp_path, capsys):
    out = tmp_path / "pose_int8.onnx"
    assert main(["export", pose_run, "--out", str(out), "--opentrack", "--int8"]) == 0
    printed = capsys.readouterr().out
    match = INT8_LINE.search(printed)
    assert match and "int8 contract ok" in printed, printed
    count, mean, worst, float_ms, int8_ms, speedup, float_kib, int8_kib = (float(v) for v in match.groups())
    assert count == 4 and 0 <= mean <= worst and float_ms > 0 and int8_ms > 0 and speedup > 0  # 4 = the val file
    assert contract.check_pose_model(out) == []
    assert int8_kib < float_kib and round(out.stat().st_size / 1024) == int8_kib
    model = onnx.load(str(out))
    assert any(node.op_type == "QuantizeLinear" for node in model.graph.node)
    assert model.model_version == contract.POSE_MODEL_VERSION and model.doc_string == contract.POSE_DOC_STRING
    assert {p.key: p.value for p in model.metadata_props}["quantized"] == "int8"
    assert list(tmp_path.iterdir()) == [out]  # nothing temporary left beside it


def test_int8_localizer_export(localizer_run, tmp_path):
    out = tmp_path / "localizer_int8.onnx"
    figures = export.export_run(localizer_run, out, "opentrack", int8=True)["int8"]
    assert contract.check_localizer(out) == []
    assert figures["int8_bytes"] < figures["float_bytes"] and figures["logit_max"] >= figures["logit_mean"] >= 0
    assert np.isfinite(figures["box_max"]) and "quaternion" not in quantize.summary_line("localizer", figures)


@pytest.mark.parametrize("extra, message", [
    ([], "--int8 quantises Opentrack's contract; add --opentrack"),
    (["--opentrack", "--data", "missing.h5"], "missing.h5: no such dataset file; --int8 calibrates on rendered crops"),
])
def test_int8_bad_input_is_one_line(pose_run, tmp_path, capsys, extra, message):
    out = tmp_path / "x.onnx"
    assert main(["export", pose_run, "--out", str(out), "--int8", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()
