"""The closed loop: profile -> (fit -> search -> re-measure -> report)* -> export, resumable.

:func:`run_closed_loop` drives rounds of :class:`LoopStages` (which hwnas-pipeline implements:
what a stage does is the entry point's business, how rounds follow one another and resume is
this module's). Every stage ends by writing its done-marker ``rounds/<k>/<stage>.json``
atomically (a temporary file renamed over it) holding what the stage returned; a rerun in the
same directory reads the markers and runs only the stages without one, so a run killed anywhere
continues where it was (stages that write as they go, the profile and the search, resume their
own files too). Round 0 holds the initial profile; round ``k >= 1`` fits, searches, re-measures
the returned front and reports predicted against measured values; the loop stops when the
measured front's hypervolume changes by less than ``hv_tolerance`` (relative) from the round
before, or after ``max_rounds``; then the last front is exported. ``summary.json`` is rewritten
after every round.

Pure bookkeeping and numpy: no Hydra, no component package.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nas import pareto
from nas._files import replace_text
from nas._objective import Constraint
from nas.predictor_metrics import prediction_metrics

__all__ = [
    "Front",
    "LoopSettings",
    "LoopStages",
    "Progress",
    "front_figures",
    "read_marker",
    "run_closed_loop",
    "write_marker",
]

log = logging.getLogger("hwnas.pipeline")

ROUNDS_DIR = "rounds"
SUMMARY_FILE = "summary.json"

#: Called after each durable write inside a stage: ``(stage, round, count so far)``. The CLI
#: logs with it; tests use it to kill the process at an exact point inside a stage.
Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, round_: int, count: int) -> None:
    return None


def write_marker(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (fsynced temporary file, then rename):
    a kill leaves the old marker or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_text(path, json.dumps(payload, indent=2, allow_nan=False, default=_plain) + "\n")


def read_marker(path: Path) -> dict[str, Any] | None:
    """A stage's marker, or None when the stage has not finished."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


@dataclass(frozen=True)
class Front:
    """A search's returned front: one row per architecture (``arch`` and every objective's
    predicted or computed value), the objectives in order with their directions, and which of
    them the device measures (their values in ``rows`` are predictions)."""

    rows: tuple[dict[str, Any], ...]
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    measured: tuple[str, ...]
    #: Evaluations the search spent to return it (repeats its storage answered are not counted).
    trials: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "rows": list(self.rows),
            "objectives": list(self.objectives),
            "directions": list(self.directions),
            "measured": list(self.measured),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Front:
        return cls(tuple(data["rows"]), tuple(data["objectives"]), tuple(data["directions"]), tuple(data["measured"]))

    @property
    def archs(self) -> list[str]:
        return [row["arch"] for row in self.rows]


class LoopStages(Protocol):
    """What one closed loop does in each stage; each returns what its marker records."""

    def profile(self, progress: Callable[[int], None]) -> dict[str, Any]:
        """Measure the initial sample into the profile (appending, resuming); returns at least
        ``{"profile_rows": ..., "failed": [...]}``."""

    def fit(self, round_: int, out: Path, progress: Callable[[int], None]) -> dict[str, Any]:
        """Fit each measured objective's predictor on the profile as it stands, saved under ``out``."""

    def search(self, round_: int, out: Path, seeds: Sequence[str], progress: Callable[[int], None]) -> Front:
        """Search on this round's predictors (under ``out``, the fit's files beside it), starting
        from ``seeds`` (the previous round's front); returns the front."""

    def measure(self, archs: Sequence[str], progress: Callable[[int], None]) -> dict[str, Any]:
        """Re-measure ``archs`` into the profile (each one it lacks); returns ``{"values": {arch:
        {metric: value}}, "appended": rows this call added, "failed": [...], "profile_rows": rows
        the profile holds after it}``; the profile's growth is the round's device answers."""

    def export(self, rows: Sequence[Mapping[str, Any]], out: Path, progress: Callable[[int], None]) -> dict[str, Any]:
        """Write the final front's rows (predicted and measured values) and networks under ``out``."""


@dataclass(frozen=True)
class LoopSettings:
    max_rounds: int
    #: Stop when the measured front's hypervolume moves by less than this share of the last one.
    hv_tolerance: float
    #: The hypervolume reference point, one value per objective; None = derived from round 1's
    #: measured front (worst value + 10% of the range), then kept for every round.
    reference_point: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_rounds, bool) or not isinstance(self.max_rounds, int) or self.max_rounds < 1:
            raise ValueError(f"max_rounds must be an integer >= 1, got {self.max_rounds!r}")
        if not self.hv_tolerance >= 0:
            raise ValueError(f"hv_tolerance must be >= 0 (a share, e.g. 0.01 for 1%), got {self.hv_tolerance!r}")


