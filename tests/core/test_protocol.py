"""The evaluation protocols: the AFLW2000-3D 99-degree filter on raw angles."""

from __future__ import annotations

import numpy as np

from posenet.core import geometry
from posenet.core.h5format import Dataset
from posenet.core.protocol import PROTOCOLS


def dataset(**fields) -> Dataset:
    count = len(next(iter(fields.values())))
    return Dataset({"images": [np.zeros(1, np.uint8)] * count, **fields})


def test_aflw_filter_uses_raw_pose_para():
    raw = np.radians([[10.0, 20.0, 30.0], [99.0, -99.0, 99.0], [-99.5, 0.0, 0.0], [0.0, 120.0, 0.0]])
    mask = PROTOCOLS["aflw2000"].mask(dataset(pose_para=raw, quats=geometry.aflw_to_quat(raw)))
    assert mask.tolist() == [True, True, False, False]


def test_aflw_filter_falls_back_to_quaternions():
    raw = np.radians([[10.0, 20.0, 30.0], [0.0, 0.0, 130.0]])
    assert PROTOCOLS["aflw2000"].mask(dataset(quats=geometry.aflw_to_quat(raw))).tolist() == [True, False]


def test_every_protocol_has_a_one_line_description():
    for protocol in PROTOCOLS.values():
        assert protocol.description and "\n" not in protocol.description
    assert PROTOCOLS["all"].mask(dataset(quats=np.zeros((3, 4)))).all()


def test_full_aflw2000_labels_keep_1969(shared_data):
    """opal23's labels for all 2000 images: yaw = -Pose_Para yaw, pitch and roll as is (degrees)."""
    rows = [line.split(";") for line in (shared_data / "aflw2000" / "aflw2000_all_labels_opal23.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    yaw, pitch, roll = np.array([[float(v) for v in row[2:5]] for row in rows]).T
    raw = np.radians(np.column_stack([pitch, -yaw, roll]))
    assert len(raw) == 2000
    assert PROTOCOLS["aflw2000"].mask(dataset(pose_para=raw)).sum() == 1969
