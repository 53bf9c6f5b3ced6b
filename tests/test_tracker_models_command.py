"""`posenet tracker-models --quick`: data, both trainings and both exports end to end, resumable."""

from __future__ import annotations

from pathlib import Path

from posenet import cli, tracker_models
from posenet.tracker import contract
from posenet.tracker import train as tracker_train


def test_one_command_makes_both_contract_models_and_reuses_its_work(tmp_path, capsys):
    args = ["tracker-models", "--quick", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "models")]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "[6/6] export the localizer" in out and "in all" in out
    for name, task in (("pose_net.onnx", "pose"), ("localizer.onnx", "localizer")):
        contract.require_contract(tmp_path / "models" / name, task)
    assert cli.main(args) == 0  # a second run renders and trains nothing again
    again = capsys.readouterr().out
    assert again.count("reused") == 6  # four data sets, two runs


def test_an_impossible_output_folder_fails_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert cli.main(["tracker-models", "--quick", "--workdir", str(tmp_path / "work"), "--out", str(blocker)]) == 2
    assert "a-file" in capsys.readouterr().err and not (tmp_path / "work").exists()


def test_distribute_reaches_both_trainings(tmp_path, monkeypatch, capsys):
    """`--distribute mirrored` is handed to the pose net's and the localizer's training (the
    rendering, training and export themselves are stubbed: tests/tracker covers a mirrored fit)."""
    trained = []

    def fit(config):
        trained.append((config.model, config.distribute))
        return Path(config.run_dir)

    monkeypatch.setattr(tracker_models, "render", lambda path, *args: path)
    monkeypatch.setattr(tracker_models, "export", lambda run_dir, out, *args, **kwargs: out)
    monkeypatch.setattr(tracker_train, "fit_tracker_model", fit)
    work = ["--quick", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "models")]
    assert cli.main(["tracker-models", *work, "--pose-model", "pose_net", "--distribute", "mirrored"]) == 0
    assert trained == [("pose_net", "mirrored"), ("localizer", "mirrored")]
    assert cli.main(["tracker-models", *work]) == 0  # default: one device
    assert trained[2:] == [("pose_mobilenet", None), ("localizer", None)]


def test_int8_by_default_only_where_it_is_faster(tmp_path, monkeypatch):
    """pose_mobilenet is exported int8 unless `--no-int8`, pose_net only with `--int8`; the localizer stays
    float (both measured slower as int8)."""
    exported = []
    monkeypatch.setattr(tracker_models, "render", lambda path, *args: path)
    monkeypatch.setattr(tracker_models, "export",
                        lambda run_dir, out, data, int8: exported.append((out.name, int8)) or out)
    monkeypatch.setattr(tracker_train, "fit_tracker_model", lambda config: Path(config.run_dir))
    work = ["--quick", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "models")]
    assert cli.main(["tracker-models", *work]) == 0
    assert exported == [("pose_net.onnx", True), ("localizer.onnx", False)]
    assert cli.main(["tracker-models", *work, "--no-int8"]) == 0
    assert exported[2:] == [("pose_net.onnx", False), ("localizer.onnx", False)]
    assert cli.main(["tracker-models", *work, "--pose-model", "pose_net"]) == 0  # slower as int8: float
    assert exported[4:] == [("pose_net.onnx", False), ("localizer.onnx", False)]
    assert cli.main(["tracker-models", *work, "--pose-model", "pose_net", "--int8"]) == 0
    assert exported[6:] == [("pose_net.onnx", True), ("localizer.onnx", False)]


def test_faces_sets_the_pose_nets_training_set_and_too_few_are_refused(tmp_path, monkeypatch, capsys):
    rendered = {}
    monkeypatch.setattr(tracker_models, "render", lambda path, mode, n, seed: rendered.setdefault(path.name, n) and path)
    monkeypatch.setattr(tracker_models, "export", lambda run_dir, out, *args, **kwargs: out)
    monkeypatch.setattr(tracker_train, "fit_tracker_model", lambda config: Path(config.run_dir))
    work = ["--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "models")]
    assert cli.main(["tracker-models", *work, "--faces", "1000"]) == 0
    assert rendered["face_train.h5"] == 1000
    assert rendered["scene_train.h5"] == tracker_models.FULL.scenes  # only the faces change
    rendered.clear()
    assert cli.main(["tracker-models", *work, "--faces", "10"]) == 2
    assert "--faces 10" in capsys.readouterr().err and not rendered


def _finished_run(run_dir: Path) -> float:
    """A run directory that looks trained; returns when it began (its config.json's time)."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text("{}")
    (run_dir / "done").write_text("")
    return (run_dir / "config.json").stat().st_mtime


def test_a_run_trained_before_its_data_were_rendered_again_is_kept_aside_and_retrained(tmp_path, monkeypatch,
                                                                                       capsys):
    import os

    runs, data = tmp_path / "runs", tmp_path / "data"
    old_run = runs / "pose_net"
    started = _finished_run(old_run)
    data.mkdir()
    train_file, val_file = data / "face_train.h5", data / "face_val.h5"
    for path in (train_file, val_file):
        path.write_bytes(b"rendered again")
    os.utime(train_file, (started + 60, started + 60))  # written after the run began
    trained = []
    monkeypatch.setattr(tracker_train, "fit_tracker_model", lambda config: trained.append(config) or config.run_dir)
    tracker_models.train("pose_net", None, train_file, val_file, runs, epochs=1)
    assert len(trained) == 1 and "training again" in capsys.readouterr().out
    assert (runs / "pose_net.stale-1" / "done").exists() and not old_run.exists()  # nothing lost
    started = _finished_run(old_run)
    for path in (train_file, val_file):
        os.utime(path, (started - 60, started - 60))
    tracker_models.train("pose_net", None, train_file, val_file, runs, epochs=1)
    assert len(trained) == 1 and "reused" in capsys.readouterr().out  # data older than the run: kept
