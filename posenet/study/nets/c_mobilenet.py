"""C_MOBILENET: a frozen ImageNet MobileNetV2 with the study head, the study's transfer-learning arm.

MobileNetV2 (alpha 1.0, no top; torchvision's ImageNet weights through
`posenet.training.imagenet`, which install offline) -> the C_RESNET head. The backbone is
frozen, so training caches its features and fits the head alone, exactly as for C_RESNET. It
expects the pipeline's "torch" normalisation (the registry says so).
"""

from __future__ import annotations

import keras

from posenet.core.errors import PosenetError
from posenet.study.nets.frozen import backbone_head_net
from posenet.training import imagenet
from posenet.training.registry import ModelConfig

BACKBONE = "mobilenet_v2"
MIN_INPUT_SIZE = 32  # five stride-2 stages


def build_mobilenet_backbone(config: ModelConfig, trainable: bool) -> keras.Model:
    """MobileNetV2 without its top at `config.input_size`; weights None, "imagenet" or a legacy .pth path."""
    if config.input_size < MIN_INPUT_SIZE:
        raise PosenetError(f"--input-size {config.input_size}: MobileNetV2 needs at least {MIN_INPUT_SIZE} pixels")
    shape = (config.input_size, config.input_size, 3)
    backbone = imagenet.build_mobilenet_v2(shape, include_top=False, weights=config.weights, name=BACKBONE)
    backbone.trainable = trainable
    return backbone


def build_c_mobilenet(config: ModelConfig) -> keras.Model:
    """C_MOBILENET: image -> frozen MobileNetV2 -> study head -> rotvec (2.3M frozen + the head)."""
    return backbone_head_net(build_mobilenet_backbone(config, trainable=False), config, "C_MOBILENET")
