"""Timing one inference callable: warm-up, repeats, robust summary statistics."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    """Summary of the timed calls of one measurement; ``median_ms`` is the objective value."""

    median_ms: float
    iqr_ms: float
    min_ms: float
    mean_ms: float
    repeats: int


def check_counts(warmup: int, repeats: int) -> None:
    """Reject counts that would give no measurement, naming the bad value."""
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")


def measure_latency_ms(
    run: Callable[[], None],
    *,
    warmup: int,
    repeats: int,
    min_time_s: float = 0.0,
) -> LatencyStats:
    """Call ``run`` ``warmup`` times untimed, then at least ``repeats`` times timed.

    Timed calls continue past ``repeats`` until their total reaches ``min_time_s``, so very fast
    networks get enough samples for a stable median. The garbage collector is paused while timing
    (as :mod:`timeit` does) so a collection triggered by other objects does not land in one sample.
    """
    check_counts(warmup, repeats)
    if not min_time_s >= 0.0:
        raise ValueError(f"min_time_s must be >= 0, got {min_time_s!r}")
    for _ in range(warmup):
        run()
    samples_ns: list[int] = []
    min_time_ns = min_time_s * 1e9
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        total_ns = 0
        while len(samples_ns) < repeats or total_ns < min_time_ns:
            start = time.perf_counter_ns()
            run()
            elapsed = time.perf_counter_ns() - start
            samples_ns.append(elapsed)
            total_ns += elapsed
    finally:
        if gc_was_enabled:
            gc.enable()
    samples_ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    q1, median, q3 = np.percentile(samples_ms, [25.0, 50.0, 75.0])
    return LatencyStats(
        median_ms=float(median),
        iqr_ms=float(q3 - q1),
        min_ms=float(samples_ms.min()),
        mean_ms=float(samples_ms.mean()),
        repeats=len(samples_ms),
    )
