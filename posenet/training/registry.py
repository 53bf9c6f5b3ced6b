"""The one table of networks: name -> builder, and the task that trains it.

Builders are plain functions `build_<name>(config: ModelConfig) -> keras.Model`, each in
its own module, imported only when used (so `posenet --help` never imports TensorFlow).
The task says which data, losses and outputs the model is trained with:
- "rotvec": the study's nets (one rotation-vector output, MSE or geodesic loss);
- "pose": the tracker's multi-output pose network (Opentrack contract);
- "localizer": the tracker's face localizer (logit + box).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import NamedTuple

from posenet.core.errors import PosenetError


@dataclass(frozen=True)
class ModelConfig:
    """What a builder needs to know; nets with a fixed contract input may ignore `input_size`."""

    input_size: int = 224  # square input side in pixels
    weights: str | None = None  # backbone: None (random), "imagenet" or a local file (C_RESNET .h5, MobileNet .pth)
    trainable_from: str | None = None  # C_RESNET: None (frozen) or "conv4_block4"
    extras: dict = field(default_factory=dict)


class ModelEntry(NamedTuple):
    builder: str  # "module:function"
    task: str
    normalization: str = "resnet"  # the input normalisation the net expects (the study pipeline's names)


MODELS: dict[str, ModelEntry] = {
    "C1_NET": ModelEntry("posenet.study.nets.c1_net:build_c1_net", "rotvec"),
    "C2_NET": ModelEntry("posenet.study.nets.c2_net:build_c2_net", "rotvec"),
    "C_RESNET": ModelEntry("posenet.study.nets.c_resnet:build_c_resnet", "rotvec"),
    "C_MOBILENET": ModelEntry("posenet.study.nets.c_mobilenet:build_c_mobilenet", "rotvec", "torch"),
    "MOBILENET_QUAT": ModelEntry("posenet.study.nets.mobilenet_quat:build_mobilenet_quat", "rotvec", "torch"),
    "pose_net": ModelEntry("posenet.tracker.nets.pose_net:build_pose_net", "pose"),
    "pose_mobilenet": ModelEntry("posenet.tracker.nets.pose_mobilenet:build_pose_mobilenet", "pose"),
    "localizer": ModelEntry("posenet.tracker.nets.localizer:build_localizer", "localizer"),
}


def model_entry(name: str) -> ModelEntry:
    """The registry entry of `name`; one clear error for an unknown name."""
    try:
        return MODELS[name]
    except KeyError:
        raise PosenetError(f"unknown model '{name}'; choose from {', '.join(MODELS)}") from None


def builder_module(name: str):
    """Import the module that builds `name` (it registers the net's custom layers for loading)."""
    return importlib.import_module(model_entry(name).builder.split(":")[0])


def build_model(name: str, config: ModelConfig | None = None):
    """Build the Keras model registered as `name`."""
    function = model_entry(name).builder.split(":")[1]
    return getattr(builder_module(name), function)(config or ModelConfig())
