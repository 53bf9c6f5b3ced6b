"""`posenet bench sim2real-peer`: a real-trained pose net reads rendered faces; its offset is measured."""

from __future__ import annotations

import numpy as np
import pytest

from data_tools import synth
from posenet.benchmarks import sim2real_peer
from posenet.cli import main
from posenet.core import geometry, h5format
from posenet.core.errors import PosenetError

PITCH_OFFSET_DEG = 4.0


class PitchedReader:
    """Reads every face exactly, but PITCH_OFFSET_DEG more pitched: a peer that sees faces tilted."""

    name = "pitched"

    def predict(self, dataset: h5format.Dataset) -> np.ndarray:
        pitch_yaw_roll = geometry.quat_to_aflw(np.asarray(dataset["quats"], np.float64))
        pitch_yaw_roll[:, 0] += np.radians(PITCH_OFFSET_DEG)
        return geometry.aflw_to_quat(pitch_yaw_roll)


def test_a_reader_that_sees_faces_tilted_shows_its_offset_on_rendered_faces():
    result = sim2real_peer.measure(faces=64, real=None, predictor=PitchedReader())
    rendered = result["rendered"]
    assert rendered["n"] == 64 and "real" not in result
    assert rendered["bias_pitch"] == pytest.approx(PITCH_OFFSET_DEG, abs=0.3)
    assert abs(rendered["bias_yaw"]) < 0.3 and abs(rendered["bias_roll"]) < 0.3
    assert rendered["pitch_slope"] == pytest.approx(1.0, abs=0.02)
    assert rendered["pitch_intercept"] == pytest.approx(PITCH_OFFSET_DEG, abs=0.3)


def test_a_missing_peer_model_is_one_line(tmp_path):
    with pytest.raises(PosenetError, match="nowhere.onnx: Opentrack's published pose model is missing"):
        sim2real_peer.peer_predictor(tmp_path / "nowhere.onnx")


def test_a_real_file_without_face_boxes_fails_before_rendering(tmp_path):
    fields = synth.synthesize(synth.SynthConfig(), 2, seed=1, workers=1)
    del fields["rois"]
    path = h5format.write_dataset(tmp_path / "norois.h5", fields, {"source": "test"})
    with pytest.raises(PosenetError, match="norois.h5: field 'rois' is missing"):
        sim2real_peer.measure(faces=10_000_000, real=path, predictor=PitchedReader())


def test_bench_sim2real_peer_end_to_end(opentrack_models, shared_data, tmp_path, capsys):
    assert main(["bench", "sim2real-peer", "--quick", "--results", str(tmp_path / "r")]) == 0
    line = capsys.readouterr().out
    assert "sim2real peer: Opentrack's real-trained pose net on 300 rendered faces" in line
    assert "on 300 real faces" in line
    section = (tmp_path / "r" / "bench" / "sim2real-peer.md").read_text()
    rendered_mae = float(section.split("| rendered (current defaults) | 300 | ")[1].split(" |")[0])
    assert rendered_mae < 15.0  # the peer reads rendered faces at all: the input path fed it real-looking crops
