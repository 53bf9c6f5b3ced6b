"""Training runs: CLI end to end, TensorBoard contents, resume, feature cache, tf.distribute, bad input."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from posenet import cli
from posenet.core import geometry, h5format
from posenet.core.errors import PosenetError
from posenet.study import pipeline
from posenet.study.command import check_same_settings
from posenet.study.config import TrainConfig
from posenet.study.features import backbone_features, feature_batches, feature_cache_path, labels_path
from posenet.study.nets import c_resnet
from posenet.study.train import RESUME_KEYS, changed_setting, draw_axes, learning_rate_schedule, prepare_run_dir, train
from posenet.training.registry import ModelConfig, build_model
from posenet.training.runs import DONE, Run, load_run

REPO = Path(__file__).resolve().parents[2]
SIZE = 32


def axes_image(rotvec: np.ndarray) -> np.ndarray:
    """A 64x64 picture whose content depends on the pose (the head axes drawn), so nets can learn."""
    image = np.full((64, 64, 3), 40, np.uint8)
    draw_axes(image, rotvec, thickness=3)
    return image


def write_split(path: Path, count: int, seed: int, garbage_at: int | None = None) -> Path:
    """A small split of axes pictures; `garbage_at` makes that sample's buffer bytes no decoder reads."""
    rng = np.random.default_rng(seed)
    rotvecs = rng.normal(0, 0.4, (count, 3))
    images = [h5format.encode_image(axes_image(r), lossy=False) for r in rotvecs]
    if garbage_at is not None:
        images[garbage_at] = np.frombuffer(b"this is not an image at all" * 4, np.uint8)
    return h5format.write_dataset(path, {
        "images": images,
        "quats": geometry.rotvec_to_quat(rotvecs).astype(np.float32),
        "rois": np.tile([[8.0, 8.0, 56.0, 56.0]], (count, 1)).astype(np.float32),
    })


@pytest.fixture(scope="module")
def splits(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("splits")
    return write_split(folder / "train.h5", 48, 0), write_split(folder / "val.h5", 12, 1)


def config(splits, logdir: Path, input_size: int = SIZE, **overrides) -> TrainConfig:
    values = dict(model="C1_NET", train=str(splits[0]), val=str(splits[1]), logdir=str(logdir), epochs=2,
                  learning_rate=1e-3, pipeline=pipeline.PipelineConfig(input_size=input_size, batch_size=16),
                  net=ModelConfig(input_size=input_size))
    return TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="module")
def cli_run(splits, tmp_path_factory) -> tuple[Path, str]:
    """`posenet train` on the tiny splits, once for the tests that inspect a finished run."""
    logdir = tmp_path_factory.mktemp("runs")
    argv = ["train", "--model", "C1_NET", "--loss", "geodesic", "--train", str(splits[0]), "--val", str(splits[1]),
            "--logdir", str(logdir), "--epochs", "2", "--input-size", str(SIZE), "--batch-size", "16"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(argv) == 0
    return logdir / "C1_NET-geodesic", out.getvalue()


def test_cli_trains_and_writes_a_complete_run(cli_run):
    run_dir, printed = cli_run
    for name in ("config.json", "best.keras", "last.keras", "history.csv", DONE):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "backup").exists()  # removed once the fit completed
    assert [row["epoch"] for row in Run(run_dir).history()] == ["0", "1"]
    last_line = printed.strip().splitlines()[-1]
    assert last_line.startswith(f"trained C1_NET (geodesic): {run_dir}") and "acc@10" in last_line
    model, stored = load_run(run_dir)
    assert stored["train"]["loss"] == "geodesic" and stored["pipeline"]["input_size"] == SIZE
    assert model.predict(np.zeros((3, SIZE, SIZE, 3), "float32"), verbose=0).shape == (3, 3)


def test_a_damaged_best_checkpoint_falls_back_to_the_last(cli_run, tmp_path):
    import shutil

    run_dir = tmp_path / "damaged"
    shutil.copytree(cli_run[0], run_dir)
    assert not list(run_dir.glob(".*partial*"))  # checkpoints were written aside and renamed
    (run_dir / "best.keras").write_bytes((run_dir / "best.keras").read_bytes()[:96])  # a save cut short
    with pytest.warns(UserWarning, match="best.keras: cannot load it.*using last.keras"):
        model, _ = load_run(run_dir)
    assert model.output_shape == (None, 3)
    (run_dir / "last.keras").write_bytes(b"")
    with pytest.raises(PosenetError, match="best.keras: cannot load it.*last.keras: cannot load it"):
        load_run(run_dir)


