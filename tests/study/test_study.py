"""`posenet study --smoke`: every arm end to end, real-face columns, TensorBoard events, resume, atomic results."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from data_tools import synth
from posenet import cli
from posenet.core import h5format
from posenet.core.errors import PosenetError
from posenet.study import command as study

FIRST_ARMS = "C1_NET"  # the first invocation trains these two arms, the second the others
N_REAL = 12


def stand_in_real_faces(path: Path) -> Path:
    """A small file that says it is AFLW2000-3D (so the study applies that protocol): rendered faces."""
    import h5py

    synth.write_synth(path, synth.SynthConfig(size=64), N_REAL, seed=77)
    with h5py.File(path, "a") as handle:
        handle.attrs["source"] = "AFLW2000-3D stand-in for the tests"
    return path


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict:
    """Run the smoke study twice: a subset first (an "interrupted" study), then all arms."""
    root = tmp_path_factory.mktemp("study")
    real = stand_in_real_faces(root / "real.h5")
    base = ["study", "--smoke", "--workdir", str(root / "work"), "--results", str(root / "results"), "--real", str(real)]
    assert cli.main([*base, "--arms", FIRST_ARMS]) == 0
    runs = root / "work" / "runs"
    first = {arm: os.stat(runs / arm / "best.keras").st_mtime_ns for arm in ("C1_NET-mse", "C1_NET-geodesic")}
    assert cli.main(base) == 0
    return {"root": root, "runs": runs, "results": root / "results", "first": first, "base": base}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_csv_has_every_arm_and_the_mean_row_on_both_face_kinds(smoke):
    rows = _rows(smoke["results"] / "study.csv")
    assert tuple(rows[0]) == study.CSV_COLUMNS
    arms = {f"{row['model']}-{row['loss']}" for row in rows if row["model"] in study.MODELS}
    assert arms == set(study.ARMS) and "MOBILENET_QUAT-geodesic" in arms and "C_MOBILENET-mse" in arms
    assert any(row["model"] == "mean" for row in rows)
    for row in rows:
        assert float(row["mae"]) >= 0 and 0 <= float(row["acc10"]) <= 1
        assert float(row["real_mae"]) >= 0 and 0 <= float(row["real_acc10"]) <= 1 and row["real_failures"] == "0"
        if row["model"] in study.MODELS:
            assert int(row["params"]) > 0 and float(row["train_time_s"]) > 0
    weights = {row["model"]: row["weights"] for row in rows}
    assert weights == {"C1_NET": "scratch", "C2_NET": "scratch", "C_RESNET": "random, frozen",
                       "C_MOBILENET": "ImageNet, frozen", "MOBILENET_QUAT": "ImageNet, fine-tuned", "mean": "-"}


def test_markdown_and_plots_are_written(smoke):
    text = (smoke["results"] / "study.md").read_text()
    assert "accuracy@10deg" in text and "leakage" in text and "tensorboard --logdir" in text
    synthetic, real = text.split("## On real faces")
    for table in (synthetic, real):
        assert table.count("| C") == 8 and table.count("| MOBILENET_QUAT † | geodesic |") == 1
        assert "| mean |" in table
    assert f"**{N_REAL} real faces**" in real and "Transfer learning, in one line:** On synthetic faces" in text
    assert "frozen random features (C_RESNET offline)" in text and "frozen ImageNet features (C_MOBILENET)" in text
    for name in ("learning_curves.png", "error_vs_yaw.png", "cumulative_error.png", study.REAL_PLOT):
        assert (smoke["results"] / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _event_tags(directory: Path) -> tuple[set[str], set[str]]:
    """(tags, plugin names) of every event file under `directory`."""
    import tensorflow as tf

    tags, plugins = set(), set()
    for path in directory.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.add(value.tag)
                plugins.add(value.metadata.plugin_data.plugin_name)
    return tags, plugins


def test_tensorboard_events_for_every_run(smoke):
    for arm in study.ARMS:
        tags, plugins = _event_tags(smoke["runs"] / arm)
        assert "epoch_loss" in tags, arm
        assert any("geodesic" in tag for tag in tags), arm
        assert "hparams" in plugins, arm
        assert "images" in plugins, arm


def test_resume_skips_finished_arms(smoke, capsys):
    for arm, mtime in smoke["first"].items():  # the second invocation did not retrain the first arms
        assert os.stat(smoke["runs"] / arm / "best.keras").st_mtime_ns == mtime
    before = {arm: os.stat(smoke["runs"] / arm / "best.keras").st_mtime_ns for arm in study.ARMS}
    assert cli.main([*smoke["base"], "--arms", "C2_NET-mse"]) == 0
    assert "already trained" in capsys.readouterr().out
    assert os.stat(smoke["runs"] / "C2_NET-mse" / "best.keras").st_mtime_ns == before["C2_NET-mse"]


def test_resume_with_other_settings_fails_in_one_line(smoke, capsys):
    before = os.stat(smoke["runs"] / "C1_NET-mse" / "best.keras").st_mtime_ns
    assert cli.main([*smoke["base"], "--arms", "C1_NET-mse", "--epochs", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "C1_NET-mse: trained with epochs=1, this study asks 3" in err and "--workdir" in err
    assert len(err.splitlines()) == 1
    assert os.stat(smoke["runs"] / "C1_NET-mse" / "best.keras").st_mtime_ns == before


def test_boxes_and_schedule_options_reach_the_runs(smoke, monkeypatch):
    trained = []
    monkeypatch.setattr("posenet.study.train.train", lambda config: trained.append(config) or config.run_dir.mkdir(parents=True))
    monkeypatch.setattr(study, "evaluate_arm", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    args = ["study", "--smoke", "--workdir", str(smoke["root"] / "work-dlib"), "--results", str(smoke["root"] / "r"),
            "--arms", "C1_NET-mse", "--boxes", "dlib", "--schedule", "cosine"]
    assert cli.main(args) == 130  # stopped before evaluation: only the training settings matter here
    assert [(config.pipeline.boxes, config.schedule) for config in trained] == [("dlib", "cosine")]


def test_interrupted_results_writing_leaves_whole_files(smoke, monkeypatch):
    markdown = (smoke["results"] / "study.md").read_text()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    table = (smoke["results"] / "study.csv").read_text()
    monkeypatch.setattr(study, "write_markdown", interrupted)  # dies after the plots and CSV, before the report
    with pytest.raises(KeyboardInterrupt):
        study.run_study(study.PRESETS["tiny"], ["C1_NET-mse"], smoke["root"] / "work", smoke["results"])
    assert (smoke["results"] / "study.md").read_text() == markdown  # untouched, and so is its table
    assert (smoke["results"] / "study.csv").read_text() == table
    assert not list(smoke["results"].glob("*.tmp")) and not list(smoke["results"].glob(".staged-*"))


def test_a_subset_study_does_not_replace_the_full_report(smoke, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the default --results is results/ relative to here
    workdir = smoke["root"] / "work"
    assert cli.main(["study", "--smoke", "--workdir", str(workdir), "--arms", "C1_NET-mse", "--no-real"]) == 0
    assert not (tmp_path / "results").exists()
    assert [row["model"] for row in _rows(workdir / "results" / "study.csv")] == ["C1_NET", "mean"]
    report = (workdir / "results" / "study.md").read_text()
    assert "`posenet study --preset tiny --arms C1_NET-mse`" in report and "C2_NET 1" not in report
    assert "**Real faces:** not evaluated" in report
    assert str(workdir / "results" / "study.md") in capsys.readouterr().out


def test_pnp_oracle_row_needs_landmark_labels(tmp_path):
    rng = np.random.default_rng(0)
    fields = {"images": [h5format.encode_image(rng.integers(0, 255, (48, 48, 3), np.uint8)) for _ in range(3)],
              "quats": np.tile(np.float32([0, 0, 0, 1]), (3, 1)), "rois": np.tile(np.float32([8, 8, 40, 40]), (3, 1))}
    path = h5format.write_dataset(tmp_path / "no-landmarks.h5", fields)
    rows = study.baseline_rows({"train": path, "test": path}, h5format.read_dataset(path), with_pnp=True)
    assert [row.model for row, _ in rows] == ["mean", "pnp"]


def test_arms_option_and_bad_data():
    assert study.parse_arms("C_RESNET") == ["C_RESNET-mse", "C_RESNET-geodesic"]
    assert study.parse_arms("C1_NET-geodesic,C1_NET") == ["C1_NET-geodesic", "C1_NET-mse"]
    with pytest.raises(PosenetError, match="unknown arm"):
        study.parse_arms("VGG")
    with pytest.raises(PosenetError, match="no such dataset file"):
        study.given_splits(["/nonexistent/a.h5", "/nonexistent/b.h5", "/nonexistent/c.h5"])


def test_a_stale_cached_split_is_rendered_again(smoke, tmp_path, capsys):
    import shutil

    import h5py

    data_dir = shutil.copytree(smoke["root"] / "work" / "data", tmp_path / "data")
    paths = study.synthetic_splits(study.PRESETS["tiny"], data_dir)
    reused = {split: os.stat(path).st_mtime_ns for split, path in paths.items()}
    with h5py.File(paths["val"], "a") as handle:  # as if an older renderer had made it
        handle.attrs["source"] = "posenet-synth v0 mode=face seed=2002"
    assert study.synthetic_splits(study.PRESETS["tiny"], data_dir) == paths
    assert "rendering it again" in capsys.readouterr().out
    assert os.stat(paths["train"]).st_mtime_ns == reused["train"]  # current splits are kept
    with h5py.File(paths["val"], "r") as handle:
        assert handle.attrs["source"].startswith(synth.SOURCE)


def test_a_preset_arm_stores_the_settings_it_always_stored(tmp_path):
    """An arm's flat settings (config.json's "train") are the ones stored before TrainConfig nested
    them, key for key and in order, so old work directories are reused and the study's results stay."""
    splits = {"train": tmp_path / "t.h5", "val": tmp_path / "v.h5"}
    config = study.PRESETS["quick"].train_config("C_RESNET-geodesic", splits, tmp_path / "runs", "r50.h5")
    expected = {"model": "C_RESNET", "loss": "geodesic", "train": str(splits["train"]), "val": str(splits["val"]),
                "logdir": str(tmp_path / "runs"), "run_name": "C_RESNET-geodesic", "epochs": 30,
                "learning_rate": 0.001, "batch_size": 32, "input_size": 64, "schedule": "constant",
                "weights": "r50.h5", "trainable_from": None, "cache_features": None, "distribute": None, "seed": 0,
                "augment": True, "rotation_deg": 10.0, "flip": True, "photometric": False, "margin": 0.1,
                "boxes": "file", "normalization": "resnet"}
    assert list(config.settings().items()) == list(expected.items())
    assert config.run_dir == tmp_path / "runs" / "C_RESNET-geodesic" and config.net.input_size == 64


