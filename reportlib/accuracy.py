"""How accurate are the values that pass unreviewed? Interval estimates from audit samples.

Pure functions over counts, so that every estimate the library reports about audited
values is defined once, here, and tested against an independent recomputation:

* **Accuracy** of a set of audited values = ``correct / audited``, with the 95% **Wilson
  score interval** (Wilson, 1927): the values of ``p`` for which the observed share lies
  within ``z`` standard errors of ``p``. Unlike the normal-approximation interval it stays
  inside [0, 1] and does not collapse to a point at 0% or 100%, which matters here: an
  audit that found every value correct is evidence of high accuracy, not proof of 100%.
* **Wrong values that passed** = ``passed × (1 − accuracy)``; its interval is ``passed``
  times the Wilson interval of the wrong share.
* **Sample size** for a wanted half-width ``h`` at an expected accuracy ``p``: the smallest
  ``n`` whose Wilson interval around ``p`` is at most ``2h`` wide. For ±2 points at 98% that
  is 223 values; the textbook normal-approximation formula ``z²·p(1−p)/h²`` says 189, but
  the interval actually reported (Wilson's) is wider than that formula's near 100%.

No audited values means no estimate: each function returns ``None`` rather than a share,
so that a page says "not enough data" instead of 100%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from reportlib.checks import check_int
from reportlib.errors import ReportValidationError

#: The two-sided 95% quantile of the standard normal distribution.
Z_95: Final = 1.959963984540054
#: Counts above this are not audit samples (and would lose float precision).
MAX_COUNT: Final = 2**53
#: The sample size search gives up beyond this many values.
MAX_SAMPLE_SIZE: Final = 10_000_000


@dataclass(frozen=True)
class Interval:
    """A two-sided interval ``[low, high]``."""

    low: float
    high: float


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval."""

    value: float
    interval: Interval


def wilson_interval(correct: int, audited: int, *, z: float = Z_95) -> Interval | None:
    """The Wilson score interval of the share ``correct / audited``; None for no values."""
    audited = check_int(audited, "audited", 0, MAX_COUNT)
    correct = check_int(correct, "correct", 0, audited)
    z = _check_z(z)
    if audited == 0:
        return None
    return _wilson(correct / audited, audited, z)


def accuracy(correct: int, audited: int, *, z: float = Z_95) -> Estimate | None:
    """``correct / audited`` with its Wilson interval; None for no audited values."""
    interval = wilson_interval(correct, audited, z=z)
    if interval is None:
        return None
    return Estimate(correct / audited, interval)


def wrong_passed(correct: int, audited: int, passed: int, *, z: float = Z_95) -> Estimate | None:
    """How many of ``passed`` unreviewed values are wrong, estimated from an audit of
    ``audited`` of them (``correct`` found correct), with its interval; None for no
    audited values."""
    passed = check_int(passed, "passed", 0, MAX_COUNT)
    audited = check_int(audited, "audited", 0, MAX_COUNT)
    correct = check_int(correct, "correct", 0, audited)
    wrong_share = wilson_interval(audited - correct, audited, z=z)
    if wrong_share is None:
        return None
    return Estimate(
        passed * (audited - correct) / audited,
        Interval(passed * wrong_share.low, passed * wrong_share.high),
    )


def sample_size(expected_accuracy: float, half_width: float, *, z: float = Z_95) -> int:
    """The fewest audited values whose Wilson interval around ``expected_accuracy`` is at
    most ``2 × half_width`` wide (0.98 and 0.02: 223)."""
    p = _check_share(expected_accuracy, "expected_accuracy", open_low=False)
    h = _check_share(half_width, "half_width", open_low=True)
    z = _check_z(z)
    if h >= 0.5:
        return 1

    def wide_enough(n: int) -> bool:
        interval = _wilson(p, n, z)
        return (interval.high - interval.low) / 2 <= h

    high = 1
    while not wide_enough(high):
        high *= 2
        if high > MAX_SAMPLE_SIZE:
            raise ReportValidationError(
                "half_width", f"needs more than {MAX_SAMPLE_SIZE:,} audited values"
            )
    low = high // 2
    while high - low > 1:  # the half-width shrinks as n grows: bisect
        middle = (low + high) // 2
        if wide_enough(middle):
            high = middle
        else:
            low = middle
    return high


def _wilson(p: float, n: int, z: float) -> Interval:
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    # The exact bounds at 0% and 100%, which rounding would move off 0 and 1.
    low = 0.0 if p == 0 else max(0.0, centre - half)
    high = 1.0 if p == 1 else min(1.0, centre + half)
    return Interval(low, high)


def _check_share(value: float, name: str, *, open_low: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportValidationError(name, "must be a number")
    number = float(value)
    if not math.isfinite(number) or number > 1 or number < 0 or (open_low and number == 0):
        bounds = "above 0 and at most 1" if open_low else "from 0 to 1"
        raise ReportValidationError(name, f"must be {bounds}")
    return number


def _check_z(z: float) -> float:
    if isinstance(z, bool) or not isinstance(z, (int, float)):
        raise ReportValidationError("z", "must be a number")
    if not math.isfinite(z) or z <= 0:
        raise ReportValidationError("z", "must be a positive number")
    return float(z)
