"""Drift detection for long profiles: re-time a fixed reference network every N rows.

A profile of thousands of rows takes hours; over that time the machine can change (thermal
throttling, a governor switch, a neighbour job). Rows timed while it was different are not
comparable with the rest. :class:`DriftMonitor` times a fixed reference network at the start
(the baseline) and after every ``every`` recorded rows; when the reference's median moved by more
than ``tolerance``, the rows recorded since the last good check are handed back to be redone.

Use in a profiling loop::

    monitor = DriftMonitor(runtime.prepare(reference_model(), reference_input(), workdir), every=50)
    queue = list(keys)
    while queue:
        key = queue.pop(0)
        write_row(key, measure(key))
        queue[:0] = monitor.record(key)   # empty, or the keys to measure again (rows overwritten)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
from torch import nn

from latency_predictors.measure._measure import measure_latency_ms


class DriftError(RuntimeError):
    """The reference network's latency moved and did not come back: the machine changed."""


@dataclass(frozen=True)
class DriftReport:
    """One check of the reference latency against the baseline.

    ``ratio`` is current / baseline median; ``drifted`` is ``|ratio - 1| > tolerance`` on the
    first re-time of this check; ``redo`` holds the keys recorded since the last good check when
    drifted (else empty); ``rebaselined`` says the baseline was replaced by ``current_ms``.
    """

    ratio: float
    drifted: bool
    baseline_ms: float
    current_ms: float
    redo: tuple[Hashable, ...] = ()
    rebaselined: bool = False


def reference_model() -> nn.Module:
    """The fixed reference CNN: NB201-sized work (three conv stages at 16/32/64 channels on a
    32x32 input, ~9 MFLOPs) with weights drawn from a fixed seed, in eval mode. Its structure
    and weights never change, so its latency tracks only the machine."""
    generator = torch.Generator().manual_seed(201)

    def conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    # Layer constructors draw their default init from the global generator; fork it so the
    # caller's random state is untouched (our own generator then sets every weight).
    with torch.random.fork_rng(devices=[]):
        model = nn.Sequential(
            *conv(3, 16, 1),
            *conv(16, 16, 1),
            *conv(16, 32, 2),
            *conv(32, 32, 1),
            *conv(32, 64, 2),
            *conv(64, 64, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        )
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return model.eval()


def reference_input(batch_size: int = 1) -> torch.Tensor:
    """The reference model's fixed input batch (3x32x32, seed 0)."""
    return torch.randn(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _median_ms(run: Callable[[], None]) -> float:
    return measure_latency_ms(run, warmup=3, repeats=30).median_ms


class DriftMonitor:
    """Times ``reference`` (a prepared inference callable) at start and after every ``every`` rows.

    On drift the monitor re-times the reference up to ``settle_checks`` more times,
    ``settle_s`` apart, waiting for the machine to come back (a transient: a neighbour's burst,
    a thermal dip). If it comes back, the baseline stands and the rows since the last good check
    are returned for redoing. If it stays away: with ``rebaseline=True`` the new level becomes the
    baseline (rows are still redone, now under the new state); otherwise :class:`DriftError` is
    raised, since a table mixing two machine states is not one device's profile.

    ``measure`` turns a callable into a median latency in ms (default: 3 warm-up, 30 timed calls).
    """

    def __init__(
        self,
        reference: Callable[[], None],
        every: int,
        tolerance: float = 0.05,
        *,
        settle_checks: int = 3,
        settle_s: float = 10.0,
        rebaseline: bool = False,
        measure: Callable[[Callable[[], None]], float] = _median_ms,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an integer >= 1 (rows between reference checks), got {every!r}")
        if not 0.0 < tolerance < 1.0:
            raise ValueError(f"tolerance must be in (0, 1), e.g. 0.05 for 5%, got {tolerance!r}")
        if isinstance(settle_checks, bool) or not isinstance(settle_checks, int) or settle_checks < 0:
            raise ValueError(f"settle_checks must be an integer >= 0, got {settle_checks!r}")
        if not settle_s >= 0.0:
            raise ValueError(f"settle_s must be >= 0, got {settle_s!r}")
        self.reference = reference
        self.every = every
        self.tolerance = tolerance
        self.settle_checks = settle_checks
        self.settle_s = settle_s
        self.rebaseline = rebaseline
        self._measure = measure
        self.baseline_ms = self._time_reference()
        self._pending: list[Hashable] = []
        #: Every check made, in order, for run records.
        self.reports: list[DriftReport] = []

    def _time_reference(self) -> float:
        median_ms = float(self._measure(self.reference))
        if not median_ms > 0.0:
            raise ValueError(f"the reference latency must be > 0 ms, got {median_ms!r}")
        return median_ms

    def _within(self, current_ms: float) -> bool:
        return abs(current_ms / self.baseline_ms - 1.0) <= self.tolerance

    @property
    def pending(self) -> tuple[Hashable, ...]:
        """Keys recorded since the last good check: redone if the next check finds drift."""
        return tuple(self._pending)

    def record(self, key: Hashable) -> tuple[Hashable, ...]:
        """Note that the row ``key`` was measured; every ``every``-th call runs :meth:`check`.

        Returns the keys to measure again: empty unless this call's check found drift.
        """
        self._pending.append(key)
        if len(self._pending) < self.every:
            return ()
        return self.check().redo

    def check(self) -> DriftReport:
        """Re-time the reference now; see the class docstring for what happens on drift."""
        first_ms = self._time_reference()
        if self._within(first_ms):
            report = DriftReport(first_ms / self.baseline_ms, False, self.baseline_ms, first_ms)
            self._pending.clear()
            self.reports.append(report)
            return report
        redo = tuple(self._pending)
        self._pending.clear()
        current_ms = first_ms
        for _ in range(self.settle_checks):
            time.sleep(self.settle_s)
            current_ms = self._time_reference()
            if self._within(current_ms):
                report = DriftReport(first_ms / self.baseline_ms, True, self.baseline_ms, current_ms, redo)
                self.reports.append(report)
                return report
        if not self.rebaseline:
            raise DriftError(
                f"the reference network's latency moved from {self.baseline_ms:.4g} ms to "
                f"{current_ms:.4g} ms ({current_ms / self.baseline_ms:.3f}x, tolerance "
                f"{self.tolerance:.0%}) and stayed there over {self.settle_checks} re-checks "
                f"{self.settle_s:g} s apart: the machine changed (throttling, governor, other load). "
                "Quiet the machine and resume the profile, or allow rebaseline=True"
            )
        report = DriftReport(first_ms / self.baseline_ms, True, self.baseline_ms, current_ms, redo, rebaselined=True)
        self.baseline_ms = current_ms
        self.reports.append(report)
        return report
