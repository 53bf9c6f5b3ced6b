"""`posenet bench sim2real-layout`: the landmark-layout read-out finds a renderer that sees faces askew."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from data_tools import synth
from posenet.benchmarks import sim2real_layout
from posenet.cli import main
from posenet.core import h5format
from posenet.core.errors import PosenetError


def _stand_in(directory, name: str, config: synth.SynthConfig):
    """Rendered faces marked as AFLW2000-3D: a 'real' file whose layout we control."""
    fields = synth.synthesize(config, 40, seed=99, workers=1)
    return h5format.write_dataset(directory / name, fields, {"source": "AFLW2000-3D (test stand-in)"})


def test_read_out_is_unbiased_on_the_renderer_itself_and_sees_a_skewed_camera(tmp_path):
    same = _stand_in(tmp_path, "same.h5", synth.SynthConfig())
    near_off_axis = dataclasses.replace(synth.SynthConfig(), face_on_axis=False, face_distance_mm=(400.0, 400.0))
    skewed = _stand_in(tmp_path, "skewed.h5", near_off_axis)
    unbiased = sim2real_layout.measure(same, faces=800)
    biased = sim2real_layout.measure(skewed, faces=800)
    assert unbiased["n_real"] > 10 and unbiased["synth_fit_mae"] < 2.0
    assert all(abs(unbiased[f"bias_{axis}"]) < 1.5 for axis in sim2real_layout.AXES)
    assert abs(biased["bias_pitch"] - unbiased["bias_pitch"]) > 2.0  # a face seen from above reads as pitched


def test_normalised_layout_is_scale_and_shift_free():
    points = np.random.default_rng(0).uniform(0, 100, (3, 68, 2))
    np.testing.assert_allclose(sim2real_layout.normalised_layout(points),
                               sim2real_layout.normalised_layout(points * 2.5 + 40.0), atol=1e-12)


def test_bench_sim2real_layout_end_to_end(tmp_path, capsys):
    real = _stand_in(tmp_path, "real.h5", synth.SynthConfig())
    assert main(["bench", "sim2real-layout", "--quick", "--real", str(real), "--results", str(tmp_path / "r")]) == 0
    assert "sim2real layout: linear read-out" in capsys.readouterr().out
    assert "Sim-to-real landmark layout" in (tmp_path / "r" / "benchmarks.md").read_text()


def test_missing_landmarks_is_one_line(tmp_path, capsys):
    fields = synth.synthesize(synth.SynthConfig(), 2, seed=1, workers=1)
    del fields["pt3d_68"]
    path = h5format.write_dataset(tmp_path / "nolm.h5", fields, {"source": "test"})
    with pytest.raises(PosenetError, match="nolm.h5: field 'pt3d_68' is missing"):
        sim2real_layout.real_layouts(path)