def test_the_modern_arm_gets_its_own_size_rate_weights_and_normalisation(tmp_path):
    splits = {"train": tmp_path / "t.h5", "val": tmp_path / "v.h5"}
    config = study.PRESETS["quick"].train_config("MOBILENET_QUAT-geodesic", splits, tmp_path / "runs", "r50.h5")
    settings = config.settings()
    assert (settings["input_size"], settings["learning_rate"], settings["weights"], settings["normalization"]) == (
        study.MOBILENET_INPUT, study.FINE_TUNE_RATE, "imagenet", "torch")
    scratch = study.PRESETS["quick"].train_config("C2_NET-mse", splits, tmp_path / "runs", "r50.h5").settings()
    assert scratch["weights"] is None and scratch["normalization"] == "resnet" and scratch["input_size"] == 64
    assert study.parse_arms("MOBILENET_QUAT") == ["MOBILENET_QUAT-geodesic"]


def test_real_faces_default_to_the_dev_split_and_say_so(tmp_path, monkeypatch, capsys):
    from posenet.core import paths

    monkeypatch.setattr(paths, "SHARED_DATA", tmp_path)
    assert study.default_real(None, True) is None and "real faces: none" in capsys.readouterr().out
    (tmp_path / study.DEV_SPLIT).write_bytes(b"")
    assert study.default_real(None, True).resolve() == tmp_path / study.DEV_SPLIT
    assert "AFLW2000-3D dev split" in capsys.readouterr().out
    assert study.default_real(None, False) is None
    with pytest.raises(PosenetError, match="--real nowhere.h5: no such file"):
        study.default_real("nowhere.h5", True)


