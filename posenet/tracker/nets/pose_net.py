"""The tracker's pose network: a 129 x 129 grey patch -> pose, position, next box, keypoints.

A MobileNet-style stack of depthwise-separable convolutions (about 0.3M parameters, a few
MFLOPs per patch) keeps single-thread CPU inference well under a millisecond or two. The
last 5 x 5 feature map is flattened rather than pooled, so the heads still know where the
face is in the patch (pos_size and box need that).

Outputs (the Opentrack contract, DESIGN.md §6; patch units map the patch to [-1, 1]):
- `quat` (4): x, y, z, w in the camera frame, unit norm, w >= 0;
- `pos_size` (3): head centre x, y and size (`coords` size / half the patch side);
- `box` (4): the next tracking box x0, y0, x1, y1;
- `keypoints` (68, 3): auxiliary target, iBUG order; x, y and depth in patch units;
- `rotaxis_scales_tril`, `pos_size_scales_tril` (3, 3): lower-triangular Cholesky factors
  of the error covariance of the rotation (axis-angle, radians) and of `pos_size`; their
  heads read gradient-stopped features, so the backbone is shaped by the other targets only.
The input is the brightness-normalised patch (`posenet.tracker.contract.normalize_brightness`).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from posenet.tracker.contract import POSE_INPUT_SIZE
from posenet.training import rotations
from posenet.training.registry import ModelConfig

STEM_FILTERS = 16
BLOCKS = ((32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (192, 2), (192, 1))  # (filters, stride)
SQUEEZE_FILTERS = 48  # 1x1 conv before flattening the 5 x 5 map
HIDDEN_UNITS = 256
NUM_KEYPOINTS = 68
TRIL_FLOOR = 1e-3  # smallest diagonal of a scale factor (keeps the covariance invertible)
IDENTITY_QUAT = keras.initializers.Constant([0.0, 0.0, 0.0, 1.0])  # start at the frontal pose, far from |q| = 0
POSE_OUTPUTS = ("quat", "pos_size", "box", "keypoints", "rotaxis_scales_tril", "pos_size_scales_tril")


@keras.saving.register_keras_serializable(package="posenet")
class CanonicalQuat(layers.Layer):
    """Normalise a raw 4-vector to a unit quaternion (x, y, z, w) with w >= 0."""

    def call(self, raw):
        q = rotations.normalize_quat(raw)
        return q * ops.where(q[..., 3:4] < 0.0, -1.0, 1.0)


@keras.saving.register_keras_serializable(package="posenet")
class LowerTriangular(layers.Layer):
    """A raw 9-vector -> 3 x 3 lower-triangular factor with a positive (softplus) diagonal.

    Built from constant masks only (no scatter), so it exports to plain elementwise ONNX ops.
    """

    def call(self, raw):
        matrix = ops.reshape(raw, (-1, 3, 3))
        eye = ops.eye(3, dtype=matrix.dtype)
        strict = ops.tril(ops.ones((3, 3), dtype=matrix.dtype), k=-1)
        return matrix * strict + (ops.softplus(matrix) + TRIL_FLOOR) * eye


@keras.saving.register_keras_serializable(package="posenet")
class StopGradient(layers.Layer):
    """Identity forward; no gradient backward. The uncertainty heads learn from the features
    without their likelihood loss (large early on) reshaping the shared backbone."""

    def call(self, inputs):
        return ops.stop_gradient(inputs)


def separable_block(x, filters: int, stride: int, name: str):
    """Depthwise 3x3 (stride) -> BN -> ReLU6 -> pointwise 1x1 -> BN -> ReLU6, residual when shapes allow."""
    shortcut = x
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_pw")(x)
    x = layers.BatchNormalization(name=f"{name}_pw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_pw_relu")(x)
    if stride == 1 and shortcut.shape[-1] == filters:
        x = layers.Add(name=f"{name}_add")([shortcut, x])
    return x


def conv_stem(x, filters: int):
    """Conv 3x3 stride 2 -> BN -> ReLU6: the first, full convolution of both tracker nets."""
    x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    return layers.ReLU(6.0, name="stem_relu")(x)


def backbone(x, blocks: tuple[tuple[int, int], ...] = BLOCKS, squeeze: int = SQUEEZE_FILTERS):
    """Stem, separable blocks, 1x1 squeeze, flatten and one hidden Dense layer."""
    x = conv_stem(x, STEM_FILTERS)
    for i, (filters, stride) in enumerate(blocks, start=1):
        x = separable_block(x, filters, stride, name=f"block{i}")
    x = layers.Conv2D(squeeze, 1, activation="relu", name="squeeze")(x)
    x = layers.Flatten(name="flatten")(x)
    return layers.Dense(HIDDEN_UNITS, activation="relu", name="hidden")(x)


def build_pose_net(config: ModelConfig) -> keras.Model:
    """The pose network on (129, 129, 1) NHWC patches; `config.input_size` is ignored (fixed by the contract)."""
    inputs = pose_input()
    return keras.Model(inputs, pose_outputs(backbone(inputs)), name="pose_net")


def pose_input() -> keras.KerasTensor:
    """The contract's input: brightness-normalised grey patches, (129, 129, 1) NHWC, named "x"."""
    return keras.Input((POSE_INPUT_SIZE, POSE_INPUT_SIZE, 1), name="x")


def pose_outputs(features) -> dict:
    """The contract's outputs (and the auxiliary keypoints) from one feature vector."""
    detached = StopGradient(name="uncertainty_features")(features)
    return {
        "quat": CanonicalQuat(name="quat")(layers.Dense(4, bias_initializer=IDENTITY_QUAT, name="quat_raw")(features)),
        "pos_size": layers.Dense(3, name="pos_size")(features),
        "box": layers.Dense(4, name="box")(features),
        "keypoints": layers.Reshape((NUM_KEYPOINTS, 3), name="keypoints")(
            layers.Dense(NUM_KEYPOINTS * 3, name="keypoints_flat")(features)),
        "rotaxis_scales_tril": LowerTriangular(name="rotaxis_scales_tril")(
            layers.Dense(9, name="rotaxis_scales_raw")(detached)),
        "pos_size_scales_tril": LowerTriangular(name="pos_size_scales_tril")(
            layers.Dense(9, name="pos_size_scales_raw")(detached)),
    }
