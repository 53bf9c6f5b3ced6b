"""The run directory (`posenet.training.runs.Run`): loading checkpoints that do not fit, resume states,
run names and failed attempts (#14 items 1, 8, 9, 10)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from posenet.core.errors import PosenetError
from posenet.training.registry import ModelConfig, build_model
from posenet.training.runs import BACKUP, BEST, LAST, Run, check_run_name


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A C1_NET checkpoint that takes 32 x 32 inputs."""
    path = tmp_path_factory.mktemp("net") / "net.keras"
    build_model("C1_NET", ModelConfig(input_size=32)).save(path)
    return path


def make_run(folder: Path, checkpoint: Path, input_size: int = 32, model: str = "C1_NET") -> Run:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"train": {"model": model, "input_size": input_size}}))
    for name in (BEST, LAST):
        (folder / name).write_bytes(checkpoint.read_bytes())
    return Run(folder)


def rename_a_class(path: Path, class_name: str) -> None:
    """Rewrite a .keras file so that its config names `class_name` for its first layer after the input."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1].update(class_name=class_name, module="nowhere")
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_a_run_loads_its_checkpoint(checkpoint, tmp_path):
    assert make_run(tmp_path / "run", checkpoint).load_model().input_shape == (None, 32, 32, 3)


def test_a_checkpoint_of_another_input_size_is_one_line(checkpoint, tmp_path):
    run = make_run(tmp_path / "run", checkpoint, input_size=64)
    with pytest.raises(PosenetError, match=r"best.keras: it takes 32x32 inputs, but .*config.json says input_size 64"):
        run.load_model()


def test_a_checkpoint_naming_an_unknown_class_is_one_line(checkpoint, tmp_path):
    run = make_run(tmp_path / "run", checkpoint)
    for name in (BEST, LAST):
        rename_a_class(run.path / name, "NoSuchLayer")
    with pytest.raises(PosenetError, match="names the class 'NoSuchLayer', which this posenet does not know") as info:
        run.load_model()
    assert "\n" not in str(info.value) and len(str(info.value)) < 600
    (run.path / LAST).write_bytes(checkpoint.read_bytes())  # the last checkpoint is fine: used, with a warning
    with pytest.warns(UserWarning, match="NoSuchLayer.*using last.keras instead"):
        run.load_model()


def test_a_config_naming_an_unknown_model_is_one_line(checkpoint, tmp_path):
    run = make_run(tmp_path / "run", checkpoint, model="C9_NET")
    with pytest.raises(PosenetError, match=r"config.json: unknown model 'C9_NET'"):
        run.load_model()


def write_state(backup: Path, suffix: str = "", epoch: int = 2, damaged: bool = False) -> None:
    backup.mkdir(exist_ok=True)
    weights = backup / f"latest.weights.h5{suffix}"
    with h5py.File(weights, "w") as f:
        f.create_dataset("w", data=np.arange(10000.0))
    if damaged:
        weights.write_bytes(weights.read_bytes()[:96])
    (backup / f"training_metadata.json{suffix}").write_text(json.dumps({"epoch": epoch, "batch": 0}))


def test_a_damaged_resume_state_falls_back_to_its_copy(tmp_path):
    run = Run(tmp_path)
    write_state(tmp_path / BACKUP, damaged=True, epoch=2)
    write_state(tmp_path / BACKUP, ".bkp", epoch=1)
    with pytest.warns(UserWarning, match="resume state is damaged.*previous epoch's copy"):
        run.check_resume_state()
    metadata = json.loads((tmp_path / BACKUP / "training_metadata.json").read_text())
    assert metadata["epoch"] == 1
    with h5py.File(tmp_path / BACKUP / "latest.weights.h5") as f:
        assert f["w"].shape == (10000,)


@pytest.mark.parametrize("copy", ["none", "damaged", "bad metadata"])
def test_a_resume_state_damaged_beyond_its_copy_is_one_line_offering_to_start_over(tmp_path, copy):
    write_state(tmp_path / BACKUP, damaged=True)
    if copy == "damaged":
        write_state(tmp_path / BACKUP, ".bkp", damaged=True)
    if copy == "bad metadata":
        write_state(tmp_path / BACKUP, ".bkp")
        (tmp_path / BACKUP / "training_metadata.json.bkp").write_text('{"epo')
    backup = tmp_path / BACKUP
    with pytest.raises(PosenetError, match=f"{backup}: the resume state is damaged .* delete {backup} to train"):
        Run(tmp_path).check_resume_state()


def test_no_state_and_a_good_state_pass(tmp_path):
    Run(tmp_path).check_resume_state()
    write_state(tmp_path / BACKUP)
    Run(tmp_path).check_resume_state()


@pytest.mark.parametrize("name", ["..", ".", "../..", "a/b", "/abs", "", " x"])
def test_run_names_stay_inside_the_logdir(name):
    with pytest.raises(PosenetError, match="--run-name .*: must be one folder name inside --logdir"):
        check_run_name(name)
    check_run_name("C1_NET-mse")
    check_run_name(None)


def test_a_failed_attempt_removes_only_a_new_folder_without_a_saved_epoch(tmp_path, capsys):
    new = Run(tmp_path / "new")
    with pytest.raises(RuntimeError), new.attempt():
        new.write_config({"train": {}})
        raise RuntimeError("crash")
    assert not new.path.exists() and "removed (no epoch finished)" in capsys.readouterr().err
    kept = Run(tmp_path / "kept")
    with pytest.raises(RuntimeError), kept.attempt():
        kept.write_config({"train": {}})
        (kept.path / LAST).write_bytes(b"x")
        raise RuntimeError("crash")
    assert (kept.path / LAST).exists() and "the same command resumes this run" in capsys.readouterr().err
    old = Run(tmp_path / "old")
    old.write_config({"train": {}})
    with pytest.raises(RuntimeError), old.attempt():
        raise RuntimeError("crash")
    assert (old.path / "config.json").exists()  # not made by this attempt: left alone


def test_a_run_directory_that_cannot_be_created_is_one_line(tmp_path):
    """#14 item 8: `posenet train --logdir /proc/runs` ended in a FileNotFoundError traceback."""
    (tmp_path / "afile").write_text("x")
    with pytest.raises(PosenetError, match="cannot create the run directory"):
        Run(tmp_path / "afile" / "run").write_config({"train": {}})
