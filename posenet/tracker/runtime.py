"""ONNX Runtime sessions whose runs have a time limit (no TensorFlow, no Keras).

A model file can follow the tracker's contract to the letter and still never finish a run (a
`Loop` node with a huge trip count, say): without a limit `posenet track` and `posenet
evaluate MODEL.onnx` would hang for good. ONNX Runtime has no per-run timeout, but a run stops
at its next node (a `Loop` iteration included) once its `RunOptions.terminate` is set from
another thread. So every run goes through `GuardedSession.run`, which registers its
`RunOptions` with one shared watchdog thread; the watchdog polls a few times a second (no
per-run thread, no per-run wake-up: a run costs two dictionary updates) and terminates runs
past their deadline, and the run then fails with one `PosenetError` line naming the file.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from posenet.core.errors import PosenetError

MODEL_TIMEOUT_S = 10.0  # default limit on one model run (a tracker net runs in about a millisecond)
WATCHDOG_POLL_S = 0.05  # how often the watchdog looks at the runs in progress
QUIET_LOG_LEVEL = 4  # ONNX Runtime's "fatal only": a terminated run must not print its own error lines
TIMEOUT_OPTION = "--model-timeout"


class ModelTimeout(PosenetError):
    """A model run was stopped at its time limit (the model, not the input, is at fault)."""


def check_timeout(seconds: float) -> float:
    """`seconds` when it is a usable limit on one model run, else one PosenetError line."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise PosenetError(f"{TIMEOUT_OPTION} {seconds}: expected a positive number of seconds")
    return float(seconds)


class _Watchdog:
    """One daemon thread that terminates the registered runs whose deadline has passed."""

    def __init__(self) -> None:
        self.runs: dict[int, tuple[float, ort.RunOptions]] = {}  # token -> (deadline, options)
        self.tokens = itertools.count()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def register(self, deadline: float, options: ort.RunOptions) -> int:
        if self.thread is None:
            with self.lock:
                if self.thread is None:
                    self.thread = threading.Thread(target=self._watch, name="onnx-watchdog", daemon=True)
                    self.thread.start()
        token = next(self.tokens)
        self.runs[token] = (deadline, options)
        return token

    def release(self, token: int) -> None:
        self.runs.pop(token, None)

    def _watch(self) -> None:
        while True:
            now = time.monotonic()
            for deadline, options in list(self.runs.values()):
                if now > deadline:
                    options.terminate = True
            time.sleep(WATCHDOG_POLL_S)


WATCHDOG = _Watchdog()


class GuardedSession:
    """An ONNX Runtime CPU session whose every run stops after `timeout_s` with one error line."""

    def __init__(self, path: str | os.PathLike, threads: int = 1, timeout_s: float | None = None):
        self.path = Path(path)
        self.timeout_s = check_timeout(MODEL_TIMEOUT_S if timeout_s is None else timeout_s)
        self.session = make_session(path, threads)

    def get_inputs(self):
        return self.session.get_inputs()

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, outputs: list[str] | None, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """`session.run`, terminated past the limit; any failure becomes one PosenetError line."""
        options = ort.RunOptions()
        options.log_severity_level = QUIET_LOG_LEVEL
        token = WATCHDOG.register(time.monotonic() + self.timeout_s, options)
        try:
            return self.session.run(outputs, feeds, options)
        except Exception as error:  # onnxruntime raises its own types (Fail, RuntimeException, ...)
            if options.terminate:
                raise ModelTimeout(f"{self.path}: a model run took longer than {self.timeout_s:g} s and was "
                                   f"stopped (raise the limit with {TIMEOUT_OPTION})") from None
            first_line = (str(error).splitlines() or [""])[0][:200]
            raise PosenetError(f"{self.path}: ONNX Runtime cannot run the model ({type(error).__name__}: "
                               f"{first_line})") from None
        finally:
            WATCHDOG.release(token)


def make_session(path: str | os.PathLike, threads: int = 1) -> ort.InferenceSession:
    """A CPU session with `threads` intra-op threads and one inter-op thread (Opentrack's setting)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises several types; all mean "cannot load"
        raise PosenetError(f"{path}: ONNX Runtime cannot load the model ({type(error).__name__})") from None
