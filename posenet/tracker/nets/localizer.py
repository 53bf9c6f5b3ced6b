"""The tracker's localizer: a 224 x 288 grey frame -> face logit and one face box.

It only has to find the one head in a webcam frame when the track is lost, so it is small:
the pose net's stem and separable blocks, down to a 7 x 9 map that is flattened (the box
needs positions) into one hidden layer and a single 5-vector `logit_box` = face logit,
box x0, y0, x1, y1 in [-1, 1] over the frame (DESIGN.md §6). The input is pixel/255 - 0.5.
"""

from __future__ import annotations

import keras
from keras import layers

from posenet.tracker.contract import LOCALIZER_INPUT_HW
from posenet.tracker.nets.pose_net import backbone
from posenet.training.registry import ModelConfig

BLOCKS = ((24, 2), (32, 2), (32, 1), (64, 2), (64, 1), (96, 2), (96, 1))  # 112x144 -> 7x9
SQUEEZE_FILTERS = 32
LOCALIZER_OUTPUT = "logit_box"


def build_localizer(config: ModelConfig) -> keras.Model:
    """The localizer on (224, 288, 1) NHWC frames; `config.input_size` is ignored (fixed by the contract)."""
    inputs = keras.Input((*LOCALIZER_INPUT_HW, 1), name="x")
    features = backbone(inputs, BLOCKS, SQUEEZE_FILTERS)
    outputs = {LOCALIZER_OUTPUT: layers.Dense(5, name=LOCALIZER_OUTPUT)(features)}
    return keras.Model(inputs, outputs, name="localizer")
