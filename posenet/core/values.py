"""Command-line values checked once, with one line each: seeds and finite numbers.

argparse accepts `--seed -1` or `--lr nan` as valid ints and floats; the failure would come
much later as a numpy or TensorFlow traceback (negative seeds are refused by
`np.random.default_rng`, a NaN rate trains a net of NaNs), so commands check them here first.
"""

from __future__ import annotations

import math

from posenet.core.errors import PosenetError


def check_seed(seed: int, flag: str = "--seed") -> int:
    """`seed` when it is a non-negative integer (what numpy's generators accept)."""
    if seed < 0:
        raise PosenetError(f"{flag} {seed}: must be a non-negative integer")
    return seed


def check_range(value: float, flag: str, low: float, high: float) -> float:
    """`value` when it is a finite number in [low, high]; NaN and infinities are refused."""
    if not math.isfinite(value) or not low <= value <= high:
        raise PosenetError(f"{flag} {value}: must be a finite number from {low:g} to {high:g}")
    return value


def check_positive(value: float, flag: str) -> float:
    """`value` when it is a finite number above 0 (rates, sizes)."""
    if not math.isfinite(value) or value <= 0:
        raise PosenetError(f"{flag} {value}: must be a finite positive number")
    return value
