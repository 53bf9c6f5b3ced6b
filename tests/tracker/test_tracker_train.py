"""`posenet train` of tracker nets: resume after an interruption, a damaged resume state, bad flags (#14 items 1, 9),
`--distribute` (#13 item 2)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import pytest
import tensorflow as tf
from tracker_fixtures import face_file, scene_file

from posenet.cli import main
from posenet.tracker import train as tracker_train
from posenet.tracker.data import TrackerDataConfig
from posenet.training.runs import Run
from posenet.training.strategy import make_strategy

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    return scene_file(folder / "train.h5", 8, seed=1), scene_file(folder / "val.h5", 4, seed=2)


def tracker_config(splits, logdir, epochs: int = 3) -> tracker_train.TrackerTrainConfig:
    return tracker_train.TrackerTrainConfig(model="localizer", train=str(splits[0]), val=str(splits[1]),
                                            logdir=str(logdir), epochs=epochs, data=TrackerDataConfig(batch_size=4))


def argv(config: tracker_train.TrackerTrainConfig, *extra: str) -> list[str]:
    return ["train", "--model", config.model, "--train", config.train, "--val", config.val, "--logdir",
            config.logdir, "--epochs", str(config.epochs), "--batch-size", "4", *extra]


def test_an_interrupted_tracker_run_resumes_at_the_next_epoch(splits, tmp_path, monkeypatch):
    config = tracker_config(splits, tmp_path)

    class CrashAfterFirstBackup(keras.callbacks.BackupAndRestore):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if epoch == 0:
                raise RuntimeError("simulated crash after epoch 1")

    original = Run.backup_callback
    monkeypatch.setattr(Run, "backup_callback", lambda run: CrashAfterFirstBackup(str(run.path / "backup")))
    with pytest.raises(RuntimeError, match="simulated crash"):
        tracker_train.fit_tracker_model(config)
    monkeypatch.setattr(Run, "backup_callback", original)
    assert (config.run_dir / "backup" / "latest.weights.h5").is_file()
    tracker_train.fit_tracker_model(config)
    run = Run(config.run_dir)
    assert [row["epoch"] for row in run.history()] == ["0", "1", "2"] and run.summary()["epochs"] == 3
    assert not (config.run_dir / "backup").exists()


def test_a_damaged_tracker_resume_state_is_one_line(splits, tmp_path, capsys):
    config = tracker_config(splits, tmp_path)
    tracker_train.prepare_run_dir(Run(config.run_dir), config)  # an unfinished run of these settings
    backup = config.run_dir / "backup"
    backup.mkdir()
    (backup / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(88))  # 96 bytes: killed mid-write
    assert main(argv(config)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{backup}: the resume state is damaged" in err[0] and f"delete {backup}" in err[0]


def test_a_tracker_run_with_other_settings_is_not_resumed(splits, tmp_path):
    config = tracker_config(splits, tmp_path)
    tracker_train.prepare_run_dir(Run(config.run_dir), config)
    with pytest.raises(Exception, match="holds an unfinished run with epochs=3, not 5"):
        tracker_train.prepare_run_dir(Run(config.run_dir), tracker_config(splits, tmp_path, epochs=5))


@pytest.mark.parametrize("extra,message", [
    (["--lr", "nan"], "--lr nan: must be a finite positive number"),
    (["--run-name", "../outside"], "--run-name '../outside': must be one folder name inside --logdir"),
    (["--seed", "-1"], "--seed -1: must be a non-negative integer"),
    (["--distribute", "mirror"], "--distribute mirror: choose from mirrored, multiworker"),
])
def test_bad_tracker_flags_are_one_line(splits, tmp_path, capsys, extra, message):
    assert main(argv(tracker_config(splits, tmp_path / "runs"), *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outside").exists()


# --- --distribute ------------------------------------------------------------------------

def test_a_mirrored_tracker_run_trains_under_the_strategy(splits, tmp_path, monkeypatch, capsys):
    """`posenet train --distribute mirrored` (here MirroredStrategy over the one CPU): the training
    model and every weight of the net live in the strategy, and the run finishes and records it."""
    seen = {}
    fit = tracker_train.TrackerTraining.fit

    def spy(model, *args, **kwargs):
        seen["strategy"] = model.distribute_strategy
        seen["mirrored"] = [isinstance(weight.value, tf.distribute.DistributedValues) for weight in model.net.weights]
        return fit(model, *args, **kwargs)

    monkeypatch.setattr(tracker_train.TrackerTraining, "fit", spy)
    config = tracker_config(splits, tmp_path, epochs=1)
    assert main(argv(config, "--distribute", "mirrored")) == 0, capsys.readouterr().err
    assert isinstance(seen["strategy"], tf.distribute.MirroredStrategy) and all(seen["mirrored"])
    run = Run(config.run_dir)
    assert run.done and run.summary()["epochs"] == 1
    assert run.config()["train"]["distribute"] == "mirrored"


def test_both_tracker_nets_train_mirrored_in_one_process_on_two_replicas(splits, tmp_path):
    """`posenet tracker-models --distribute mirrored` trains the pose net, then the localizer, in one
    process: on two replicas (two logical CPUs, in a fresh process) the second training must not
    trip over the first one's all-reduces (TensorFlow's "Shape mismatch in the collective instance")."""
    faces = face_file(tmp_path / "faces.h5", 8, seed=1), face_file(tmp_path / "faces_val.h5", 4, seed=2)
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from posenet.tracker.data import TrackerDataConfig
        from posenet.tracker.train import TrackerTrainConfig, fit_tracker_model
        from posenet.training.strategy import make_strategy
        print("replicas", make_strategy("mirrored").num_replicas_in_sync)
        sets = {{"pose_net": {tuple(map(str, faces))!r}, "localizer": {tuple(map(str, splits))!r}}}
        for model, (train, val) in sets.items():
            config = TrackerTrainConfig(model=model, train=train, val=val, logdir={str(tmp_path)!r}, epochs=1,
                                        distribute="mirrored", data=TrackerDataConfig(batch_size=4))
            print(model, "done", (fit_tracker_model(config) / "done").is_file())
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "replicas 2" in result.stdout and "pose_net done True" in result.stdout
    assert "localizer done True" in result.stdout


def test_a_named_strategy_is_made_once_per_process():
    assert make_strategy("mirrored") is make_strategy("mirrored")


@pytest.mark.parametrize("distribute", [None, "mirrored"])
def test_a_run_written_before_distribute_existed_still_resumes(splits, tmp_path, distribute):
    """An unfinished run whose config.json has no "distribute" (written before the setting existed)
    is the same run, resumed with or without a strategy; the strategy never blocks a resume."""
    config = tracker_config(splits, tmp_path)
    tracker_train.prepare_run_dir(Run(config.run_dir), config)
    path = config.run_dir / "config.json"
    stored = json.loads(path.read_text())
    del stored["train"]["distribute"]
    path.write_text(json.dumps(stored))
    again = dataclasses.replace(config, distribute=distribute)
    tracker_train.prepare_run_dir(Run(config.run_dir), again)  # no "holds an unfinished run with ..."
    assert Run(config.run_dir).config()["train"]["distribute"] == distribute
    with pytest.raises(Exception, match="holds an unfinished run with epochs=3, not 5"):  # the others still count
        tracker_train.prepare_run_dir(Run(config.run_dir), tracker_config(splits, tmp_path, epochs=5))
