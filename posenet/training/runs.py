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

import csv
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import keras

from posenet.core.errors import PosenetError
from posenet.core.fileio import atomic_output
from posenet.training.registry import builder_module

DONE, CONFIG, HISTORY, BEST, LAST, BACKUP = "done", "config.json", "history.csv", "best.keras", "last.keras", "backup"


def check_splits(train: str | Path, val: str | Path) -> None:
    """What both trainers require of their data: two existing files, and not the same one (leakage)."""
    for name, path in (("train", train), ("val", val)):
        if not Path(path).is_file():
            raise PosenetError(f"{path or '(none)'}: no such {name} dataset file (--{name})")
    if Path(train).resolve() == Path(val).resolve():
        raise PosenetError(f"{val}: the validation file is the training file (leakage)")


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
        self.path.mkdir(parents=True, exist_ok=True)
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
        is missing or cannot be read (a damaged file)."""
        if not self.path.is_dir():
            raise PosenetError(f"{self.path}: no such run directory")
        checkpoints = [self.path / name for name in (BEST, LAST) if (self.path / name).is_file()]
        if not checkpoints:
            raise PosenetError(f"{self.path}: no checkpoint ({BEST} or {LAST}); train it first with posenet train")
        builder_module(self.config()["train"]["model"])  # custom layers must be registered before loading
        problems = []
        for checkpoint in checkpoints:
            try:
                model = keras.models.load_model(checkpoint, compile=False)
            except (OSError, ValueError, KeyError, EOFError) as error:
                problems.append(f"{checkpoint}: cannot load it ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
                continue
            if problems:
                warnings.warn(f"{problems[0]}; using {checkpoint.name} instead", stacklevel=2)
            return model
        raise PosenetError("; ".join(problems))


def load_run(run_dir: str | Path) -> tuple[keras.Model, dict]:
    """The best (else last) network of a run and its config.json."""
    run = Run(run_dir)
    model = run.load_model()
    return model, run.config()
