"""What the study's frozen-backbone nets (C_RESNET, C_MOBILENET) share: image -> nested backbone
model -> nested head model named HEAD.

Nesting lets training run a frozen backbone once, cache its features and fit the head alone,
while the saved model is still one network from image to rotation vector.
"""

from __future__ import annotations

import keras

from posenet.study.nets.c1_net import image_input, rotvec_head
from posenet.training.registry import ModelConfig

HEAD = "head"
HEAD_DROPOUT = (0.3, 0.5)  # the original C_RESNET head's dropout, before and after the per-position Dense


def build_head(feature_shape: tuple[int, ...]) -> keras.Model:
    """The study head as its own model: backbone features (H, W, C) -> rotvec (3,)."""
    features = keras.Input(feature_shape, name="features")
    return keras.Model(features, rotvec_head(features, dropout=HEAD_DROPOUT), name=HEAD)


def backbone_head_net(backbone: keras.Model, config: ModelConfig, name: str) -> keras.Model:
    """image -> `backbone` -> the study head -> rotvec, as one model named `name`."""
    head = build_head(tuple(backbone.output.shape[1:]))
    inputs = image_input(config)
    return keras.Model(inputs, head(backbone(inputs)), name=name)


def backbone_of(model: keras.Model) -> keras.Model | None:
    """The nested backbone of a backbone + head net, else None."""
    names = [layer.name for layer in model.layers]
    if HEAD not in names:
        return None
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name != HEAD]
    return nested[0] if len(nested) == 1 else None


def is_frozen(model: keras.Model) -> bool:
    """True for a backbone + head net whose backbone has no trainable weight (its features are cacheable)."""
    backbone = backbone_of(model)
    return backbone is not None and not backbone.trainable_weights
