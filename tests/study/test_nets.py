"""The study nets (C1_NET, C2_NET, C_RESNET): parameter counts, learning, backbone weights and partial unfreezing."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from posenet.core.errors import PosenetError
from posenet.study.losses import rotvec_mse
from posenet.study.nets import c_resnet, frozen
from posenet.training.registry import ModelConfig, build_model

# DESIGN §5: about 2.63M, 5.45M and 25.8M parameters at 224 px.
PARAMETERS_224 = {"C1_NET": 2.63e6, "C2_NET": 5.45e6, "C_RESNET": 25.8e6}


@pytest.mark.parametrize("name", sorted(PARAMETERS_224))
def test_parameter_counts_at_224(name):
    model = build_model(name, ModelConfig(input_size=224))
    assert model.count_params() == pytest.approx(PARAMETERS_224[name], rel=0.02)
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 3)


def test_head_is_per_position_without_pooling():
    model = build_model("C1_NET", ModelConfig(input_size=64))
    dense = model.get_layer("head_dense_per_position")
    assert dense.output.shape == (None, 8, 8, 1024)  # applied at every position of the 1/8 map
    assert not any("pool" in layer.name and "global" in layer.name for layer in model.layers)


def test_c1_net_overfits_a_tiny_batch():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 32, 32, 3)).astype("float32")
    rotvecs = rng.normal(0, 0.5, size=(8, 3)).astype("float32")
    model = build_model("C1_NET", ModelConfig(input_size=32))
    model.compile(keras.optimizers.Adam(1e-3), loss=rotvec_mse)
    losses = model.fit(images, rotvecs, batch_size=8, epochs=60, verbose=0).history["loss"]
    assert losses[-1] < losses[0] / 10  # training-mode loss: BN moving averages lag on 60 steps


def test_c2_net_runs_at_small_inputs():
    model = build_model("C2_NET", ModelConfig(input_size=64))
    assert model(np.zeros((2, 64, 64, 3), "float32")).shape == (2, 3)
    assert sum(layer.strides == (2, 2) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)) == 5


def test_c_resnet_is_frozen_by_default_and_partially_unfrozen_on_request():
    whole = build_model("C_RESNET", ModelConfig(input_size=32))
    assert frozen.is_frozen(whole)
    assert whole.get_layer(frozen.HEAD).trainable_weights
    partial = build_model("C_RESNET", ModelConfig(input_size=32, trainable_from="conv4_block4"))
    backbone = partial.get_layer(c_resnet.BACKBONE)
    trainable = {layer.name.split("_")[0] + "_" + layer.name.split("_")[1]
                 for layer in backbone.layers if layer.trainable and layer.weights}
    assert trainable == {"conv4_block4", "conv4_block5", "conv4_block6", "conv5_block1", "conv5_block2", "conv5_block3"}
    assert not frozen.is_frozen(partial)


def test_c_mobilenet_is_frozen_and_mobilenet_quat_trains_its_backbone():
    assert frozen.is_frozen(build_model("C_MOBILENET", ModelConfig(input_size=32)))
    modern = build_model("MOBILENET_QUAT", ModelConfig(input_size=32))
    assert not frozen.is_frozen(modern) and frozen.backbone_of(modern) is None
    backbone = modern.get_layer("mobilenet_v2")
    convolutions = [layer for layer in backbone.layers
                    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    assert len(convolutions) == 52
    assert len(backbone.trainable_weights) == len(convolutions)  # BatchNorm frozen, in inference mode


def test_mobilenet_quat_outputs_the_rotation_vector_of_its_quaternion():
    """The quaternion layer's output: normalised, shortest arc, as geometry converts it."""
    from posenet.core import geometry
    from posenet.study.nets.mobilenet_quat import QuatToRotvec

    quats = np.array([[0.1, -0.2, 0.3, 2.0], [0.0, 0.0, 0.0, 1.0], [0.3, 0.1, 0.0, -0.9]], np.float32)
    got = np.asarray(QuatToRotvec()(quats))
    unit = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    np.testing.assert_allclose(got, geometry.quat_to_rotvec(unit), atol=1e-6)


def test_c_resnet_imagenet_weights_offline_are_one_line(tmp_path, monkeypatch):
    """--weights imagenet asks Keras to download once; offline (here: the download fails) one line says
    what to do instead. The test never touches the network."""
    import keras

    def offline(name, origin, **kwargs):
        assert origin == c_resnet.IMAGENET_URL and kwargs["file_hash"] == c_resnet.IMAGENET_MD5
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(PosenetError, match="could not be downloaded \\(OSError\\); pass a local copy .* --weights PATH"):
        build_model("C_RESNET", ModelConfig(input_size=32, weights="imagenet"))
    with pytest.raises(PosenetError, match="no such ResNet50 weights file"):
        build_model("C_RESNET", ModelConfig(input_size=32, weights=str(tmp_path / "missing.h5")))
    with pytest.raises(PosenetError, match="conv4_block4"):
        build_model("C_RESNET", ModelConfig(input_size=32, trainable_from="conv2"))


def test_c_resnet_loads_a_local_weights_file(tmp_path):
    source = c_resnet.build_backbone(ModelConfig(input_size=32))
    path = tmp_path / "resnet50_notop.weights.h5"
    source.save_weights(path)
    model = build_model("C_RESNET", ModelConfig(input_size=32, weights=str(path)))
    loaded = model.get_layer(c_resnet.BACKBONE).get_layer("conv1_conv").kernel
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(source.get_layer("conv1_conv").kernel))


def test_unknown_model_name():
    with pytest.raises(PosenetError, match="unknown model 'C3_NET'"):
        build_model("C3_NET")
