"""Shared fixtures: the read-only sample data beside the checkout (skipped when absent), a private weights cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from posenet.core.paths import SHARED

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")



@pytest.fixture(scope="session", autouse=True)
def private_weights_cache(tmp_path_factory):
    """Converted ImageNet weights go to a per-session folder, never to the user's ~/.cache/posenet."""
    previous = os.environ.get("POSENET_CACHE")
    os.environ["POSENET_CACHE"] = str(tmp_path_factory.mktemp("posenet-cache"))
    yield
    if previous is None:
        os.environ.pop("POSENET_CACHE", None)
    else:
        os.environ["POSENET_CACHE"] = previous


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
