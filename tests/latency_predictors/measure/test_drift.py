"""Drift monitoring: rows since the last good reference check are redone when the machine moved."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import torch

from latency_predictors.measure import (
    DriftError,
    DriftMonitor,
    OnnxRuntimeCPU,
    TorchEagerCPU,
    reference_input,
    reference_model,
)


def scripted(medians_ms: Iterable[float]) -> Callable[[Callable[[], None]], float]:
    """A ``measure`` returning given reference medians in turn: the policy is tested on known
    machine states, not on this machine's timing noise."""
    values = iter(medians_ms)
    return lambda run: next(values)


def monitor(medians_ms: list[float], every: int = 3, **kwargs: object) -> DriftMonitor:
    return DriftMonitor(lambda: None, every=every, measure=scripted(medians_ms), settle_s=0.0, **kwargs)  # type: ignore[arg-type]


def test_no_drift_redoes_nothing() -> None:
    m = monitor([10.0, 10.2, 9.7])
    assert m.baseline_ms == 10.0
    assert [m.record(k) for k in "abcdef"] == [()] * 6
    assert [r.drifted for r in m.reports] == [False, False]
    assert m.reports[0].ratio == pytest.approx(1.02)


def test_transient_drift_returns_rows_since_last_good_check() -> None:
    # Baseline 10; check 1 fine; check 2 finds 13 (30% slower), the machine is back at 10.1 next.
    m = monitor([10.0, 10.0, 13.0, 10.1])
    assert [m.record(k) for k in "abc"] == [(), (), ()]
    assert [m.record(k) for k in "def"] == [(), (), ("d", "e", "f")]
    report = m.reports[-1]
    assert report.drifted and report.ratio == pytest.approx(1.3) and not report.rebaselined
    assert m.baseline_ms == 10.0 and m.pending == ()


def test_persistent_drift_raises_naming_the_latencies() -> None:
    m = monitor([10.0, 12.0, 12.0, 12.1], settle_checks=2)
    m.record("a")
    m.record("b")
    with pytest.raises(DriftError, match=r"10 ms to 12.1 ms \(1.210x, tolerance 5%\).*2 re-checks"):
        m.record("c")


def test_persistent_drift_can_rebaseline() -> None:
    m = monitor([10.0, 12.0, 12.0, 12.0, 12.1], settle_checks=2, rebaseline=True)
    assert m.record("a") == () and m.record("b") == ()
    assert m.record("c") == ("a", "b", "c")
    assert m.reports[-1].rebaselined and m.baseline_ms == 12.0


def test_explicit_check_reports_ratio() -> None:
    m = monitor([4.0, 4.1])
    m.record("x")
    report = m.check()
    assert not report.drifted and report.redo == () and report.current_ms == 4.1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": 0}, "every.*0"),
        ({"every": 5, "tolerance": 0.0}, "tolerance.*0.0"),
        ({"every": 5, "settle_checks": -1}, "settle_checks.*-1"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftMonitor(lambda: None, measure=scripted([1.0]), **kwargs)  # type: ignore[arg-type]


def test_reference_model_is_fixed_and_leaves_global_random_state_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = reference_model(), reference_model()
    assert torch.equal(torch.rand(1), before)
    assert not a.training
    for pa, pb in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb)
    with torch.inference_mode():
        assert torch.equal(a(reference_input()), b(reference_input()))
        assert a(reference_input(2)).shape == (2, 10)


@pytest.mark.parametrize("runtime", [OnnxRuntimeCPU(threads=1), TorchEagerCPU(threads=1)], ids=lambda r: r.name)
def test_monitor_times_the_real_reference(runtime: object, tmp_path: Path) -> None:
    run = runtime.prepare(reference_model(), reference_input(), tmp_path)  # type: ignore[attr-defined]
    m = DriftMonitor(run, every=100)
    assert m.baseline_ms > 0
    assert m.record("row") == ()
