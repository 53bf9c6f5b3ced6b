"""The mean-pose baseline: one rotation for every sample, the floor any learned model must beat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from posenet.core import geometry, h5format
from posenet.core.errors import PosenetError


class MeanPosePredictor:
    """Predicts one rotation for every sample: the chordal L2 mean of the training quaternions."""

    name = "mean"

    def __init__(self, train_path: str | Path):
        quats = h5format.read_dataset(train_path, names=["quats"])["quats"]
        if not len(quats):
            raise PosenetError(f"{train_path}: the training file is empty")
        self.quat = geometry.canonical_quat(Rotation.from_quat(np.asarray(quats, np.float64)).mean().as_quat())

    def predict(self, dataset: h5format.Dataset) -> np.ndarray:
        return np.tile(self.quat, (len(dataset), 1))
