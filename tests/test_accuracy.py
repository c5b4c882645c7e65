"""Interval estimates of audited accuracy, against independent recomputations."""

from __future__ import annotations

import math

import pytest

from reportlib.accuracy import (
    Z_95,
    Estimate,
    Interval,
    accuracy,
    sample_size,
    wilson_interval,
    wrong_passed,
)
from reportlib.errors import ReportValidationError


def _score_roots(correct: float, n: int, z: float) -> tuple[float, float]:
    """Wilson's bounds as the roots of (p̂ − p)² = z²·p(1 − p)/n, a quadratic in p, where
    p̂ = correct / n."""
    observed = correct / n
    a = n + z * z
    b = -(2 * n * observed + z * z)
    c = n * observed * observed
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@pytest.mark.parametrize(
    ("correct", "audited"), [(1, 1), (3, 7), (81, 263), (186, 190), (999, 1000), (5, 5000)]
)
def test_wilson_bounds_are_the_score_equations_roots(correct: int, audited: int) -> None:
    interval = wilson_interval(correct, audited)
    assert interval is not None
    low, high = _score_roots(correct, audited, Z_95)
    assert interval.low == pytest.approx(max(low, 0.0), abs=1e-12)
    assert interval.high == pytest.approx(min(high, 1.0), abs=1e-12)
    assert interval.low <= correct / audited <= interval.high


def test_wilson_matches_the_published_example() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion": 81/263.
    interval = wilson_interval(81, 263)
    assert interval is not None
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.2553, 0.3662)


def test_all_or_nothing_correct_keeps_an_interval() -> None:
    everything = wilson_interval(10, 10)
    nothing = wilson_interval(0, 10)
    assert everything is not None and nothing is not None
    assert everything.high == 1.0 and 0.65 < everything.low < 0.8
    assert nothing.low == 0.0 and 0.2 < nothing.high < 0.35
    # Symmetric in right and wrong.
    assert everything.low == pytest.approx(1 - nothing.high, abs=1e-12)


def test_no_audited_values_is_no_estimate() -> None:
    assert wilson_interval(0, 0) is None
    assert accuracy(0, 0) is None
    assert wrong_passed(0, 0, 50_000) is None


def test_accuracy_and_wrong_passed() -> None:
    estimate = accuracy(186, 190)
    assert estimate == Estimate(186 / 190, wilson_interval(186, 190))  # type: ignore[arg-type]
    wrong = wrong_passed(186, 190, 10_000)
    assert wrong is not None
    assert wrong.value == pytest.approx(10_000 * 4 / 190)
    low, high = _score_roots(4, 190, Z_95)
    assert wrong.interval.low == pytest.approx(10_000 * low)
    assert wrong.interval.high == pytest.approx(10_000 * high)
    assert wrong_passed(190, 190, 10_000) == Estimate(
        0.0, Interval(0.0, pytest.approx(10_000 * _score_roots(0, 190, Z_95)[1]))
    )


def _smallest_n_by_scan(p: float, h: float) -> int:
    n = 1
    while True:
        low, high = _score_roots(p * n, n, Z_95)
        if (high - low) / 2 <= h + 1e-15:
            return n
        n += 1


@pytest.mark.parametrize(("p", "h"), [(0.98, 0.02), (0.5, 0.05), (0.995, 0.005), (0.9, 0.1)])
def test_sample_size_is_the_smallest_n_wide_enough(p: float, h: float) -> None:
    assert sample_size(p, h) == _smallest_n_by_scan(p, h)


def test_sample_size_for_the_documented_example() -> None:
    # ±2 points at 98%: the Wilson interval needs 223; the normal approximation's 189 is
    # too few for the interval that is reported.
    assert sample_size(0.98, 0.02) == 223
    assert math.ceil(Z_95**2 * 0.98 * 0.02 / 0.02**2) == 189
    assert sample_size(0.98, 0.01) > sample_size(0.98, 0.02) > sample_size(0.98, 0.04)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: wilson_interval(5, 4), "correct"),
        (lambda: wilson_interval(-1, 4), "correct"),
        (lambda: wilson_interval(1, -4), "audited"),
        (lambda: wilson_interval(True, 4), "correct"),  # type: ignore[arg-type]
        (lambda: wilson_interval(1, 4, z=0), "z"),
        (lambda: wrong_passed(1, 4, -1), "passed"),
        (lambda: sample_size(1.5, 0.02), "expected_accuracy"),
        (lambda: sample_size(0.98, 0), "half_width"),
        (lambda: sample_size(0.98, float("nan")), "half_width"),
        (lambda: sample_size(0.98, 1e-9), "half_width"),
    ],
)
def test_bad_input_names_the_field(call: object, field: str) -> None:
    with pytest.raises(ReportValidationError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field
