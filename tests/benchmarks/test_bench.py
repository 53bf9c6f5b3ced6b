"""`posenet bench`: every named benchmark resolves to a function of `quick`, and its imports work."""

from __future__ import annotations

import inspect

import pytest

from posenet import bench


@pytest.mark.parametrize("name", sorted(bench.BENCHMARKS))
def test_every_benchmark_resolves(name):
    spec, title = bench.BENCHMARKS[name]
    function = bench._load(spec)
    assert callable(function) and title
    assert list(inspect.signature(function).parameters) == ["quick"]
