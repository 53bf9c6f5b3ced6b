"""The run directory: the one place that knows what a training run leaves on disk.

Both trainers (the study's and the tracker's) write runs here, and evaluate, export and the
study read them through `Run`, so the format has one owner:

    config.json     the settings: {"train": {...}, "pipeline": {...}} for study nets,
                    {"train": {...}, "tracker_data": {...}} for tracker nets
    best.keras      the whole network with the lowest val_loss so far
    last.keras      the whole network after the last finished epoch
    history.csv     one row per epoch (loss, val_loss and every metric)
    backup/         keras BackupAndRestore state while a fit is unfinished
    done            written last, with the final figures and the training time: the run finished
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import keras

from posenet.core.errors import PosenetError
from posenet.core.fileio import atomic_output
from posenet.training.registry import builder_module

DONE, CONFIG, HISTORY, BEST, LAST, BACKUP = "done", "config.json", "history.csv", "best.keras", "last.keras", "backup"
BACKUP_WEIGHTS, BACKUP_METADATA = "latest.weights.h5", "training_metadata.json"  # keras BackupAndRestore's names
PREVIOUS = ".bkp"  # its second copy (double_checkpoint): the state one epoch earlier


def check_splits(train: str | Path, val: str | Path) -> None:
    """What both trainers require of their data: two existing files, and not the same one (leakage)."""
    for name, path in (("train", train), ("val", val)):
        if not Path(path).is_file():
            raise PosenetError(f"{path or '(none)'}: no such {name} dataset file (--{name})")
    if Path(train).resolve() == Path(val).resolve():
        raise PosenetError(f"{val}: the validation file is the training file (leakage)")


def check_run_name(name: str | None) -> None:
    """A run name is one plain folder name inside --logdir: no separators, not '.' or '..',
    so a run never writes (or, on a failure, cleans up) anything outside --logdir."""
    if name is None:
        return
    if not name or name in (".", "..") or "/" in name or "\\" in name or name != name.strip() or "\0" in name:
        raise PosenetError(f"--run-name {name!r}: must be one folder name inside --logdir "
                           "(no '/', not '.' or '..')")


def trained_on_older_data(run_dir: Path, data: Sequence[Path]) -> bool:
    """True when a data file was written after the run began (re-rendered by a newer renderer,
    say): the run describes data that no longer exists."""
    started = (Path(run_dir) / CONFIG).stat().st_mtime
    return any(Path(path).stat().st_mtime > started for path in data)


def retire_run(run_dir: Path) -> Path:
    """Move a stale run aside (nothing is deleted) so that it can be trained again in its place."""
    run_dir = Path(run_dir)
    number = 1
    while (stale := run_dir.with_name(f"{run_dir.name}.stale-{number}")).exists():
        number += 1
    run_dir.rename(stale)
    return stale


def retire_if_stale(run_dir: Path, data: Sequence[Path], label: str) -> None:
    """Retire a run (finished or not) whose training data were written after it began."""
    if (Path(run_dir) / CONFIG).is_file() and trained_on_older_data(run_dir, data):
        print(f"{label}: {run_dir} was trained on data written before the current files; kept as "
              f"{retire_run(run_dir)}, training again")


class CheckpointOf(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint that saves `target` (the whole network) while another model is fitted
    (a frozen backbone's head on cached features, or a training wrapper); they share layers.

    Keras writes to a hidden sibling that is renamed onto `filepath` once complete, so an
    interruption mid-save never leaves a truncated checkpoint under the final name.
    """

    def __init__(self, target: keras.Model, filepath: Path, **kwargs):
        self.final = Path(filepath)
        self.partial = self.final.with_name(f".{self.final.stem}.partial{self.final.suffix}")
        super().__init__(str(self.partial), **kwargs)
        self.target = target

    def set_model(self, model: keras.Model) -> None:
        super().set_model(self.target)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        if self.partial.exists():
            os.replace(self.partial, self.final)


