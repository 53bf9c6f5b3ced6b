"""C1_NET: the study's smallest CNN, and the rotation-vector head all three study nets share.

C1_NET = 3 x [Conv 3x3 (32/64/128, same padding) + MaxPool 2] -> BN -> ReLU ->
Dense(1024) per position -> Flatten -> Dense(3). About 2.63M parameters at 224 px, almost
all of them in the last Dense: the head keeps every spatial position (no global pooling),
as the original study did.
"""

from __future__ import annotations

import keras
from keras import layers

from posenet.training.registry import ModelConfig

C1_FILTERS = (32, 64, 128)
HEAD_UNITS = 1024  # per-position Dense width, shared by C1_NET, C2_NET and C_RESNET
ROTVEC_OUTPUT = "rotvec"


def rotvec_head(features, batchnorm: bool = True, dropout: tuple[float, float] = (0.0, 0.0)):
    """The study head: [BN -> ReLU] -> [Dropout] -> Dense(1024, ReLU) per position -> Flatten
    -> [Dropout] -> Dense(3) rotation vector.

    The Dense(1024) acts on the last axis of the 4-D feature map, so it is a 1x1 convolution
    shared over positions; Flatten then keeps where each feature was. The ReLU after it keeps
    the two Dense layers from collapsing into one linear map (DESIGN §5 names no activation).
    """
    x = features
    if batchnorm:
        x = layers.BatchNormalization(name="head_bn")(x)
        x = layers.ReLU(name="head_relu")(x)
    if dropout[0]:
        x = layers.Dropout(dropout[0], name="head_dropout_1")(x)
    x = layers.Dense(HEAD_UNITS, activation="relu", name="head_dense_per_position")(x)
    x = layers.Flatten(name="head_flatten")(x)
    if dropout[1]:
        x = layers.Dropout(dropout[1], name="head_dropout_2")(x)
    return layers.Dense(3, name=ROTVEC_OUTPUT)(x)


def image_input(config: ModelConfig) -> keras.KerasTensor:
    """The (S, S, 3) float32 input of every study net (already normalised by the pipeline)."""
    return keras.Input((config.input_size, config.input_size, 3), name="image")


def build_c1_net(config: ModelConfig) -> keras.Model:
    """C1_NET for `config.input_size` (any multiple of 8 keeps the 1/8 feature map exact)."""
    inputs = image_input(config)
    x = inputs
    for i, filters in enumerate(C1_FILTERS, start=1):
        x = layers.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    return keras.Model(inputs, rotvec_head(x), name="C1_NET")