def events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_has_scalars_hparams_and_images(cli_run):
    run_dir, _ = cli_run
    train_tags = set(events(run_dir / "train").Tags()["tensors"])
    val_tags = set(events(run_dir / "validation").Tags()["tensors"])
    metrics = {"epoch_loss", "epoch_geodesic_deg", "epoch_acc10", "epoch_mae_yaw", "epoch_mae_pitch", "epoch_mae_roll"}
    assert metrics <= train_tags and metrics <= val_tags
    assert len(events(run_dir / "validation").Tensors("epoch_loss")) == 2
    session = events(run_dir).PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in session
    experiment = events(run_dir.parent).PluginTagToContent("hparams")
    assert "_hparams_/experiment" in experiment
    images = events(run_dir / "images")
    (tag,) = images.Tags()["tensors"]
    tensor = images.Tensors(tag)[-1].tensor_proto
    assert len(tensor.string_val) == 2 + 6  # width, height, then one PNG per validation crop


def test_axes_are_drawn_from_the_rotation():
    image = np.zeros((100, 100, 3), np.uint8)
    draw_axes(image, np.zeros(3), thickness=1)  # identity: x right (red), y down (green)
    assert image[50, 80, 0] > 128 and image[80, 50, 1] > 128 and image[20, 50].sum() == 0


def test_resume_after_an_interruption_continues_at_the_right_epoch(splits, tmp_path):
    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("simulated crash after epoch 2")

    class Epochs(keras.callbacks.Callback):
        seen: list[int] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.seen.append(epoch)

    run = config(splits, tmp_path, epochs=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(run, extra_callbacks=[Interrupt()])
    assert not (run.run_dir / DONE).exists() and (run.run_dir / "backup").is_dir()
    assert [row["epoch"] for row in Run(run.run_dir).history()] == ["0", "1"]
    train(run, extra_callbacks=[Epochs()])
    assert Epochs.seen == [2, 3]
    assert [row["epoch"] for row in Run(run.run_dir).history()] == ["0", "1", "2", "3"]
    assert json.loads((run.run_dir / DONE).read_text())["epochs"] == 4
    with pytest.raises(PosenetError, match="already finished"):
        train(run)


def test_frozen_c_resnet_trains_its_head_on_cached_features(splits, tmp_path):
    run = config(splits, tmp_path, model="C_RESNET", epochs=1, run_name="first")
    run_dir = train(run)
    cache = feature_cache_path(run.train, run)
    assert cache.is_file() and feature_cache_path(run.val, run).is_file()
    assert cache.suffix == ".npy" and labels_path(cache).is_file()
    stored = np.load(cache, mmap_mode="r", allow_pickle=False)  # plain .npy: no pickle, memory-mapped
    assert isinstance(stored, np.memmap) and stored.shape == (48, 1, 1, 2048) and stored.dtype == np.float32
    assert np.load(labels_path(cache), allow_pickle=False).shape == (48, 3)
    assert not list(cache.parent.glob("*.tmp"))
    model, _ = load_run(run_dir)  # one network, image to rotvec
    assert model.input_shape == (None, SIZE, SIZE, 3) and c_resnet.BACKBONE in [layer.name for layer in model.layers]
    fresh = subprocess.run([sys.executable, "-c", "import sys; from posenet.training.runs import load_run; "
                            "print(load_run(sys.argv[1])[0].output_shape)", str(run_dir)],
                           capture_output=True, text=True, cwd=REPO)
    assert fresh.returncode == 0 and "(None, 3)" in fresh.stdout, fresh.stderr[-500:]  # loads in a new process too
    features, labels = backbone_features(None, pipeline.load_split(run.train), run)  # cached: no backbone needed
    assert isinstance(features, np.memmap) and features.shape == (48, 1, 1, 2048)
    again = train(config(splits, tmp_path, model="C_RESNET", epochs=1, run_name="second"))  # on the cache
    assert (again / DONE).is_file()
    np.testing.assert_allclose(labels, geometry.quat_to_rotvec(h5format.read_dataset(run.train)["quats"]), atol=1e-6)
    other_size = config(splits, tmp_path, model="C_RESNET", input_size=64)
    assert feature_cache_path(run.train, other_size) != cache


def test_feature_batches_read_every_cached_sample_once_per_epoch(tmp_path):
    features = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.float32, shape=(21, 2, 2, 4))
    features[:] = np.arange(21, dtype=np.float32)[:, None, None, None]
    features.flush()
    features = np.load(tmp_path / "f.npy", mmap_mode="r", allow_pickle=False)
    labels = np.repeat(np.arange(21, dtype=np.float32)[:, None], 3, axis=1)
    run = TrainConfig(pipeline=pipeline.PipelineConfig(batch_size=8, seed=3))
    epochs = []
    data = feature_batches(features, labels, run, training=True)
    for _ in range(2):
        batches = [(x.numpy(), y.numpy()) for x, y in data]
        assert [len(y) for _, y in batches] == [8, 8, 5] and batches[0][0].shape[1:] == (2, 2, 4)
        for x, y in batches:
            np.testing.assert_array_equal(x[:, 0, 0, 0], y[:, 0])  # features and labels stay paired
        epochs.append(np.concatenate([y[:, 0] for _, y in batches]))
    assert sorted(epochs[0]) == list(range(21)) and sorted(epochs[1]) == list(range(21))
    assert list(epochs[0]) != list(epochs[1])  # reshuffled each epoch
    ordered = np.concatenate([y[:, 0] for _, y in feature_batches(features, labels, run, training=False)])
    assert list(ordered) == list(range(21))


