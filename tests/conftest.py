"""Shared fixtures: the read-only sample data beside the checkout, skipped when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from posenet.core.paths import SHARED

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (sample datasets); the test is skipped when it is not there."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip(f"shared sample data not found at {path}")
    return path


@pytest.fixture(scope="session")
def opentrack_models() -> Path:
    """`../shared/peers/opentrack` (Opentrack's published ONNX models)."""
    path = SHARED / "peers" / "opentrack"
    if not path.is_dir():
        pytest.skip(f"Opentrack models not found at {path}")
    return path
