"""Timing one inference callable: warm-up, repeats, robust summary statistics.

Two ways to time:

* :func:`measure_latency_ms`: a fixed number of repeats (plus an optional minimum total time).
* :func:`measure_until_stable`: keeps timing until the median is known to a relative tolerance,
  with Tukey-fence outlier rejection; the method for profiles that must be trustworthy.

A callable is timed by the host clock (``time.perf_counter_ns``) unless it is a
:class:`DeviceTimedRun`, whose ``timed_ms`` reports the device's own elapsed time (CUDA events):
host clocks around an asynchronous GPU launch measure the launch, not the kernels.
"""

from __future__ import annotations

import gc
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Two-sided confidence level of :attr:`LatencyStats.ci_rel`.
CONFIDENCE = 0.95

#: A measurement whose IQR exceeds this fraction of its median is flagged unstable: its samples
#: spread so widely (a busy machine, frequency steps) that the median may be off by much more than
#: run-to-run noise. On a quiet 2-core VM single-threaded onnxruntime runs sit at 2-10%.
UNSTABLE_IQR_RATIO = 0.5


class DeviceTimedRun(ABC):
    """An inference callable that times itself on the device it runs on.

    Calling it runs one inference and waits for it to finish (so it is a plain ``run()`` for
    callers that only need the work done, like energy measurement); :meth:`timed_ms` does the same
    and returns the device-measured elapsed milliseconds, which the ``measure_*`` functions use
    in place of the host clock.
    """

    def __call__(self) -> None:
        self.timed_ms()

    @abstractmethod
    def timed_ms(self) -> float:
        """Run one inference to completion; return its elapsed time in ms on the device."""


@dataclass(frozen=True)
class LatencyStats:
    """Summary of the timed calls of one measurement; ``median_ms`` is the objective value.

    ``repeats`` counts the timed calls; the statistics are over the ``repeats - outliers`` calls
    kept. ``ci_rel`` is the half-width of the 95% confidence interval of the median divided by the
    median (``inf`` when fewer than 6 samples make no such interval); ``stable`` says whether it
    met the tolerance asked of :func:`measure_until_stable` (``None``: no tolerance was asked).
    """

    median_ms: float
    iqr_ms: float
    min_ms: float
    mean_ms: float
    repeats: int
    outliers: int = 0
    ci_rel: float = math.inf
    stable: bool | None = None
    #: 95th percentile of the kept calls: what an application's "p95 latency <= X ms" bounds.
    p95_ms: float = math.nan

    @property
    def iqr_ratio(self) -> float:
        """IQR over median (``inf`` for a non-positive median)."""
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else math.inf

    def unstable(self, max_iqr_ratio: float = UNSTABLE_IQR_RATIO) -> bool:
        """Whether the samples spread beyond ``max_iqr_ratio`` of the median (see
        :data:`UNSTABLE_IQR_RATIO`). Distinct from :attr:`stable`, which says whether an adaptive
        measurement's median converged; a wide spread can converge, given enough repeats."""
        return self.iqr_ratio > max_iqr_ratio


def check_repeat_counts(warmup: int, repeats: int) -> None:
    """Reject counts that would give no measurement, naming the bad value."""
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")


def check_iqr_ratio(ratio: object) -> float:
    """An ``unstable_iqr_ratio`` setting as a float, or an error naming the bad value."""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not ratio > 0:
        raise ValueError(
            f"unstable_iqr_ratio must be a number > 0, e.g. 0.5 (IQR above half the median), got {ratio!r}"
        )
    return float(ratio)


def timer_of(run: Callable[[], object]) -> Callable[[], float]:
    """A function running ``run`` once and returning its elapsed ms: the device's own time for a
    :class:`DeviceTimedRun`, else the host's monotonic high-resolution clock."""
    if isinstance(run, DeviceTimedRun):
        return run.timed_ms

    def host_timed_ms() -> float:
        start = time.perf_counter_ns()
        run()
        return (time.perf_counter_ns() - start) / 1e6

    return host_timed_ms


def median_ci_rel(sorted_ms: np.ndarray, confidence: float = CONFIDENCE) -> float:
    """Relative half-width of the distribution-free confidence interval of the median.

    For n i.i.d. samples the count B below the true median is Binomial(n, 1/2), so the order
    statistics ``x_(l) <= median <= x_(n+1-l)`` hold with probability ``1 - 2 P(B <= l-1)``; ``l``
    is the largest index keeping that >= ``confidence``. The result is ``(x_(n+1-l) - x_(l)) / 2``
    over the sample median: no normality assumption, which latency samples (skewed, with a long
    right tail) never satisfy. Needs n >= 6 at 95%; fewer samples give ``inf``.
    """
    n = len(sorted_ms)
    alpha_half = (1.0 - confidence) / 2.0
    log_half_n = -n * math.log(2.0)
    cdf = 0.0
    lower = 0  # 1-based index l of the lower order statistic; 0 while none qualifies
    for k in range(n // 2 + 1):
        # P(B = k) in log space: 0.5**n underflows for n > 1074.
        cdf += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n)
        if cdf > alpha_half:
            break
        lower = k + 1
    if lower == 0:
        return math.inf
    median = float(np.median(sorted_ms))
    if median <= 0.0:
        return math.inf
    half_width = (float(sorted_ms[n - lower]) - float(sorted_ms[lower - 1])) / 2.0
    return half_width / median