def test_c_resnet_needs_32_pixels_and_says_so():
    with pytest.raises(PosenetError, match="--input-size 16: C_RESNET needs at least 32 pixels"):
        build_model("C_RESNET", ModelConfig(input_size=16))


@pytest.mark.parametrize("broken", ["train", "val"])
def test_an_undecodable_image_names_its_file(splits, tmp_path, broken):
    files = {"train": str(splits[0]), "val": str(splits[1])}
    files[broken] = str(write_split(tmp_path / f"broken_{broken}.h5", 12, 5, garbage_at=10))
    run = config(splits, tmp_path / "runs", epochs=1, **files)
    with pytest.raises(PosenetError) as raised:
        train(run)
    message = str(raised.value)
    assert message.startswith(f"{files[broken]}: cannot decode an image (sample 10: ") and "\n" not in message


def test_original_schedule_drops_the_rate_fivefold():
    schedule = learning_rate_schedule(TrainConfig(epochs=16, learning_rate=1e-3, schedule="original"))
    assert schedule(9) == pytest.approx(1e-3) and schedule(10) == pytest.approx(2e-4)
    constant = learning_rate_schedule(TrainConfig(epochs=16, learning_rate=1e-3))
    assert constant(15) == pytest.approx(1e-3)


def test_cosine_schedule_decays_monotonically_to_the_floor():
    schedule = learning_rate_schedule(TrainConfig(epochs=8, learning_rate=1e-3, schedule="cosine"))
    rates = [schedule(epoch) for epoch in range(8)]
    assert rates[0] == pytest.approx(1e-3) and rates[-1] == pytest.approx(5e-5)
    assert all(later < earlier for earlier, later in zip(rates, rates[1:]))


def test_mirrored_strategy_on_two_logical_cpus(splits, tmp_path):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from posenet.study.config import TrainConfig
        from posenet.study.pipeline import PipelineConfig
        from posenet.study.train import train
        from posenet.training.registry import ModelConfig
        from posenet.training.strategy import make_strategy
        print("replicas", make_strategy("mirrored").num_replicas_in_sync)
        run = TrainConfig(model="C1_NET", train={str(splits[0])!r}, val={str(splits[1])!r}, logdir={str(tmp_path)!r},
                          epochs=1, pipeline=PipelineConfig(input_size={SIZE}, batch_size=16),
                          net=ModelConfig(input_size={SIZE}), distribute="mirrored")
        print("done", (train(run) / "done").is_file())
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "replicas 2" in result.stdout and "done True" in result.stdout


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().err.strip()


def damaged_copy(source: Path, path: Path, name: str, value: float, row: int = 3) -> Path:
    """A copy of `source` whose field `name` holds `value` in sample `row` (written past the writer's checks)."""
    import h5py

    path.write_bytes(source.read_bytes())
    with h5py.File(path, "r+") as f:
        values = f[name][:]
        values[row] = value
        f[name][...] = values
    return path


