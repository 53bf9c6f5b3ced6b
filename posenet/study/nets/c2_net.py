"""C2_NET: the study's deeper plain CNN.

11 x [Conv 3x3 + BN + ReLU] with filters from 18 to 512, five of them with stride 2 (the
first conv of each wider stage), so a 224 px input ends as a 7x7x512 map; then the shared
head with dropout 0.3 before the per-position Dense(1024) and 0.5 before the output.
The filter progression is chosen to match the original's parameter count (about 5.45M at
224 px); the original only gives the range 18..512.
"""

from __future__ import annotations

import keras
from keras import layers

from posenet.study.nets.c1_net import image_input, rotvec_head
from posenet.training.registry import ModelConfig

# (filters, stride) per conv block: 5.43M parameters at 224 px.
C2_BLOCKS = (
    (18, 1),
    (36, 2), (36, 1),
    (72, 2), (72, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1),
)
C2_DROPOUT = (0.3, 0.5)


def conv_bn_relu(x, filters: int, stride: int, name: str):
    """Conv 3x3 (same padding) -> BatchNorm -> ReLU."""
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def build_c2_net(config: ModelConfig) -> keras.Model:
    """C2_NET for `config.input_size` (multiples of 32 keep every stride exact)."""
    inputs = image_input(config)
    x = inputs
    for i, (filters, stride) in enumerate(C2_BLOCKS, start=1):
        x = conv_bn_relu(x, filters, stride, name=f"block{i}")
    outputs = rotvec_head(x, batchnorm=False, dropout=C2_DROPOUT)
    return keras.Model(inputs, outputs, name="C2_NET")
