"""The settings of one study training run (written to the run's config.json)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from posenet.core.errors import PosenetError
from posenet.study import pipeline
from posenet.study.losses import LOSSES
from posenet.study.nets import c_resnet
from posenet.training.registry import model_entry

SCHEDULES = ("constant", "original", "cosine")
STRATEGIES = ("mirrored", "multiworker")


@dataclass
class TrainConfig:
    """Everything one training run depends on (written to config.json)."""

    model: str = "C1_NET"
    loss: str = "mse"
    train: str = ""
    val: str = ""
    logdir: str = "runs"
    run_name: str | None = None  # default "<model>-<loss>"
    epochs: int = 10  # total; the "original" schedule splits them 50:30
    learning_rate: float = 1e-4
    batch_size: int = pipeline.PipelineConfig.batch_size
    input_size: int = pipeline.PipelineConfig.input_size
    schedule: str = "constant"
    weights: str | None = None  # C_RESNET backbone: None, "imagenet" (Keras cache only) or a file
    trainable_from: str | None = None  # C_RESNET: None = frozen backbone, or "conv4_block4"
    cache_features: bool | None = None  # None = auto: yes for a fully frozen C_RESNET
    distribute: str | None = None  # None, "mirrored" or "multiworker"
    seed: int = pipeline.PipelineConfig.seed
    # input pipeline settings, flat like the CLI flags; defaults are the pipeline's own
    augment: bool = pipeline.PipelineConfig.augment
    rotation_deg: float = pipeline.PipelineConfig.rotation_deg
    flip: bool = pipeline.PipelineConfig.flip
    photometric: bool = pipeline.PipelineConfig.photometric
    margin: float = pipeline.PipelineConfig.margin
    boxes: str = pipeline.PipelineConfig.boxes
    normalization: str = pipeline.PipelineConfig.normalization  # the original's preprocessing, for every net

    @property
    def run_dir(self) -> Path:
        return Path(self.logdir) / (self.run_name or f"{self.model}-{self.loss}")


def pipeline_config(config: TrainConfig) -> pipeline.PipelineConfig:
    """The input pipeline settings of a run (also what evaluation must use)."""
    shared = {f.name for f in fields(pipeline.PipelineConfig)} & {f.name for f in fields(TrainConfig)}
    return pipeline.PipelineConfig(**{name: getattr(config, name) for name in shared})


def check_config(config: TrainConfig) -> None:
    """One clear line for each bad choice, before anything slow happens."""
    if model_entry(config.model).task != "rotvec":
        raise PosenetError(f"--model {config.model}: a tracker model; train it with posenet.tracker.train")
    choices = {"loss": (config.loss, tuple(LOSSES)), "schedule": (config.schedule, SCHEDULES),
               "distribute": (config.distribute, (None, *STRATEGIES))}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise PosenetError(f"--{name} {value}: choose from {', '.join(str(a) for a in allowed if a)}")
    if config.epochs < 1 or config.batch_size < 1 or config.learning_rate <= 0:
        raise PosenetError("--epochs, --batch-size and --lr must be positive")
    for name in ("train", "val"):
        if not Path(getattr(config, name)).is_file():
            raise PosenetError(f"{getattr(config, name) or '(none)'}: no such {name} dataset file (--{name})")
    if Path(config.train).resolve() == Path(config.val).resolve():
        raise PosenetError(f"{config.val}: the validation file is the training file (leakage)")
    if config.model == "C_RESNET" and config.input_size < c_resnet.MIN_INPUT_SIZE:
        raise PosenetError(f"--input-size {config.input_size}: C_RESNET needs at least "
                           f"{c_resnet.MIN_INPUT_SIZE} pixels")
    pipeline_config(config)  # bad --boxes, --normalization, ... fail here, before any run directory exists
