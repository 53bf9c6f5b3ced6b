"""MOBILENET_QUAT: the study's modern reference arm, beyond the original study.

A fine-tuned ImageNet MobileNetV2 (every convolution trains; BatchNorm is frozen in inference
mode, as Keras' transfer-learning guide advises, so small batches cannot wreck its statistics)
-> global average pooling -> Dropout ->
Dense(4): a quaternion, a continuous rotation output for the head poses that occur (|angle| <
180 deg), normalised and turned into the rotation vector every study net outputs, so the study's
losses, metrics, evaluation and export apply unchanged. Train it with the geodesic loss.
What it changes against the original nets: ImageNet initialisation, fine-tuning, global
pooling instead of the per-position head, and a rotation output that is not a rotation vector.
"""

from __future__ import annotations

import keras
from keras import layers

from posenet.study.nets.c1_net import ROTVEC_OUTPUT, image_input
from posenet.study.nets.c_mobilenet import build_mobilenet_backbone
from posenet.training import imagenet, rotations
from posenet.training.registry import ModelConfig

DROPOUT = 0.2  # MobileNetV2's own classifier dropout
IDENTITY_QUAT = (0.0, 0.0, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="posenet")
class QuatToRotvec(layers.Layer):
    """Any 4-vector -> its unit quaternion (x, y, z, w) -> the rotation vector (shortest arc)."""

    def call(self, quat):
        return rotations.quat_to_rotvec(rotations.normalize_quat(quat))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)


def build_mobilenet_quat(config: ModelConfig) -> keras.Model:
    """MOBILENET_QUAT for `config.input_size` (>= 32); weights None, "imagenet" or a legacy .pth path."""
    backbone = build_mobilenet_backbone(config, trainable=True)
    imagenet.freeze_batchnorm(backbone)
    inputs = image_input(config)
    x = layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    x = layers.Dropout(DROPOUT, name="dropout")(x)
    quat = layers.Dense(4, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(IDENTITY_QUAT),
                        name="quat")(x)  # starts at the frontal pose, not at a random rotation
    return keras.Model(inputs, QuatToRotvec(name=ROTVEC_OUTPUT)(quat), name="MOBILENET_QUAT")
