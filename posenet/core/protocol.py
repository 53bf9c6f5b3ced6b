"""Evaluation protocols: which samples of a dataset count, stated once.

`PROTOCOLS[name].mask(dataset)` returns a boolean array over the samples; `posenet
evaluate --protocol NAME` keeps those. "aflw2000" is the literature's filter (Hopenet,
FSA-Net, 6DRepNet, ...): keep samples whose raw `Pose_Para` |pitch|, |yaw| and |roll|
are all <= 99 degrees (1969 of the 2000 images). It reads the raw angles that the
converter stores as `pose_para`, because angles recomputed from the quaternion can fall
on the other Euler branch near the limits and change the kept set; files without
`pose_para` (e.g. Opentrack's) fall back to `geometry.quat_to_aflw(quats)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from posenet.core import geometry
from posenet.core.h5format import Dataset

AFLW_LIMIT_DEG = 99.0
# AFLW2000-3D's poses and landmarks come from a weak-perspective (scaled orthographic) 3DMM fit:
# PnP inverts them faithfully only with a near-orthographic camera. At f = 1 width the oracle's
# pitch error follows the true pitch (slope 0.4) and the mean hides a head-frame offset.
AFLW_LABEL_FOCAL_WIDTHS = 30.0


@dataclass(frozen=True)
class Protocol:
    description: str
    mask: Callable[[Dataset], np.ndarray]
    # The camera the labels assume, in image widths, for landmark PnP on files without a camera:
    # None is DESIGN's default (f = 1 width); a large value is near-orthographic.
    label_focal_widths: float | None = None


def raw_aflw_angles(dataset: Dataset) -> np.ndarray:
    """(N, 3) raw (pitch, yaw, roll) radians: `pose_para` when stored, else from `quats`."""
    if "pose_para" in dataset:
        return np.asarray(dataset["pose_para"], dtype=np.float64)
    return geometry.quat_to_aflw(np.asarray(dataset["quats"]))


def within_aflw_limit(raw_angles: np.ndarray) -> np.ndarray:
    """(N,) whether raw Pose_Para (pitch, yaw, roll) radians all lie within AFLW_LIMIT_DEG."""
    return np.all(np.degrees(np.abs(raw_angles)) <= AFLW_LIMIT_DEG, axis=1)


def aflw2000_mask(dataset: Dataset) -> np.ndarray:
    return within_aflw_limit(raw_aflw_angles(dataset))


def all_mask(dataset: Dataset) -> np.ndarray:
    return np.ones(len(dataset), dtype=bool)


def protocol_of(dataset: Dataset) -> str | None:
    """The protocol a dataset's figures are reported under: "aflw2000" for an AFLW2000-3D file
    (its `source` says so: the converter's and the dev split's), else None (every sample)."""
    return "aflw2000" if "aflw2000" in str(dataset.attrs.get("source", "")).lower() else None


PROTOCOLS: dict[str, Protocol] = {
    "all": Protocol("every sample", all_mask),
    "aflw2000": Protocol(f"raw Pose_Para |pitch|, |yaw|, |roll| <= {AFLW_LIMIT_DEG:g} deg "
                         "(1969 of AFLW2000-3D's 2000 images)", aflw2000_mask, AFLW_LABEL_FOCAL_WIDTHS),
}
