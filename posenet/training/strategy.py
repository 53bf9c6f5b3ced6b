"""`--distribute`: the tf.distribute strategy both trainers (the study's and the tracker's) build their nets under.

None is TensorFlow's default strategy (one device); "mirrored" replicates the net on every local
GPU (on the CPU when there is none); "multiworker" on every GPU of several machines, which
TF_CONFIG describes. Either way the batch size stays the global one, split across the replicas.
TensorFlow is imported only when a strategy is made, so command lines can offer STRATEGIES freely.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from posenet.core.errors import PosenetError

if TYPE_CHECKING:
    import tensorflow as tf

STRATEGIES = ("mirrored", "multiworker")


def check_strategy(name: str | None) -> None:
    """One line naming a strategy that is not None or one of STRATEGIES, and the allowed ones."""
    if name is not None and name not in STRATEGIES:
        raise PosenetError(f"--distribute {name}: choose from {', '.join(STRATEGIES)}")


_MADE: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str | None) -> tf.distribute.Strategy:
    """The tf.distribute strategy: default (one device), all local devices, or multi-worker (TF_CONFIG).

    A named strategy is made once per process and shared by every training in it (`posenet
    tracker-models` trains two nets): a second MirroredStrategy numbers its all-reduces from the
    same start as the first, and TensorFlow then mixes up the two nets' gradients ("Shape
    mismatch in the collective instance 100", tensorflow/tensorflow#62790); a multi-worker
    strategy may only be made once anyway.
    """
    import tensorflow as tf

    check_strategy(name)
    if name is None:
        return tf.distribute.get_strategy()
    if name not in _MADE:
        if name == "mirrored":
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            _MADE[name] = tf.distribute.MirroredStrategy([device.name for device in devices])
        else:
            _MADE[name] = tf.distribute.MultiWorkerMirroredStrategy()
    return _MADE[name]
