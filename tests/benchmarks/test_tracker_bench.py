"""The tracker benchmark's comparison of our tracker with Opentrack's on the same frames."""

from __future__ import annotations

import numpy as np

from posenet.benchmarks.tracker import agreement
from posenet.core import geometry


def test_agreement_counts_frames_and_measures_the_angle_where_both_tracked():
    theirs = geometry.rotvec_to_quat(np.radians([[0.0, 10.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 20.0], [0.0, -30.0, 0.0]]))
    turn = geometry.rotvec_to_quat(np.radians([0.0, 0.0, 3.0]))
    ours = np.array([geometry.quat_multiply(turn, q) for q in theirs])
    ours[1] = np.nan  # ours lost the face where Opentrack had it
    theirs[3] = np.nan  # and found one where Opentrack had none
    ours_ok, theirs_ok, missed, median = agreement(ours, theirs)
    assert (ours_ok, theirs_ok, missed) == (3, 3, 1)
    assert abs(median - 3.0) < 1e-6


def test_agreement_without_common_frames_is_nan():
    ours = np.full((2, 4), np.nan)
    assert np.isnan(agreement(ours, geometry.rotvec_to_quat(np.zeros((2, 3))))[3])
