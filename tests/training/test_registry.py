"""Every registered net, one test each: it builds, runs on zeros with the outputs its task
promises, and survives a `.keras` save/load round trip (custom layers registered)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from posenet.core.errors import PosenetError
from posenet.training.registry import MODELS, ModelConfig, build_model, builder_module, model_entry

SMALL_INPUT = 64  # study nets take any square size; tracker nets have their contract's fixed input
OUTPUTS_BY_TASK = {
    "rotvec": {None: (3,)},  # one unnamed output
    "pose": {"quat": (4,), "pos_size": (3,), "box": (4,), "keypoints": (68, 3),
             "rotaxis_scales_tril": (3, 3), "pos_size_scales_tril": (3, 3)},
    "localizer": {"logit_box": (5,)},
}


def outputs_of(model: keras.Model, batch: np.ndarray) -> dict:
    result = model(batch, training=False)
    if isinstance(result, dict):
        return {name: np.asarray(value) for name, value in result.items()}
    if isinstance(result, (list, tuple)):
        return {name: np.asarray(value) for name, value in zip(model.output_names, result)}
    return {None: np.asarray(result)}


def test_every_task_is_known():
    assert {entry.task for entry in MODELS.values()} <= set(OUTPUTS_BY_TASK)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_net_builds_runs_and_round_trips(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(name, ModelConfig(input_size=SMALL_INPUT))
    batch = np.zeros((2, *model.input_shape[1:]), np.float32)
    outputs = outputs_of(model, batch)
    expected = OUTPUTS_BY_TASK[model_entry(name).task]
    if None in expected:
        assert len(outputs) == 1
        outputs = {None: next(iter(outputs.values()))}
    assert {key: value.shape[1:] for key, value in outputs.items()} == expected
    assert all(np.isfinite(value).all() for value in outputs.values())

    path = tmp_path / f"{name}.keras"
    model.save(path)
    builder_module(name)  # registers custom layers, as loading a run does
    loaded = keras.models.load_model(path, compile=False)
    reloaded = outputs_of(loaded, batch)
    if None in expected:
        reloaded = {None: next(iter(reloaded.values()))}
    for key, value in outputs.items():
        np.testing.assert_allclose(reloaded[key], value, atol=1e-6)


def test_unknown_name_is_one_line():
    with pytest.raises(PosenetError, match="unknown model 'nonsense'"):
        model_entry("nonsense")
