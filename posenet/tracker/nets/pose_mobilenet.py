"""The tracker's pose network on an ImageNet-trained MobileNetV2 trunk (issue #13's transfer recipe).

Same contract as `pose_net` (grey 129 x 129 brightness-normalised patch in; quat, pos_size, box,
keypoints and the uncertainty factors out), but the features come from torchvision's ImageNet
MobileNetV2 (`posenet.training.imagenet`, offline), whose filters were learned on real photos:
the renderer only has to teach the heads and adjust the trunk, not invent features that real
faces share with rendered ones. The grey patch is mapped to what the ImageNet weights expect
(grey in [0, 1] on all three channels, torchvision's normalisation). BatchNorm stays frozen in
inference mode. The last 5 x 5 map is squeezed and flattened, as in `pose_net`, so the heads
know where the face is in the patch.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from posenet.tracker.contract import INPUT_OFFSET, POSE_INPUT_SIZE
from posenet.tracker.nets.pose_net import HIDDEN_UNITS, pose_input, pose_outputs
from posenet.training import imagenet
from posenet.training.registry import ModelConfig

GREY_GAIN = 2.0  # contract input (about -0.5 .. 0, the 90th percentile at -0.05) -> grey in [0, 1]
SQUEEZE_FILTERS = 64  # 1x1 conv on the 5 x 5 x 1280 map before flattening
TRUNK = "mobilenet_v2"


def imagenet_rgb(x):
    """Contract input -> torchvision-normalised RGB, as one fixed 1x1 convolution (it exports to ONNX as
    plain constants): grey = (x - offset) * gain on all three channels, then (grey - mean_c) / std_c."""
    mean, std = np.asarray(imagenet.TORCH_MEAN_RGB), np.asarray(imagenet.TORCH_STD_RGB)
    kernel = (GREY_GAIN / std).reshape(1, 1, 1, 3)
    bias = (-INPUT_OFFSET * GREY_GAIN - mean) / std
    to_rgb = layers.Conv2D(3, 1, kernel_initializer=keras.initializers.Constant(kernel),
                           bias_initializer=keras.initializers.Constant(bias), trainable=False, name="grey_to_imagenet")
    return to_rgb(x)


def build_pose_mobilenet(config: ModelConfig) -> keras.Model:
    """The ImageNet-trunk pose net; `config.weights` None (random: tests), "imagenet" or a legacy .pth path."""
    inputs = pose_input()
    trunk = imagenet.build_mobilenet_v2((POSE_INPUT_SIZE, POSE_INPUT_SIZE, 3), weights=config.weights, name=TRUNK)
    imagenet.freeze_batchnorm(trunk)
    x = trunk(imagenet_rgb(inputs))
    x = layers.Conv2D(SQUEEZE_FILTERS, 1, activation="relu", name="squeeze")(x)
    x = layers.Flatten(name="flatten")(x)
    features = layers.Dense(HIDDEN_UNITS, activation="relu", name="hidden")(x)
    return keras.Model(inputs, pose_outputs(features), name="pose_mobilenet")
