"""The settings of one study training run (written to the run's config.json).

`TrainConfig` holds the run's own settings and, nested, the input pipeline's
(`PipelineConfig`) and the builder's (`ModelConfig`): each setting has one home.

On disk the nesting is flattened: config.json's "train" is `TrainConfig.settings()`, the same
flat keys, in the same order, that runs have always stored (see SETTINGS), and "pipeline" is
the whole `PipelineConfig` (what evaluate and export preprocess with). So run directories
written before the nesting load, resume and pass the study's reuse check unchanged, and
comparisons of settings stay one key at a time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from posenet.core.errors import PosenetError
from posenet.core.values import check_positive
from posenet.study.losses import LOSSES
from posenet.study.nets import c_resnet
from posenet.study.pipeline import PipelineConfig
from posenet.training.registry import ModelConfig, model_entry
from posenet.training.runs import check_run_name, check_splits
from posenet.training.strategy import check_strategy

SCHEDULES = ("constant", "original", "cosine")
NESTED = ("pipeline", "net")
NET_SETTINGS = ("input_size", "weights", "trainable_from")  # ModelConfig fields a run stores (not `extras`)
SETTINGS = ("model", "loss", "train", "val", "logdir", "run_name", "epochs", "learning_rate", "batch_size",
            "input_size", "schedule", "weights", "trainable_from", "cache_features", "distribute", "seed",
            "augment", "rotation_deg", "flip", "photometric", "margin", "boxes", "normalization")
"""config.json's flat "train" keys, in their stored order (the reuse check reports the first change
in this order). The pipeline's `shuffle` is not among them: training always shuffles."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on: its own settings, the pipeline's and the net's.

    `pipeline.input_size` (the crop) and `net.input_size` (the network input) must agree;
    `pipeline.batch_size` and `pipeline.seed` are the run's batch size and seed.
    """

    model: str = "C1_NET"
    loss: str = "mse"
    train: str = ""
    val: str = ""
    logdir: str = "runs"
    run_name: str | None = None  # default "<model>-<loss>"
    epochs: int = 10  # total; the "original" schedule splits them 50:30
    learning_rate: float = 1e-4
    schedule: str = "constant"
    cache_features: bool | None = None  # None = auto: yes for a fully frozen C_RESNET
    distribute: str | None = None  # None, "mirrored" or "multiworker"
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)  # crop, normalisation, augmentation, batch, seed
    net: ModelConfig = field(default_factory=ModelConfig)  # what the builder gets: input size, C_RESNET weights

    def __post_init__(self) -> None:
        if self.net.input_size != self.pipeline.input_size:
            raise PosenetError(f"input_size: the pipeline crops {self.pipeline.input_size} px but the net takes "
                               f"{self.net.input_size} px")

    @property
    def run_dir(self) -> Path:
        return Path(self.logdir) / (self.run_name or f"{self.model}-{self.loss}")

    def settings(self) -> dict:
        """The flat settings stored as config.json's "train" and compared on reuse and resume (SETTINGS)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in NESTED}
        values.update(asdict(self.pipeline))
        values.update({name: getattr(self.net, name) for name in NET_SETTINGS})
        return {name: values[name] for name in SETTINGS}


def check_config(config: TrainConfig) -> None:
    """One clear line for each bad choice, before anything slow happens.

    Bad --boxes, --normalization, ... already failed when the PipelineConfig was made.
    """
    if model_entry(config.model).task != "rotvec":
        raise PosenetError(f"--model {config.model}: a tracker model; train it with posenet.tracker.train")
    choices = {"loss": (config.loss, tuple(LOSSES)), "schedule": (config.schedule, SCHEDULES)}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise PosenetError(f"--{name} {value}: choose from {', '.join(str(a) for a in allowed if a)}")
    check_strategy(config.distribute)
    if config.epochs < 1 or config.pipeline.batch_size < 1:
        raise PosenetError("--epochs, --batch-size and --lr must be positive")
    check_positive(config.learning_rate, "--lr")  # NaN passes a `<= 0` test and trains a net of NaNs
    check_run_name(config.run_name)
    check_splits(config.train, config.val)
    if config.model == "C_RESNET" and config.net.input_size < c_resnet.MIN_INPUT_SIZE:
        raise PosenetError(f"--input-size {config.net.input_size}: C_RESNET needs at least "
                           f"{c_resnet.MIN_INPUT_SIZE} pixels")

