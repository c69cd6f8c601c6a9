"""Adaptive timing: the stopping rule, outlier rejection and the median's confidence interval."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pytest

from latency_predictors.measure import (
    DeviceTimedRun,
    LatencyStats,
    measure_latency_ms,
    measure_until_stable,
)
from latency_predictors.measure._measure import median_ci_rel, tukey_keep


class Scripted(DeviceTimedRun):
    """A run whose elapsed times are given: the stopping rule is tested on known samples, with no
    clock involved (the way a CUDA-event run hands measure its device times)."""

    def __init__(self, times_ms: Iterable[float]) -> None:
        self._times = iter(times_ms)
        self.calls = 0

    def timed_ms(self) -> float:
        self.calls += 1
        return next(self._times)


def cycle(values: list[float]) -> Iterable[float]:
    while True:
        yield from values


def test_constant_samples_are_stable_at_min_repeats() -> None:
    run = Scripted(cycle([2.0]))
    stats = measure_until_stable(run, warmup=3, min_repeats=10, max_repeats=1000)
    assert stats.stable is True
    assert stats.repeats == 10 and run.calls == 13
    assert (stats.median_ms, stats.iqr_ms, stats.outliers, stats.ci_rel) == (2.0, 0.0, 0, 0.0)


def test_noisy_samples_need_more_repeats_and_meet_the_tolerance() -> None:
    rng = np.random.default_rng(0)
    run = Scripted(iter(10.0 * (1.0 + 0.1 * rng.standard_normal(100_000))))
    stats = measure_until_stable(run, warmup=0, min_repeats=10, max_repeats=100_000, rel_tolerance=0.02)
    assert stats.stable is True and stats.ci_rel <= 0.02
    # 10% spread needs ~(1.96 * 0.1 * 1.25 / 0.02)^2 = 150 samples for a 2% half-width.
    assert 50 < stats.repeats < 600
    assert stats.median_ms == pytest.approx(10.0, rel=0.03)


def test_budget_exhausted_is_reported_unstable() -> None:
    rng = np.random.default_rng(1)
    run = Scripted(iter(5.0 * (1.0 + 0.5 * rng.random(1000))))
    stats = measure_until_stable(run, warmup=0, min_repeats=8, max_repeats=20, rel_tolerance=0.001)
    assert stats.stable is False and stats.repeats == 20 and stats.ci_rel > 0.001


def test_max_time_stops_timing() -> None:
    run = Scripted(cycle([100.0, 300.0]))
    stats = measure_until_stable(run, warmup=0, min_repeats=6, max_repeats=10_000, rel_tolerance=0.01, max_time_s=2.0)
    assert stats.stable is False and stats.repeats < 25


def test_outliers_are_rejected_and_counted() -> None:
    times = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98] * 5 + [50.0, 80.0]
    stats = measure_until_stable(Scripted(iter(times)), warmup=0, min_repeats=32, max_repeats=32)
    assert stats.outliers == 2 and stats.repeats == 32
    assert stats.mean_ms == pytest.approx(1.0, abs=0.01)  # the 50 and 80 ms samples are gone


def test_median_ci_matches_order_statistics() -> None:
    # n=6 at 95%: the only interval is [x_(1), x_(6)] (coverage 1 - 2/64 = 0.969).
    assert median_ci_rel(np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])) == pytest.approx(2.5 / 3.5)
    # n=5 has no 95% interval: even [x_(1), x_(5)] covers only 1 - 2/32 = 0.9375.
    assert median_ci_rel(np.arange(1.0, 6.0)) == math.inf
    # n=100: the classic l=40, u=61 (1-based), coverage 0.965.
    samples = np.arange(1.0, 101.0)
    assert median_ci_rel(samples) == pytest.approx((61 - 40) / 2 / 50.5)
    # Large n must not underflow.
    assert 0 < median_ci_rel(np.sort(np.random.default_rng(0).random(5000) + 1.0)) < 0.05


def test_tukey_fences() -> None:
    # Q1 = 2, Q3 = 2.75 (linear interpolation), so the fences are [0.875, 3.875].
    kept = tukey_keep(np.array([3.0, 1.0, 2.0, 2.0, 2.0, 100.0]))
    assert list(kept) == [1.0, 2.0, 2.0, 2.0, 3.0]


def test_fixed_count_measurement_keeps_every_sample_and_old_fields() -> None:
    stats = measure_latency_ms(Scripted(cycle([1.0, 9.0, 1.0])), warmup=0, repeats=9)
    assert isinstance(stats, LatencyStats)
    assert stats.repeats == 9 and stats.outliers == 0 and stats.stable is None
    assert stats.median_ms == 1.0 and stats.mean_ms == pytest.approx(11 / 3)


def test_host_clock_times_plain_callables() -> None:
    calls: list[int] = []
    stats = measure_until_stable(lambda: calls.append(1), warmup=2, min_repeats=6, max_repeats=50)
    assert len(calls) == stats.repeats + 2 and 6 <= stats.repeats <= 50
    assert stats.median_ms >= 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warmup": -1, "min_repeats": 5, "max_repeats": 9}, "warmup.*-1"),
        ({"warmup": 0, "min_repeats": 0, "max_repeats": 9}, "repeats.*0"),
        ({"warmup": 0, "min_repeats": 10, "max_repeats": 9}, r"max_repeats.*\(10\).*9"),
        ({"warmup": 0, "min_repeats": 5, "max_repeats": 9, "rel_tolerance": 2.0}, "rel_tolerance.*2.0"),
        ({"warmup": 0, "min_repeats": 5, "max_repeats": 9, "max_time_s": 0}, "max_time_s.*0"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        measure_until_stable(lambda: None, **kwargs)  # type: ignore[arg-type]
