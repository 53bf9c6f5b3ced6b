"""`posenet bench sim2real`: the crop rule, the mirror relabelling, and the whole proxy end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_tools import synth
from posenet.benchmarks import sim2real
from posenet.cli import main
from posenet.core import geometry, h5format


@pytest.fixture(scope="module")
def real_file(tmp_path_factory):
    """A tiny stand-in for a converted real set: 12 rendered faces, marked as AFLW2000-3D so the
    protocol filter runs (the proxy must not care where the pixels come from)."""
    fields = synth.synthesize(synth.SynthConfig(), 12, seed=99, workers=1)
    path = tmp_path_factory.mktemp("real") / "real.h5"
    return h5format.write_dataset(path, fields, {"source": "AFLW2000-3D (test stand-in)"})


def test_crop_rule_centres_the_landmark_box():
    image = np.zeros((200, 300, 3), np.uint8)
    image[80:120, 130:170] = 255  # the "face": exactly the landmark box below
    points = np.array([[130.0, 80.0], [170.0, 120.0]])
    patch = sim2real.crop_patch(image, points, scale=1.0, size=50)  # side 1.25 x 40 = 50 px: 1 px per px
    assert patch.shape == (50, 50)
    assert patch[5:45, 5:45].min() == 255 and patch[:4].max() == 0 and patch[:, -4:].max() == 0


def test_mirrored_batches_keep_exact_labels():
    rng = np.random.default_rng(0)
    patch = rng.integers(0, 255, (1, sim2real.SOURCE_SIZE, sim2real.SOURCE_SIZE), np.uint8)
    quat = geometry.aflw_to_quat(np.radians([10.0, 30.0, -5.0]))
    matrices = geometry.quat_to_matrix(quat)[None]
    seen = set()
    for seed in range(16):
        _, labels = sim2real.augmented_batch(np.random.default_rng(seed), patch, matrices)
        got = geometry.matrix_to_quat(labels[0].astype(np.float64))
        mirrored = geometry.geodesic_deg(got, geometry.mirror_quat(quat)) < 1e-3
        assert mirrored or geometry.geodesic_deg(got, quat) < 1e-3
        seen.add(bool(mirrored))
    assert seen == {True, False}


def test_pitch_line_fits_near_frontal_faces_only():
    rng = np.random.default_rng(0)
    true = np.column_stack([rng.uniform(-80, 80, 400), rng.uniform(-50, 50, 400), np.zeros(400)])
    near = (np.abs(true[:, 0]) < sim2real.NEAR_FRONTAL_DEG) & (np.abs(true[:, 1]) < sim2real.NEAR_FRONTAL_DEG)
    predicted = true.copy()
    predicted[:, 1] = np.where(near, 0.5 * true[:, 1] + 3.0, 40.0)  # far faces read wildly: left out
    slope, intercept = sim2real.pitch_line(true, predicted)
    assert slope == pytest.approx(0.5) and intercept == pytest.approx(3.0)
    predicted[:, 0] = np.where(near, 0.8 * true[:, 0] - 1.0, -60.0)
    assert sim2real.yaw_line(true, predicted) == pytest.approx((0.8, -1.0))
    assert sim2real.pitch_line(true, predicted) == pytest.approx((0.5, 3.0))  # each axis on its own


class TopBandReader:
    """A 'net' that reads pitch from the top band of its input alone (its mean brightness, in degrees)."""

    def predict(self, inputs: np.ndarray, batch_size: int, verbose: int) -> np.ndarray:
        pitch = 40.0 * inputs[:, : sim2real.QUARTER].mean(axis=(1, 2, 3))
        return geometry.quat_to_matrix(geometry.aflw_to_quat(np.column_stack(
            [np.radians(pitch), np.zeros_like(pitch), np.zeros_like(pitch)])))


def test_masking_probe_finds_the_band_a_net_reads():
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 100, (20, sim2real.SOURCE_SIZE, sim2real.SOURCE_SIZE)).astype(np.uint8)
    patches[:, : (sim2real.SOURCE_SIZE - sim2real.INPUT_SIZE) // 2 + sim2real.QUARTER] = 220  # a bright top band
    quats = geometry.aflw_to_quat(np.zeros((20, 3)))
    probe = sim2real.masking_probe(TopBandReader(), {"faces": (patches, quats)})
    assert np.isnan(probe["none"]["faces"]["pitch_slope"])  # every label frontal: no line to fit
    assert list(probe) == ["none", *sim2real.PROBE_MASKS]
    moved = {band: abs(probe[band]["faces"]["bias_pitch"] - probe["none"]["faces"]["bias_pitch"]) for band in probe}
    assert probe["none"]["faces"]["bias_pitch"] == pytest.approx(40.0 * 220 / 255, abs=0.1)
    assert moved["none"] == 0.0 and moved["top quarter"] > 10.0  # hidden under the patch's darker mean
    assert max(moved[band] for band in ("bottom quarter", "centre half")) < 1e-6  # bands it never reads


def test_bench_sim2real_quick_end_to_end(real_file, tmp_path, capsys):
    out = tmp_path / "s2r.json"
    assert main(["bench", "sim2real", "--quick", "--real", str(real_file), "--json", str(out),
                 "--results", str(tmp_path / "results")]) == 0
    result = json.loads(out.read_text())
    assert set(sim2real.KEYS) <= set(result) and result["n"] == 12
    assert all(np.isfinite(result[key]) for key in (*sim2real.KEYS, "pitch_slope", "pitch_at_0", "yaw_slope", "yaw_at_0"))
    assert set(result["probe"]) == {"none", *sim2real.PROBE_MASKS}
    assert result["probe"]["none"]["real"]["mae"] == pytest.approx(result["mae"], abs=1e-3)
    assert result["synth_mae"] < 20.0  # it learned the rendered faces
    assert "sim2real: real MAE" in capsys.readouterr().out
    assert "Sim-to-real proxy" in (tmp_path / "results" / "benchmarks.md").read_text()


def test_bench_sim2real_missing_real_file_is_one_line(tmp_path, capsys):
    assert main(["bench", "sim2real", "--quick", "--real", str(tmp_path / "none.h5"),
                 "--results", str(tmp_path / "results")]) == 2
    assert "none.h5: no such real dataset file" in capsys.readouterr().err


@pytest.mark.parametrize("label", list(sim2real.ABLATION))
def test_every_ablation_row_is_a_valid_renderer_setting(label):
    """Each row only changes SynthConfig fields, to values the renderer accepts (a typo or a bad
    value would otherwise surface after an hour of `bench sim2real-ablation`)."""
    import dataclasses

    config = dataclasses.replace(synth.SynthConfig(), **sim2real.ABLATION[label])
    assert len(synth.synthesize(config, 1, seed=0, workers=1)["quats"]) == 1
