"""`posenet bench`: every named benchmark resolves to a function of `quick`, and its imports work."""

from __future__ import annotations

import inspect

import pytest

from posenet import bench, cli


@pytest.mark.parametrize("name", sorted(bench.BENCHMARKS))
def test_every_benchmark_resolves(name):
    spec, title = bench.BENCHMARKS[name]
    function = bench._load(spec)
    assert callable(function) and title
    parameters = list(inspect.signature(function).parameters)
    assert parameters[0] == "quick" and set(parameters[1:]) <= set(bench.OPTIONS.values())


def test_an_impossible_output_fails_before_any_benchmark_runs(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert cli.main(["bench", "sim2real", "--quick", "--json", str(blocker / "out.json")]) == 2
    err = capsys.readouterr().err
    assert "a-file is not a directory" in err and len(err.strip().splitlines()) == 1  # no proxy was trained
