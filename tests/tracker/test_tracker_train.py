"""`posenet train` of tracker nets: resume after an interruption, a damaged resume state, bad flags (#14 items 1, 9)."""

from __future__ import annotations

import keras
import pytest
from tracker_fixtures import scene_file

from posenet.cli import main
from posenet.tracker import train as tracker_train
from posenet.tracker.data import TrackerDataConfig
from posenet.training.runs import Run


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
])
def test_bad_tracker_flags_are_one_line(splits, tmp_path, capsys, extra, message):
    assert main(argv(tracker_config(splits, tmp_path / "runs"), *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outside").exists()