def measured_rows(front: Front, values: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    """The front's rows with each measured objective's prediction kept as ``<name>_predicted``
    and its measured value under its own name (None where the device gave none)."""
    rows = []
    for row in front.rows:
        got = values.get(row["arch"], {})
        merged = dict(row)
        for name in front.measured:
            merged[f"{name}_predicted"] = row[name]
            merged[name] = got.get(name)
        rows.append(merged)
    return rows


def _matrix(rows: Sequence[Mapping[str, Any]], objectives: Sequence[str]) -> np.ndarray:
    return np.array(
        [[np.nan if r.get(o) is None else float(r[o]) for o in objectives] for r in rows], dtype=float
    ).reshape(len(rows), len(objectives))


def front_figures(
    front: Front,
    values: Mapping[str, Mapping[str, float]],
    constraints: Sequence[Constraint],
    reference: Sequence[float],
) -> dict[str, Any]:
    """Predicted against measured on the returned front: per measured objective the agreement
    (:func:`nas.predictor_metrics.prediction_metrics`: Spearman, MAPE, ...), per constraint on a
    measured objective how many architectures break it when measured, and the hypervolume of the
    front as predicted and as measured (under ``reference``)."""
    rows = measured_rows(front, values)
    agreement = {}
    for name in front.measured:
        pairs = [(r[f"{name}_predicted"], r[name]) for r in rows if r[name] is not None]
        predicted, measured = (np.array(side, dtype=float) for side in zip(*pairs)) if pairs else ([], [])
        agreement[name] = prediction_metrics(np.asarray(measured), np.asarray(predicted)) if pairs else None
    breaks = {
        c.name: sum(1 for r in rows if r[c.metric] is not None and c.violation(r[c.metric]) > 0)
        for c in constraints
        if c.metric in front.measured
    }
    predicted_values = _matrix(front.rows, front.objectives)
    measured_values = _matrix(rows, front.objectives)
    return {
        "front_size": len(rows),
        "unmeasured": sum(1 for r in rows if any(r[n] is None for n in front.measured)),
        "predicted_vs_measured": agreement,
        "constraint_breaks": breaks,
        "hypervolume_predicted": pareto.hypervolume(predicted_values, front.directions, reference),
        "hypervolume_measured": pareto.hypervolume(measured_values, front.directions, reference),
    }


def _reference(front: Front, values: Mapping[str, Mapping[str, float]], given: Sequence[float] | None) -> list[float]:
    if given is not None:
        if len(given) != len(front.objectives):
            raise ValueError(
                f"reference_point has {len(given)} values; give one per objective {list(front.objectives)}"
            )
        return [float(v) for v in given]
    points = _matrix(measured_rows(front, values), front.objectives)
    return [float(v) for v in pareto.default_reference(points, front.directions)]


@dataclass
class _Rounds:
    """Where a run's markers live, and the stage-or-marker rule."""

    run_dir: Path
    progress: Progress

    def stage(self, round_: int, name: str, work: Callable[[Callable[[int], None]], dict[str, Any]]) -> dict[str, Any]:
        path = self.run_dir / ROUNDS_DIR / str(round_) / f"{name}.json"
        done = read_marker(path)
        if done is not None:
            log.info("round %d: %s done before (%s), kept", round_, name, path)
            return done
        log.info("round %d: %s", round_, name)
        started = time.perf_counter()
        result = work(lambda count: self.progress(name, round_, count))
        result = {**result, "stage_s": time.perf_counter() - started}
        self.progress(name, round_, -1)  # the stage's work is done, its marker not yet written
        write_marker(path, result)
        return result

    def dir(self, round_: int, name: str) -> Path:
        return self.run_dir / ROUNDS_DIR / str(round_) / name


def run_closed_loop(
    stages: LoopStages,
    run_dir: Path,
    settings: LoopSettings,
    constraints: Sequence[Constraint] = (),
    header: Mapping[str, Any] | None = None,
    progress: Progress = _no_progress,
) -> dict[str, Any]:
    """Run (or resume) the loop in ``run_dir``; returns summary.json's content (``header``'s
    members first)."""
    started = time.perf_counter()
    rounds = _Rounds(run_dir, progress)
    profile = rounds.stage(0, "profile", stages.profile)
    history: list[dict[str, Any]] = []
    reference: list[float] | None = None if settings.reference_point is None else list(settings.reference_point)
    seeds: list[str] = []
    # A stage's device answers are the profile rows it added, counted from the rows before it:
    # durable across kills, unlike a count kept by the process that was killed.
    rows_before = profile["profile_rows"]
    front: Front | None = None
    values: dict[str, dict[str, float]] = {}
    stop = f"max_rounds={settings.max_rounds} reached"
    converged = False
    for k in range(1, settings.max_rounds + 1):
        fit = rounds.stage(k, "fit", lambda p, k=k: stages.fit(k, rounds.dir(k, "fit"), p))
        searched = rounds.stage(
            k, "search", lambda p, k=k: stages.search(k, rounds.dir(k, "search"), seeds, p).to_dict()
        )
        front = Front.from_dict(searched)
        measured = rounds.stage(k, "measure", lambda p, front=front: stages.measure(front.archs, p))
        values = measured["values"]
        if reference is None:
            reference = _reference(front, values, None)
        report = rounds.stage(
            k,
            "report",
            lambda p, front=front: {
                "reference_point": reference,
                **front_figures(front, values, constraints, reference),
            },
        )
        reference = report["reference_point"]
        change = (
            _relative_change(history[-1]["hypervolume_measured"], report["hypervolume_measured"]) if history else None
        )
        history.append(
            _round_summary(k, fit, searched, measured, report, change, measured["profile_rows"] - rows_before)
        )
        rows_before = measured["profile_rows"]
        _log_round(history[-1])
        seeds = front.archs
        converged = change is not None and change < settings.hv_tolerance
        summary = _summary(header, profile, history, reference, front, values, converged, None, started)
        write_marker(run_dir / SUMMARY_FILE, summary)
        if converged:
            stop = f"measured hypervolume changed by {change:.3g} < hv_tolerance={settings.hv_tolerance:g}"
            break
    assert front is not None  # max_rounds >= 1
    last = len(history)
    final_rows = measured_rows(front, values)
    exported = rounds.stage(last, "export", lambda p: stages.export(final_rows, run_dir / "final", p))
    summary = _summary(header, profile, history, reference, front, values, converged, stop, started)
    summary["export"] = exported
    write_marker(run_dir / SUMMARY_FILE, summary)
    log.info("stopped after %d round(s): %s; final front of %d in %s", last, stop, len(final_rows), run_dir / "final")
    return summary


def _relative_change(before: float, after: float) -> float:
    return abs(after - before) / abs(before) if before else (0.0 if after == before else float("inf"))


def _round_summary(
    k: int,
    fit: Mapping[str, Any],
    searched: Mapping[str, Any],
    measured: Mapping[str, Any],
    report: Mapping[str, Any],
    change: float | None,
    answers: int,
) -> dict[str, Any]:
    return {
        "round": k,
        "fit": fit.get("metrics", {}),
        "search_trials": searched.get("trials"),
        "device_answers": answers,
        "measure_failed": measured["failed"],
        "profile_rows": measured["profile_rows"],
        **{k: v for k, v in report.items() if k not in ("reference_point", "stage_s")},
        "hypervolume_change": change,
        "stage_s": {
            name: stage.get("stage_s")
            for name, stage in (("fit", fit), ("search", searched), ("measure", measured), ("report", report))
        },
    }


def _log_round(entry: Mapping[str, Any]) -> None:
    agreement = {
        name: {key: figures[key] for key in ("spearman", "mape")} if figures else None
        for name, figures in entry["predicted_vs_measured"].items()
    }
    log.info(
        "round %d: front of %d, predicted vs measured %s, constraint breaks %s, hypervolume measured %.6g "
        "(predicted %.6g, change %s), %d device answers",
        entry["round"],
        entry["front_size"],
        json.dumps(agreement),
        entry["constraint_breaks"],
        entry["hypervolume_measured"],
        entry["hypervolume_predicted"],
        "n/a" if entry["hypervolume_change"] is None else f"{entry['hypervolume_change']:.3g}",
        entry["device_answers"],
    )


def _summary(
    header: Mapping[str, Any] | None,
    profile: Mapping[str, Any],
    history: list[dict[str, Any]],
    reference: Sequence[float] | None,
    front: Front,
    values: Mapping[str, Mapping[str, float]],
    converged: bool,
    stop: str | None,
    started: float,
) -> dict[str, Any]:
    return {
        **(header or {}),
        "objectives": dict(zip(front.objectives, front.directions)),
        "measured_objectives": list(front.measured),
        "reference_point": dict(zip(front.objectives, reference or [])),
        "profile": {
            "device_answers": profile["profile_rows"],
            "failed": profile["failed"],
            "stage_s": profile.get("stage_s"),
        },
        "device_answers": profile["profile_rows"] + sum(r["device_answers"] for r in history),
        "rounds": history,
        "rounds_run": len(history),
        "converged": converged,
        "stop_reason": stop,
        "final_front": measured_rows(front, values),
        "wall_time_s_this_run": time.perf_counter() - started,
    }
