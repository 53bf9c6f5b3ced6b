"""`posenet evaluate`: summaries, per-sample CSV, JSON keys, predictors and bad input."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from posenet import cli, evaluate
from posenet.core import evaluation, geometry, h5format
from posenet.study import predict
from posenet.study.pipeline import PipelineConfig

SUMMARY_KEYS = {"n", "failures", "mae_yaw", "mae_pitch", "mae_roll", "mae", "geodesic_mean", "geodesic_median", "acc10",
                "bias_yaw", "bias_pitch", "bias_roll"}
COUNT = 10


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    """A small dataset file: textured images, boxes and random poses."""
    rng = np.random.default_rng(1)
    images = [h5format.encode_image(cv2.GaussianBlur(rng.integers(0, 255, (64, 80, 3), np.uint8), (5, 5), 0))
              for _ in range(COUNT)]
    fields = {"images": images, "quats": geometry.rotvec_to_quat(rng.normal(0, 0.5, (COUNT, 3))).astype(np.float32),
              "rois": np.tile(np.float32([[10, 8, 60, 58]]), (COUNT, 1))}
    return h5format.write_dataset(tmp_path_factory.mktemp("eval") / "test.h5", fields)


class Oracle:
    """Returns the truth, optionally with some failed rows."""

    name = "oracle"

    def __init__(self, failed: tuple[int, ...] = ()):
        self.failed = list(failed)

    def predict(self, dataset):
        quats = np.array(dataset["quats"], dtype=np.float64)
        quats[self.failed] = np.nan
        return quats


def test_perfect_predictor_gives_zero_errors(data_file):
    result = evaluation.evaluate(Oracle(), h5format.read_dataset(data_file))
    assert set(result.summary) == SUMMARY_KEYS
    assert result.summary["n"] == COUNT and result.summary["failures"] == 0
    for key in SUMMARY_KEYS - {"n", "failures", "acc10"}:
        assert result.summary[key] == pytest.approx(0.0, abs=1e-3)
    assert result.summary["acc10"] == 1.0


def test_nan_rows_are_failures_left_out_of_means(data_file):
    dataset = h5format.read_dataset(data_file)
    result = evaluation.evaluate(Oracle(failed=(2, 5)), dataset)
    assert result.summary["failures"] == 2 and result.summary["n"] == COUNT
    assert result.summary["mae"] == pytest.approx(0.0, abs=1e-3)
    assert np.isnan(result.errors["geodesic"][[2, 5]]).all()


def test_mean_pose_uses_the_training_split_only(data_file, tmp_path):
    train = np.tile(geometry.rotvec_to_quat([0.0, 0.3, 0.0]), (4, 1)).astype(np.float32)
    train_file = h5format.write_dataset(tmp_path / "train.h5", {
        "images": [h5format.encode_image(np.zeros((8, 8, 3), np.uint8))] * 4, "quats": train})
    predictor = evaluate.make_predictor("mean", train=train_file)
    prediction = predictor.predict(h5format.read_dataset(data_file))
    assert prediction.shape == (COUNT, 4)
    np.testing.assert_allclose(prediction, np.tile(geometry.canonical_quat(train[0]), (COUNT, 1)), atol=1e-6)


def _run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_writes_csv_and_json(data_file, tmp_path, capsys):
    status, out, _ = _run_cli(["evaluate", "mean", "--data", str(data_file), "--train", str(data_file),
                               "--csv", str(tmp_path / "s.csv"), "--json", str(tmp_path / "s.json")], capsys)
    assert status == 0
    assert "MAE" in out and "ms/image" in out and "s.json" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert set(summary) == SUMMARY_KEYS and summary["n"] == COUNT
    with open(tmp_path / "s.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == COUNT and tuple(rows[0]) == evaluation.CSV_COLUMNS
    assert [int(row["index"]) for row in rows] == list(range(COUNT))
    truth = geometry.ypr_deg(h5format.read_dataset(data_file)["quats"])
    np.testing.assert_allclose([float(rows[3][f"{a}_true"]) for a in ("yaw", "pitch", "roll")], truth[3], atol=1e-3)
    mean_geodesic = np.mean([float(row["geodesic"]) for row in rows])
    assert mean_geodesic == pytest.approx(summary["geodesic_mean"], abs=1e-3)


def _fake_run(run_dir: Path, input_size: int = 32) -> Path:
    """A run directory with a tiny (untrained) Keras checkpoint and its config, as train writes it."""
    import keras

    inputs = keras.Input((input_size, input_size, 3))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inputs)))
    run_dir.mkdir(parents=True)
    model.save(run_dir / "best.keras")
    pipe = asdict(PipelineConfig(input_size=input_size, normalization="unit"))
    (run_dir / "config.json").write_text(json.dumps({"train": {"model": "C1_NET"}, "pipeline": pipe}))
    return run_dir


def test_cli_evaluates_a_keras_run(data_file, tmp_path, capsys):
    run_dir = _fake_run(tmp_path / "run")
    status, out, err = _run_cli(["evaluate", str(run_dir), "--data", str(data_file),
                                 "--json", str(tmp_path / "r.json")], capsys)
    assert status == 0, err
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["n"] == COUNT and summary["failures"] == 0 and summary["mae"] > 0


@pytest.mark.parametrize("problem", ["missing", "malformed", "no-checkpoint", "unknown-target", "no-train"])
def test_bad_input_gives_one_clear_line(problem, data_file, tmp_path, capsys):
    data, target, extra = str(data_file), "mean", ["--train", str(data_file)]
    if problem == "missing":
        data = str(tmp_path / "absent.h5")
    elif problem == "malformed":
        (tmp_path / "bad.h5").write_bytes(b"\x89HDF\r\n garbage")
        data = str(tmp_path / "bad.h5")
    elif problem == "no-checkpoint":
        (tmp_path / "empty_run").mkdir()
        target, extra = str(tmp_path / "empty_run"), []
    elif problem == "unknown-target":
        target = "nonsense"
    else:
        extra = []
    json_path = tmp_path / "out.json"
    status, _, err = _run_cli(["evaluate", target, "--data", data, "--json", str(json_path), *extra], capsys)
    assert status == 2
    lines = [line for line in err.splitlines() if line.startswith("posenet: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    expected = {"missing": "absent.h5", "malformed": "bad.h5", "no-checkpoint": "checkpoint",
                "unknown-target": "nonsense", "no-train": "--train"}[problem]
    assert expected in lines[0]
    assert not json_path.exists()


@pytest.mark.parametrize("config_text, problem", [
    (json.dumps({"train": {"model": "C1_NET"}}), "no 'pipeline' settings"),
    ('{"train": {"model": "C1_NET"}, "pipeline": ', "cannot read the run's settings"),
    (json.dumps({"train": {"model": "C1_NET"}, "pipeline": {"no_such_field": 1}}), "not understood"),
], ids=["no-pipeline", "bad-json", "unknown-field"])
def test_a_run_with_a_bad_config_is_one_line_naming_it(config_text, problem, data_file, tmp_path, capsys):
    """A run dir whose config.json lacks "pipeline" (or is not JSON) is exit 2 and one stderr line, no KeyError."""
    run_dir = _fake_run(tmp_path / "run")
    (run_dir / "config.json").write_text(config_text)
    status, _, err = _run_cli(["evaluate", str(run_dir), "--data", str(data_file)], capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(run_dir / "config.json") in lines[0] and problem in lines[0]


@pytest.mark.parametrize("props, boxes", [({"boxes": "dlib"}, "dlib"), ({}, "file")])
def test_onnx_rotvec_predictor_crops_the_exported_boxes(props, boxes):
    """The face-box source comes from the export's metadata; older exports without it used the file's."""
    session = SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name="x")])
    metadata = {"posenet_task": "rotvec", "input_size": "32", "normalization": "unit", "margin": "0.2", **props}
    predictor = predict.OnnxRotvecPredictor(Path("net.onnx"), session, metadata)
    assert predictor.pipe.boxes == boxes and predictor.pipe.input_size == 32 and predictor.pipe.margin == 0.2


def test_a_tracker_run_is_loaded_and_pointed_to_export(data_file, tmp_path, capsys):
    """A pose_net run loads (its custom layers register) and evaluate says to export it first."""
    from posenet.training.registry import build_model
    from posenet.training.runs import load_run

    run = tmp_path / "pose_run"
    run.mkdir()
    build_model("pose_net").save(run / "best.keras")
    (run / "config.json").write_text(json.dumps({"train": {"model": "pose_net", "task": "pose"}}))
    model, _ = load_run(run)
    assert "quat" in model.output_names
    assert cli.main(["evaluate", str(run), "--data", str(data_file)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "posenet export" in err[0]


@pytest.mark.parametrize("flag", ["--json", "--csv"])
def test_an_output_over_the_evaluated_file_is_refused(flag, data_file, tmp_path, capsys):
    data = tmp_path / "data.h5"
    data.write_bytes(data_file.read_bytes())
    assert cli.main(["evaluate", "mean", "--data", str(data), "--train", str(data_file), flag, str(data)]) == 2
    assert "is also an input of this command" in capsys.readouterr().err
    assert data.read_bytes() == data_file.read_bytes()


def looping_rotvec_export(path: Path, size: int = 32) -> Path:
    """A study export (metadata posenet_task=rotvec) whose output waits on a Loop that never ends in practice."""
    import onnx
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["acc_in", "one"], ["acc_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [])],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
    nodes = [helper.make_node("Loop", ["trips", "true", "zero"], ["acc"], body=body),
             helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2], keepdims=0),
             helper.make_node("Mul", ["mean", "acc"], ["rotvec"])]
    graph = helper.make_graph(
        nodes, "looping_rotvec", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, size, size, 3])],
        [helper.make_tensor_value_info("rotvec", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor("trips", TensorProto.INT64, [], [10 ** 15]),
         helper.make_tensor("true", TensorProto.BOOL, [], [True]), helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {"posenet_task": "rotvec", "input_size": str(size), "normalization": "unit"})
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def test_a_study_export_that_never_finishes_is_stopped(data_file, tmp_path, capsys):
    """#14 item 5: a run of a study export is bounded too (--model-timeout), one line naming the file."""
    model = looping_rotvec_export(tmp_path / "endless.onnx")
    code, _, err = _run_cli(["evaluate", str(model), "--data", str(data_file), "--model-timeout", "0.3"], capsys)
    assert code == 2 and "endless.onnx: a model run took longer than 0.3 s and was stopped" in err
    assert "Traceback" not in err and err.count("posenet: error:") == 1  # (besides the progress bar)
