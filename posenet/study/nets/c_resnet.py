"""C_RESNET: a ResNet50 backbone with the study head, as two nested models (`frozen`).

ResNet50 (include_top=False) -> [BN -> ReLU -> Dropout 0.3 -> Dense(1024) per position ->
Flatten -> Dropout 0.5 -> Dense(3)].

Weights: "imagenet" uses the file in the Keras cache, or asks Keras to download it once (only
when asked for by name; offline that fails with one line saying how to pass a local file); a path
loads local weights; None is random initialisation (tests, and the study's offline default).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from posenet.core.errors import PosenetError
from posenet.study.nets.frozen import backbone_head_net
from posenet.training.registry import ModelConfig

BACKBONE = "resnet50"
IMAGENET_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + IMAGENET_NOTOP
IMAGENET_MD5 = "4d473c1dd8becc155b73f8504c6f6626"  # keras.applications.resnet's hash of that file
# The original study also trained these stages: "conv4_block4" unfreezes conv4_block4..6 and stage 5.
TRAINABLE_FROM = ("conv4_block4",)


def keras_cache_file(name: str) -> Path:
    """Where keras.utils.get_file would have stored `name` (KERAS_HOME or ~/.keras)."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "models" / name


def resolve_weights(weights: str | None) -> str | None:
    """None, "imagenet" or a path -> a local weights file (or None). "imagenet" downloads through
    Keras (hash-checked, into its cache) only when the file is not cached yet."""
    if weights is None:
        return None
    if weights == "imagenet":
        cached = keras_cache_file(IMAGENET_NOTOP)
        return str(cached) if cached.is_file() else download_imagenet()
    if not Path(weights).is_file():
        raise PosenetError(f"{weights}: no such ResNet50 weights file (use 'imagenet', a local .h5 file, or none)")
    return str(weights)


def download_imagenet() -> str:
    """Keras' ResNet50 ImageNet file, downloaded into the Keras cache; one line when that fails (offline)."""
    try:
        return keras.utils.get_file(IMAGENET_NOTOP, IMAGENET_URL, cache_subdir="models", file_hash=IMAGENET_MD5)
    except Exception as error:  # urllib, ssl, socket and hash errors all mean: no usable file
        raise PosenetError(
            f"C_RESNET: ImageNet weights are not in the Keras cache ({keras_cache_file(IMAGENET_NOTOP)}) and could not "
            f"be downloaded ({type(error).__name__}); pass a local copy of {IMAGENET_NOTOP} with --weights PATH") from None


def set_backbone_trainable(backbone: keras.Model, trainable_from: str | None) -> None:
    """Freeze the whole backbone (None) or train from the first layer named `trainable_from*` on."""
    if trainable_from is None:
        backbone.trainable = False
        return
    if trainable_from not in TRAINABLE_FROM:
        raise PosenetError(f"--trainable-from {trainable_from}: choose none or {', '.join(TRAINABLE_FROM)}")
    backbone.trainable = True
    names = [layer.name for layer in backbone.layers]
    start = next(i for i, name in enumerate(names) if name.startswith(trainable_from))
    for layer in backbone.layers[:start]:
        layer.trainable = False


MIN_INPUT_SIZE = 32  # ResNet50's five stride-2 stages need at least 32 pixels


def build_backbone(config: ModelConfig) -> keras.Model:
    """ResNet50 without its top, for `config.input_size` (>= 32), with local weights or none.

    The network is built first and the weights loaded after, so only a weights problem is
    reported as one (a bad input size is its own one-line error).
    """
    if config.input_size < MIN_INPUT_SIZE:
        raise PosenetError(f"--input-size {config.input_size}: C_RESNET needs at least {MIN_INPUT_SIZE} pixels")
    weights = resolve_weights(config.weights)
    shape = (config.input_size, config.input_size, 3)
    backbone = keras.applications.ResNet50(include_top=False, weights=None, input_shape=shape, name=BACKBONE)
    if weights is not None:
        try:
            backbone.load_weights(weights)
        except (OSError, ValueError) as error:
            raise PosenetError(f"{config.weights}: cannot load ResNet50 weights ({error})") from None
    set_backbone_trainable(backbone, config.trainable_from)
    return backbone


def build_c_resnet(config: ModelConfig) -> keras.Model:
    """C_RESNET: image -> nested ResNet50 -> nested head -> rotvec (about 25.8M parameters at 224 px)."""
    return backbone_head_net(build_backbone(config), config, "C_RESNET")