def test_an_impossible_results_folder_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    work = tmp_path / "work"
    assert cli.main(["study", "--smoke", "--workdir", str(work), "--results", str(blocker / "results"),
                     "--arms", "C1_NET-mse", "--no-real"]) == 2
    err = capsys.readouterr().err
    assert "a-file is not a directory" in err and len(err.strip().splitlines()) == 1
    assert not (work / "runs").exists()


def test_an_arm_trained_on_data_rendered_since_is_kept_aside_and_trained_again(smoke, tmp_path, capsys):
    """A new renderer re-renders the cached splits; the finished arms describe the old data, so the
    study must not report them as results on the new data (it used to)."""
    import shutil

    import h5py

    from posenet.training import runs

    work = shutil.copytree(smoke["root"] / "work", tmp_path / "work")
    arm = "C1_NET-mse"
    old_model = (work / "runs" / arm / "best.keras").read_bytes()
    train = next((work / "data").glob("*-train-*.h5"))
    with h5py.File(train, "a") as handle:  # as if an older renderer had made it
        handle.attrs["source"] = "posenet-synth v0 mode=face seed=1001"
    base = [arg if arg != str(smoke["root"] / "work") else str(work) for arg in smoke["base"]]
    base[base.index("--results") + 1] = str(tmp_path / "results")
    assert cli.main([*base, "--arms", arm]) == 0
    assert "training again" in capsys.readouterr().out
    assert (work / "runs" / f"{arm}.stale-1" / "best.keras").read_bytes() == old_model  # nothing lost
    assert study.Run(work / "runs" / arm).done
    assert not runs.trained_on_older_data(work / "runs" / arm, [train])