def tukey_keep(samples_ms: np.ndarray) -> np.ndarray:
    """The samples inside Tukey's fences ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]``, sorted."""
    q1, q3 = np.percentile(samples_ms, [25.0, 75.0])
    spread = 1.5 * (q3 - q1)
    kept = samples_ms[(samples_ms >= q1 - spread) & (samples_ms <= q3 + spread)]
    return np.sort(kept)


def _summarise(samples_ms: np.ndarray, kept_ms: np.ndarray, stable: bool | None) -> LatencyStats:
    q1, median, q3, p95 = np.percentile(kept_ms, [25.0, 50.0, 75.0, 95.0])
    return LatencyStats(
        median_ms=float(median),
        iqr_ms=float(q3 - q1),
        min_ms=float(kept_ms.min()),
        mean_ms=float(kept_ms.mean()),
        repeats=len(samples_ms),
        outliers=len(samples_ms) - len(kept_ms),
        ci_rel=median_ci_rel(kept_ms),
        stable=stable,
        p95_ms=float(p95),
    )


class _GcPaused:
    """The garbage collector paused while timing (as :mod:`timeit` does), so a collection
    triggered by other objects does not land in one sample."""

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was_enabled:
            gc.enable()


def measure_latency_ms(
    run: Callable[[], None],
    *,
    warmup: int,
    repeats: int,
    min_time_s: float = 0.0,
) -> LatencyStats:
    """Call ``run`` ``warmup`` times untimed, then at least ``repeats`` times timed.

    Timed calls continue past ``repeats`` until their total reaches ``min_time_s``, so very fast
    networks get enough samples for a stable median. No sample is rejected (``outliers`` is 0);
    ``ci_rel`` is reported, ``stable`` is ``None`` since no tolerance was asked.
    """
    check_repeat_counts(warmup, repeats)
    if not min_time_s >= 0.0:
        raise ValueError(f"min_time_s must be >= 0, got {min_time_s!r}")
    timed_ms = timer_of(run)
    for _ in range(warmup):
        run()
    samples: list[float] = []
    min_time_ms = min_time_s * 1e3
    with _GcPaused():
        total_ms = 0.0
        while len(samples) < repeats or total_ms < min_time_ms:
            elapsed = timed_ms()
            samples.append(elapsed)
            total_ms += elapsed
    samples_ms = np.asarray(samples, dtype=np.float64)
    return _summarise(samples_ms, np.sort(samples_ms), stable=None)


def measure_until_stable(
    run: Callable[[], None],
    *,
    warmup: int,
    min_repeats: int,
    max_repeats: int,
    rel_tolerance: float = 0.02,
    max_time_s: float = math.inf,
) -> LatencyStats:
    """Time ``run`` until its median latency is known to ``rel_tolerance``, or a budget runs out.

    After ``warmup`` untimed calls, ``min_repeats`` calls are timed; then, in batches of a tenth of
    the samples so far (the check is O(n)), the samples are filtered by Tukey's fences
    (1.5 IQR beyond the quartiles: preemptions, page faults, frequency steps) and the
    distribution-free 95% confidence interval of the median of the kept samples is computed from
    order statistics (see :func:`median_ci_rel`). Timing stops when its relative half-width is
    at most ``rel_tolerance`` (``stable=True``), or when ``max_repeats`` calls or ``max_time_s``
    seconds of timed calls are spent (``stable=False``: the median is reported, but a profile
    should flag or redo the row). ``outliers`` counts the rejected samples.

    A 2% half-width needs roughly n >= (1.96 * IQR / (1.35 * 0.02 * median))^2 samples for
    near-normal spread: ~60 at a 5% relative IQR, ~240 at 10%.
    """
    check_repeat_counts(warmup, min_repeats)
    if isinstance(max_repeats, bool) or not isinstance(max_repeats, int) or max_repeats < min_repeats:
        raise ValueError(f"max_repeats must be an integer >= min_repeats ({min_repeats}), got {max_repeats!r}")
    if not 0.0 < rel_tolerance < 1.0:
        raise ValueError(f"rel_tolerance must be in (0, 1), e.g. 0.02 for 2%, got {rel_tolerance!r}")
    if not max_time_s > 0.0:
        raise ValueError(f"max_time_s must be > 0, got {max_time_s!r}")
    timed_ms = timer_of(run)
    for _ in range(warmup):
        run()
    samples: list[float] = []
    max_time_ms = max_time_s * 1e3
    total_ms = 0.0
    target = min_repeats
    with _GcPaused():
        while True:
            while len(samples) < target:
                elapsed = timed_ms()
                samples.append(elapsed)
                total_ms += elapsed
            samples_ms = np.asarray(samples, dtype=np.float64)
            kept = tukey_keep(samples_ms)
            if median_ci_rel(kept) <= rel_tolerance:
                return _summarise(samples_ms, kept, stable=True)
            if len(samples) >= max_repeats or total_ms >= max_time_ms:
                return _summarise(samples_ms, kept, stable=False)
            target = min(max_repeats, len(samples) + max(1, len(samples) // 10))
