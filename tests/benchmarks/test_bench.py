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
    parameters = list(inspect.signature(function).parameters)
    assert parameters[0] == "quick" and set(parameters[1:]) <= set(bench.OPTIONS.values())