class Run:
    """One run directory, named by its path; nothing is read until asked for."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def done(self) -> bool:
        return (self.path / DONE).exists()

    def check_unfinished(self) -> None:
        """A finished run is never trained again (its figures would no longer match it)."""
        if self.done:
            raise PosenetError(f"{self.path}: this run already finished; choose another --run-name or delete it")

    def config(self) -> dict:
        """config.json, checked to hold the "train" settings; one line naming the file otherwise."""
        path = self.path / CONFIG
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise PosenetError(f"{path}: cannot read the run's settings ({error})") from None
        if not isinstance(config, dict) or not isinstance(config.get("train"), dict):
            raise PosenetError(f"{path}: no 'train' settings (not a config.json written by posenet train)")
        return config

    def write_config(self, config: dict) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # e.g. --logdir /proc/runs, or a file where a folder must be
            raise PosenetError(f"{self.path}: cannot create the run directory ({error.strerror})") from None
        with atomic_output(self.path / CONFIG) as tmp:
            tmp.write_text(json.dumps(config, indent=2))

    def history(self) -> list[dict[str, str]]:
        """history.csv rows, one per epoch (the last row wins if an epoch was logged twice)."""
        path = self.path / HISTORY
        if not path.is_file():
            return []
        with open(path, newline="") as handle:
            rows = {row["epoch"]: row for row in csv.DictReader(handle) if row.get("epoch")}
        return sorted(rows.values(), key=lambda row: int(row["epoch"]))

    def best_val_loss(self) -> float:
        """Lowest val_loss in the history so far (so a resumed ModelCheckpoint keeps it)."""
        return min((float(row["val_loss"]) for row in self.history()), default=float("inf"))

    def summary(self) -> dict:
        """The figures written by `finish` (epochs, best epoch, best val_loss, training time, ...)."""
        return json.loads((self.path / DONE).read_text())

    def train_seconds(self) -> float | None:
        """Wall time of the training, when the run recorded it."""
        if not self.done:
            return None
        return self.summary().get("train_seconds")

    def backup_callback(self) -> keras.callbacks.BackupAndRestore:
        """The resume state, kept twice (double_checkpoint) so a damaged copy falls back."""
        return keras.callbacks.BackupAndRestore(str(self.path / BACKUP), double_checkpoint=True)

    def check_resume_state(self) -> None:
        """Make sure keras can resume from backup/: a state damaged by a kill mid-write is
        replaced by its previous copy (with a warning; one epoch is redone); when both copies
        are damaged, one line says so and how to start over, instead of a traceback from fit."""
        backup = self.path / BACKUP
        latest = (backup / BACKUP_WEIGHTS, backup / BACKUP_METADATA)
        if not latest[0].exists() or _state_readable(*latest):
            return
        previous = tuple(path.with_name(path.name + PREVIOUS) for path in latest)
        if previous[0].exists() and _state_readable(*previous):
            for copy, damaged in zip(previous, latest):
                if copy.exists():
                    shutil.copyfile(copy, damaged)
                else:
                    damaged.unlink(missing_ok=True)
            warnings.warn(f"{backup}: the resume state is damaged (interrupted while it was written); "
                          "resuming from the previous epoch's copy", stacklevel=2)
            return
        raise PosenetError(f"{backup}: the resume state is damaged (interrupted while it was written) and so is its "
                           f"copy; delete {backup} to train this run again from the first epoch")

    @contextlib.contextmanager
    def attempt(self) -> Iterator["Run"]:
        """Training into this run: when it fails before any epoch was saved, the run folder it
        created is removed again (nothing half made is left); when it fails later, the folder
        stays and the same command resumes it. Either way one note on stderr says which."""
        existed = self.path.exists()
        try:
            yield self
        except BaseException as error:
            if self.path.is_dir() and not self.done:
                self._after_failure(existed, explained=isinstance(error, PosenetError))
            raise

    def _after_failure(self, existed: bool, explained: bool) -> None:
        """Remove a new folder without a saved epoch; else say that the run resumes (unless the
        error, a PosenetError, already says what to do)."""
        saved = [name for name in (BEST, LAST, BACKUP) if (self.path / name).exists()]
        if saved:
            if not explained:
                print(f"posenet: note: {self.path} keeps {', '.join(saved)}; the same command resumes this run",
                      file=sys.stderr)
        elif not existed:
            shutil.rmtree(self.path, ignore_errors=True)
            print(f"posenet: note: {self.path} removed (no epoch finished)", file=sys.stderr)

    def checkpoint_callbacks(self, network: keras.Model, resume: bool = False) -> list[keras.callbacks.Callback]:
        """best.keras, last.keras and history.csv, saving `network` whatever model is fitted."""
        return [
            CheckpointOf(network, self.path / BEST, monitor="val_loss", save_best_only=True,
                         initial_value_threshold=self.best_val_loss() if resume else None),
            CheckpointOf(network, self.path / LAST),
            keras.callbacks.CSVLogger(str(self.path / HISTORY), append=resume),
        ]

    def finish(self, summary: dict, best_columns: Sequence[str] = ()) -> dict:
        """Rewrite history.csv without rows an interruption logged twice, then write `done`: the
        epoch count, the best epoch, its val_loss and its `best_columns` of the history (the
        trainer's own validation figures), plus `summary`."""
        rows = self.history()
        if not rows:
            raise PosenetError(f"{self.path / HISTORY}: no epoch was logged")
        best = min(rows, key=lambda row: float(row["val_loss"]))
        with atomic_output(self.path / HISTORY) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        figures = {"epochs": len(rows), "best_epoch": int(best["epoch"]), "best_val_loss": float(best["val_loss"]),
                   **{column: float(best[column]) for column in best_columns}, **summary}
        with atomic_output(self.path / DONE) as tmp:
            tmp.write_text(json.dumps(figures, indent=2))
        return figures

    def load_model(self) -> keras.Model:
        """The best checkpoint, the whole network; the last one, with a warning, when the best
        is missing, cannot be read (a damaged file, a class this code does not know) or takes
        another input size than config.json says."""
        if not self.path.is_dir():
            raise PosenetError(f"{self.path}: no such run directory")
        checkpoints = [self.path / name for name in (BEST, LAST) if (self.path / name).is_file()]
        if not checkpoints:
            raise PosenetError(f"{self.path}: no checkpoint ({BEST} or {LAST}); train it first with posenet train")
        settings = self.config()["train"]
        try:
            builder_module(settings["model"])  # custom layers must be registered before loading
        except PosenetError as error:  # a model name this posenet does not know
            raise PosenetError(f"{self.path / CONFIG}: {error}") from None
        problems = []
        for checkpoint in checkpoints:
            try:
                model = keras.models.load_model(checkpoint, compile=False)
            except (OSError, ValueError, KeyError, EOFError, TypeError) as error:
                problems.append(f"{checkpoint}: cannot load it ({_load_problem(error)})")
                continue
            mismatch = _input_size_mismatch(model, settings.get("input_size"))
            if mismatch:
                problems.append(f"{checkpoint}: {mismatch}, but {self.path / CONFIG} says input_size "
                                f"{settings['input_size']} (trained at another input size?)")
                continue
            if problems:
                warnings.warn(f"{problems[0]}; using {checkpoint.name} instead", stacklevel=2)
            return model
        raise PosenetError("; ".join(problems))


UNKNOWN_CLASS = re.compile(r"Could not locate (?:class|function) '([^']+)'")
MAX_REASON = 160  # characters of a loader's message quoted in the one-line error


def _load_problem(error: Exception) -> str:
    """A short reason from keras' (often page-long) loading error: the unknown class, or its first line."""
    text = str(error)
    unknown = UNKNOWN_CLASS.search(text)
    if unknown:
        return f"it names the class '{unknown.group(1)}', which this posenet does not know"
    first = text.splitlines()[0] if text else type(error).__name__
    return first if len(first) <= MAX_REASON else first[:MAX_REASON] + "..."


def _input_size_mismatch(model: keras.Model, input_size: object) -> str | None:
    """'it takes HxW inputs' when the model's square image input is not `input_size`; None otherwise."""
    shape = model.inputs[0].shape if model.inputs and len(model.inputs) == 1 else None
    if not isinstance(input_size, int) or shape is None or len(shape) != 4:
        return None
    height, width = shape[1], shape[2]
    if (height, width) == (input_size, input_size) or None in (height, width):
        return None
    return f"it takes {height}x{width} inputs"


def _state_readable(weights: Path, metadata: Path) -> bool:
    """Whether a BackupAndRestore state opens: an HDF5 weights file that is not truncated, and
    metadata (when present) that is JSON with an epoch."""
    try:
        with h5py.File(weights, "r"):
            pass
        if metadata.exists():
            return isinstance(json.loads(metadata.read_text()).get("epoch"), int)
    except (OSError, ValueError, AttributeError):
        return False
    return True


def load_run(run_dir: str | Path) -> tuple[keras.Model, dict]:
    """The best (else last) network of a run and its config.json."""
    run = Run(run_dir)
    model = run.load_model()
    return model, run.config()
