"""Read a PyTorch checkpoint in the legacy (pre-1.6) `torch.save` format without PyTorch and
without unpickling arbitrary objects.

A legacy file is five pickles and the raw tensor data: a magic number, the protocol version,
system info, the state dict (whose tensors point to storages by key), the list of storage keys,
then each storage as an int64 element count followed by its little-endian bytes.

Unpickling runs whatever callable a file names, so the unpickler here resolves exactly the
globals a state dict needs (an OrderedDict, torch's tensor rebuild function and the typed storage
classes) to harmless stand-ins, and refuses any other global with one line. The result is a plain
{name: numpy array} dict.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from posenet.core.errors import PosenetError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {  # torch's typed storages -> numpy (little-endian) dtypes
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
    "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


@dataclass(frozen=True)
class StorageRef:
    """A storage named in the state dict; its bytes come after the pickles."""

    key: str
    dtype: str
    count: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor as a view (offset, shape, strides in elements) of a storage."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(frozen=True)
class _StorageType:
    dtype: str


def _rebuild_tensor(storage: StorageRef, offset: int, shape: tuple, stride: tuple, *_ignored) -> TensorRef:
    """Stand-in for torch._utils._rebuild_tensor_v2 (requires_grad and hooks are dropped)."""
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError("a tensor that is not backed by a storage record")
    return TensorRef(storage, int(offset), tuple(int(n) for n in shape), tuple(int(n) for n in stride))


def _empty_ordered_dict(*args) -> collections.OrderedDict:
    """OrderedDict, as a state dict and its (empty) backward-hooks argument build it."""
    return collections.OrderedDict(*args)


class _StateDictUnpickler(pickle.Unpickler):
    """Resolves only the globals of a legacy state dict; storages become StorageRef records."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return _empty_ordered_dict
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        raise pickle.UnpicklingError(f"names the global {module}.{name}, which a state dict never needs")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"an unexpected persistent record {str(pid)[:60]}")
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("a storage view, which this reader does not support")
        return StorageRef(str(pid[2]), pid[1].dtype, int(pid[4]))


def _safe_load(handle: BinaryIO):
    """One pickle of plain data (no globals at all): the header records and the key list."""
    class Plain(_StateDictUnpickler):
        def find_class(self, module: str, name: str):
            raise pickle.UnpicklingError(f"names the global {module}.{name} in a header record")
    return Plain(handle).load()


def _read_storages(handle: BinaryIO, keys: list, wanted: dict[str, StorageRef]) -> dict[str, np.ndarray]:
    """The raw storages that follow the pickles, in the order of `keys`."""
    arrays = {}
    for key in keys:
        ref = wanted.get(str(key))
        if ref is None:
            raise pickle.UnpicklingError(f"storage {key} is not used by any tensor")
        count = np.frombuffer(handle.read(8), "<i8")
        if count.size != 1 or int(count[0]) != ref.count:
            raise pickle.UnpicklingError(f"storage {key} has a bad element count")
        nbytes = ref.count * np.dtype(ref.dtype).itemsize
        data = handle.read(nbytes)
        if len(data) != nbytes:
            raise pickle.UnpicklingError(f"storage {key} is truncated")
        arrays[ref.key] = np.frombuffer(data, ref.dtype)
    return arrays


def _materialise(ref: TensorRef, storage: np.ndarray) -> np.ndarray:
    """The tensor's values as a C-contiguous native-endian array (bounds checked)."""
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride) if n > 0)
    if ref.offset < 0 or any(s < 0 for s in ref.stride) or (all(ref.shape) and last >= storage.size):
        raise pickle.UnpicklingError(f"a tensor reaches outside its storage {ref.storage.key}")
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[ref.offset:], shape=ref.shape,
                                           strides=tuple(s * itemsize for s in ref.stride), writeable=False)
    return np.ascontiguousarray(view, dtype=storage.dtype.newbyteorder("="))


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """{parameter name: array} of a legacy-format torch checkpoint; one PosenetError line for
    anything else (another format, a global it does not need, truncated data)."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        raise PosenetError(f"{path}: a zip-format torch checkpoint (torch >= 1.6); only the legacy format is read")
    try:
        with open(path, "rb") as handle:
            if _safe_load(handle) != LEGACY_MAGIC or _safe_load(handle) != LEGACY_PROTOCOL:
                raise pickle.UnpicklingError("not a legacy torch checkpoint (magic number or protocol differs)")
            info = _safe_load(handle)
            if not isinstance(info, dict) or info.get("little_endian") is not True:
                raise pickle.UnpicklingError("not a little-endian legacy torch checkpoint")
            state = _StateDictUnpickler(handle).load()
            keys = _safe_load(handle)
            if not isinstance(state, dict) or not all(isinstance(v, TensorRef) for v in state.values()):
                raise pickle.UnpicklingError("its main record is not a dict of tensors")
            storages = _read_storages(handle, list(keys), {t.storage.key: t.storage for t in state.values()})
    except OSError as error:
        raise PosenetError(f"{path}: cannot read ({error.strerror or error})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise PosenetError(f"{path}: refused as a torch checkpoint: {error}") from None
    try:
        return {name: _materialise(ref, storages[ref.storage.key]) for name, ref in state.items()}
    except (KeyError, pickle.UnpicklingError) as error:
        raise PosenetError(f"{path}: refused as a torch checkpoint: {error}") from None