def test_bad_inputs_give_one_clear_line(splits, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no cached ImageNet weights, and offline:
    monkeypatch.setattr(keras.utils, "get_file", lambda *args, **kwargs: (_ for _ in ()).throw(OSError("offline")))
    train_file, val_file = map(str, splits)
    base = ["train", "--train", train_file, "--val", val_file, "--logdir", str(tmp_path), "--input-size", str(SIZE)]
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file")
    zero, nan_box = damaged_copy(splits[0], tmp_path / "zero.h5", "quats", 0.0), damaged_copy(
        splits[1], tmp_path / "nan.h5", "rois", np.nan)
    cases = {
        "unknown model 'C9_NET'": ["--model", "C9_NET"],
        "missing.h5: no such train dataset file": ["--model", "C1_NET", "--train", str(tmp_path / "missing.h5")],
        "garbage.h5: not a readable HDF5 file": ["--model", "C1_NET", "--val", str(garbage)],
        "--loss huber: choose from mse, geodesic": ["--model", "C1_NET", "--loss", "huber"],
        "--distribute mirror: choose from mirrored, multiworker": ["--model", "C1_NET", "--distribute", "mirror"],
        "the validation file is the training file": ["--model", "C1_NET", "--val", train_file],
        "pass a local copy of resnet50": ["--model", "C_RESNET", "--weights", "imagenet"],
        "boxes 'haar': choose from file, dlib": ["--model", "C1_NET", "--boxes", "haar"],
        "normalization 'imagenet': choose from": ["--model", "C1_NET", "--normalization", "imagenet"],
        "--input-size 16: C_RESNET needs at least 32 pixels": ["--model", "C_RESNET", "--input-size", "16"],
        "only a fully frozen backbone (C_RESNET with --trainable-from none, C_MOBILENET) can cache its features, "
        "not C1_NET":
            ["--model", "C1_NET", "--cache-features"],
        "--lr nan: must be a finite positive number": ["--model", "C1_NET", "--lr", "nan"],  # #14 item 9
        "--margin -5.0: must be a finite number from 0 to 2": ["--model", "C1_NET", "--margin", "-5"],
        "--run-name '../..': must be one folder name inside --logdir": ["--model", "C1_NET", "--run-name", "../.."],
        "zero.h5: field 'quats' holds a zero quaternion (sample 3)": ["--model", "C1_NET", "--train", str(zero)],
        "nan.h5: field 'rois' holds a non-finite value (sample 3)": ["--model", "C1_NET", "--val", str(nan_box)],
    }
    for expected, extra in cases.items():
        code, err = run_cli(base + extra, capsys)
        assert code == 2 and expected in err and len(err.splitlines()) == 1, (expected, err)
    assert not [path for path in tmp_path.iterdir() if path.is_dir() and path.name != "keras"]  # no run dir left
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(PosenetError, match="empty_run: no checkpoint"):
        load_run(empty)
    with pytest.raises(PosenetError, match="no such run directory"):
        load_run(tmp_path / "nowhere")


def test_an_unfinished_run_directory_is_not_reused_for_another_run(splits, tmp_path):
    run = config(splits, tmp_path, run_name="shared")
    prepare_run_dir(run)
    with pytest.raises(PosenetError, match="shared: holds an unfinished run with loss='mse', not 'geodesic'"):
        prepare_run_dir(config(splits, tmp_path, run_name="shared", loss="geodesic"))
    assert prepare_run_dir(run).path == run.run_dir  # the same run resumes


def test_the_pipeline_and_the_net_agree_on_the_input_size():
    with pytest.raises(PosenetError, match="input_size: the pipeline crops 32 px but the net takes 224 px"):
        TrainConfig(pipeline=pipeline.PipelineConfig(input_size=32))


def old_flat_run(run_dir: Path, splits) -> dict:
    """A run directory as `posenet train` wrote it before TrainConfig nested its settings (a flat
    "train", by hand here), with an untrained C1_NET checkpoint; returns its config.json."""
    stored = {
        "train": {"model": "C1_NET", "loss": "mse", "train": str(splits[0]), "val": str(splits[1]),
                  "logdir": str(run_dir.parent), "run_name": run_dir.name, "epochs": 2, "learning_rate": 0.001,
                  "batch_size": 16, "input_size": SIZE, "schedule": "constant", "weights": None,
                  "trainable_from": None, "cache_features": None, "distribute": None, "seed": 0, "augment": False,
                  "rotation_deg": 15.0, "flip": True, "photometric": True, "margin": 0.1, "boxes": "file",
                  "normalization": "resnet"},
        "pipeline": {"input_size": SIZE, "normalization": "resnet", "augment": False, "rotation_deg": 15.0,
                     "flip": True, "photometric": True, "margin": 0.1, "boxes": "file", "batch_size": 16, "seed": 0,
                     "shuffle": True},
    }
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(stored, indent=2))
    build_model("C1_NET", ModelConfig(input_size=SIZE)).save(run_dir / "best.keras")
    return stored


