"""Command-line values checked once: seeds, finite ranges, positive numbers (#14 items 8 and 9)."""

import math

import pytest

from posenet.core.errors import PosenetError
from posenet.core.values import check_positive, check_range, check_seed


def test_seed_must_be_non_negative():
    assert check_seed(0) == 0 and check_seed(7) == 7
    with pytest.raises(PosenetError, match="--seed -1: must be a non-negative integer"):
        check_seed(-1)


@pytest.mark.parametrize("value", [math.nan, math.inf, -5.0, 3.0])
def test_range_refuses_nan_infinity_and_outside(value):
    with pytest.raises(PosenetError, match="--margin .*: must be a finite number from 0 to 2"):
        check_range(value, "--margin", 0.0, 2.0)
    assert check_range(0.5, "--margin", 0.0, 2.0) == 0.5


@pytest.mark.parametrize("value", [math.nan, -math.inf, math.inf, 0.0, -1e-3])
def test_positive_refuses_nan_zero_and_negative(value):
    with pytest.raises(PosenetError, match="--lr .*: must be a finite positive number"):
        check_positive(value, "--lr")
