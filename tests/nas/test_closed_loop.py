"""The closed loop's bookkeeping: atomic markers, predicted-vs-measured figures, the stop rule, resume."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from nas import Constraint
from nas.closed_loop import Front, LoopSettings, front_figures, read_marker, run_closed_loop, write_marker

FRONT = Front(
    rows=(
        {"arch": "a", "acc": 90.0, "latency_ms": 10.0},
        {"arch": "b", "acc": 80.0, "latency_ms": 5.0},
        {"arch": "c", "acc": 70.0, "latency_ms": 2.0},
    ),
    objectives=("acc", "latency_ms"),
    directions=("maximize", "minimize"),
    measured=("latency_ms",),
    trials=3,
)


def test_a_marker_is_written_whole_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "rounds" / "1" / "fit.json"
    assert read_marker(path) is None
    write_marker(path, {"x": 1})
    assert read_marker(path) == {"x": 1} and [p.name for p in path.parent.iterdir()] == ["fit.json"]


def test_figures_compare_the_front_as_predicted_and_as_measured() -> None:
    measured = {"a": {"latency_ms": 12.0}, "b": {"latency_ms": 4.0}, "c": {"latency_ms": 3.0}}
    figures = front_figures(FRONT, measured, [Constraint("latency_ms", upper=11.0)], reference=[60.0, 20.0])
    agreement = figures["predicted_vs_measured"]["latency_ms"]
    assert agreement["spearman"] == pytest.approx(1.0)
    assert agreement["mape"] == pytest.approx((2 / 12 + 1 / 4 + 1 / 3) / 3)
    assert figures["constraint_breaks"] == {"latency_ms<=11": 1}  # a: predicted 10, measured 12
    # (90-60)*(20-10) + (80-60)*(10-5) + (70-60)*(5-2), predicted; the measured front likewise
    assert figures["hypervolume_predicted"] == pytest.approx(300 + 100 + 30)
    assert figures["hypervolume_measured"] == pytest.approx(30 * 8 + 20 * 8 + 10 * 1)
    assert (figures["front_size"], figures["unmeasured"]) == (3, 0)


def test_an_architecture_the_device_could_not_answer_is_counted_not_scored() -> None:
    figures = front_figures(FRONT, {"a": {"latency_ms": 12.0}, "b": {"latency_ms": 4.0}}, [], reference=[60.0, 20.0])
    assert figures["unmeasured"] == 1 and figures["predicted_vs_measured"]["latency_ms"]["n_test"] == 2


@pytest.mark.parametrize(
    ("settings", "message"), [({"max_rounds": 0}, "max_rounds"), ({"hv_tolerance": -1}, "hv_tolerance")]
)
def test_bad_loop_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoopSettings(**{"max_rounds": 2, "hv_tolerance": 0.01, **settings})


class Recorded:
    """Stages that return fixed fronts and record what ran (the CLI's stages are tested end to end)."""

    def __init__(self, fronts: Sequence[Front], values: Mapping[str, Mapping[str, float]]) -> None:
        self.fronts, self.values, self.calls = fronts, values, []

    def profile(self, progress: Callable[[int], None]) -> dict[str, Any]:
        self.calls.append("profile")
        return {"appended": 4, "failed": [], "profile_rows": 4}

    def fit(self, round_: int, out: Path, progress: Callable[[int], None]) -> dict[str, Any]:
        self.calls.append(f"fit{round_}")
        return {"metrics": {}}

    def search(self, round_: int, out: Path, seeds: Sequence[str], progress: Callable[[int], None]) -> Front:
        self.calls.append(f"search{round_}:{','.join(seeds)}")
        return self.fronts[round_ - 1]

    def measure(self, archs: Sequence[str], progress: Callable[[int], None]) -> dict[str, Any]:
        self.calls.append("measure")
        return {"values": {a: self.values[a] for a in archs}, "appended": len(archs), "failed": [], "profile_rows": 7}

    def export(self, rows: Sequence[Mapping[str, Any]], out: Path, progress: Callable[[int], None]) -> dict[str, Any]:
        self.calls.append("export")
        return {"rows": len(rows)}


def test_rounds_stop_when_the_measured_front_stops_moving_and_a_rerun_redoes_nothing(tmp_path: Path) -> None:
    values = {"a": {"latency_ms": 12.0}, "b": {"latency_ms": 4.0}, "c": {"latency_ms": 3.0}}
    stages = Recorded([FRONT, FRONT, FRONT], values)
    summary = run_closed_loop(stages, tmp_path, LoopSettings(max_rounds=3, hv_tolerance=0.01))
    assert stages.calls == ["profile", "fit1", "search1:", "measure", "fit2", "search2:a,b,c", "measure", "export"]
    assert summary["rounds_run"] == 2 and summary["converged"] and summary["rounds"][1]["hypervolume_change"] == 0
    # answers are the profile's growth: 4 rows, then 3 more in round 1 and none in round 2
    assert [r["device_answers"] for r in summary["rounds"]] == [3, 0] and summary["device_answers"] == 7
    assert summary["final_front"][0] == {"arch": "a", "acc": 90.0, "latency_ms": 12.0, "latency_ms_predicted": 10.0}
    assert json.loads((tmp_path / "summary.json").read_text())["stop_reason"].startswith("measured hypervolume")
    again = Recorded([FRONT, FRONT, FRONT], values)
    assert (
        run_closed_loop(again, tmp_path, LoopSettings(max_rounds=3, hv_tolerance=0.01))["rounds"] == summary["rounds"]
    )
    assert again.calls == []


def test_a_round_limit_stops_a_front_that_keeps_moving(tmp_path: Path) -> None:
    moved = Front(FRONT.rows[:2], FRONT.objectives, FRONT.directions, FRONT.measured)
    values = {"a": {"latency_ms": 12.0}, "b": {"latency_ms": 4.0}, "c": {"latency_ms": 3.0}}
    summary = run_closed_loop(Recorded([FRONT, moved], values), tmp_path, LoopSettings(max_rounds=2, hv_tolerance=0.0))
    assert summary["rounds_run"] == 2 and not summary["converged"] and summary["stop_reason"] == "max_rounds=2 reached"