def test_an_old_flat_config_run_loads_resumes_evaluates_and_exports(splits, tmp_path):
    run_dir = tmp_path / "runs" / "old"
    stored = old_flat_run(run_dir, splits)
    asked = config(splits, tmp_path / "runs", run_name="old")
    assert list(asked.settings().items()) == list(stored["train"].items())  # the stored format is unchanged
    model, loaded = load_run(run_dir)
    assert loaded == stored and model.input_shape == (None, SIZE, SIZE, 3)
    assert changed_setting(run_dir, asked) is None and changed_setting(run_dir, asked, RESUME_KEYS) is None
    assert changed_setting(run_dir, replace(asked, epochs=3)) == ("epochs", 2, 3)
    with pytest.raises(PosenetError, match="old: trained with epochs=2, this study asks 3; use another --workdir"):
        check_same_settings(run_dir, replace(asked, epochs=3))
    other_size = config(splits, tmp_path / "runs", input_size=64, run_name="old")
    with pytest.raises(PosenetError, match="old: holds an unfinished run with input_size=32, not 64"):
        prepare_run_dir(other_size)
    assert prepare_run_dir(asked).path == run_dir  # the same run resumes; config.json is rewritten as it was
    assert json.loads((run_dir / "config.json").read_text()) == stored
    assert cli.main(["evaluate", str(run_dir), "--data", str(splits[1])]) == 0
    assert cli.main(["export", str(run_dir), "--out", str(tmp_path / "old.onnx")]) == 0
    assert (tmp_path / "old.onnx").is_file()


class Interrupt(keras.callbacks.Callback):
    """Raises at the end of epoch `at` (0-based), as a crash would."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise RuntimeError(f"simulated crash after epoch {epoch + 1}")


class Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def test_a_damaged_resume_state_falls_back_to_its_copy_or_says_so(splits, tmp_path, capsys):
    """#14 item 1: a kill while backup/latest.weights.h5 was written left 96 bytes and every later
    `posenet train` of the run died with a traceback."""
    run = config(splits, tmp_path, epochs=4)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(run, extra_callbacks=[Interrupt(at=1)])
    backup = run.run_dir / "backup"
    latest, previous = backup / "latest.weights.h5", backup / "latest.weights.h5.bkp"
    assert previous.is_file()
    latest.write_bytes(latest.read_bytes()[:96])  # one copy damaged: resume from the other, one epoch earlier
    epochs = Epochs()
    with pytest.warns(UserWarning, match="resume state is damaged.*resuming from the previous epoch's copy"):
        with pytest.raises(RuntimeError, match="simulated crash"):
            train(run, extra_callbacks=[epochs, Interrupt(at=2)])
    assert epochs.seen == [1, 2]
    for path in (latest, previous):  # both damaged: one line that says how to start over
        path.write_bytes(path.read_bytes()[:96])
    capsys.readouterr()
    argv = ["train", "--model", "C1_NET", "--train", run.train, "--val", run.val, "--logdir", run.logdir,
            "--epochs", "4", "--input-size", str(SIZE), "--batch-size", "16", "--lr", "1e-3"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"posenet: error: {backup}: the resume state is damaged (interrupted while it was written) "
                       f"and so is its copy; delete {backup} to train this run again from the first epoch")
    assert "Traceback" not in "\n".join(err)


def test_a_run_that_fails_before_its_first_epoch_leaves_no_folder(splits, tmp_path, capsys):
    """#14 item 10: a failed `train` left a run folder with a config.json and no checkpoint."""
    class FirstBatchFails(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("simulated crash in the first batch")

    run = config(splits, tmp_path, epochs=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(run, extra_callbacks=[FirstBatchFails()])
    assert not run.run_dir.exists()
    assert f"{run.run_dir} removed (no epoch finished)" in capsys.readouterr().err


def test_training_leaves_no_autograph_files_in_the_temporary_folder(splits, tmp_path, monkeypatch):
    """#14 item 10: autograph's generated modules went to the system temporary folder."""
    import tempfile

    system = tmp_path / "tmp"
    system.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system))
    train(config(splits, tmp_path / "runs", epochs=1))
    assert not list(system.iterdir())
