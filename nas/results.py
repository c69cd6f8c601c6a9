"""A finished search as tables: every trial, the feasible Pareto set, and a summary.

Everything here reads the Optuna study (the single source of truth), so the files can be
re-derived from the storage at any time, including from a search that is still running.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas import pareto
from nas._files import replace_text
from nas.search import ARCH_KEY, DETAIL_PREFIX, FAIL_KEY, METRIC_PREFIX, REUSED_KEY, Search

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TrialsTable:
    """One row per trial, with a fixed column order (written as trials.csv)."""

    columns: tuple[str, ...]
    rows: tuple[dict[str, Any], ...]
    objectives: tuple[str, ...]
    directions: tuple[str, ...]

    def feasible_complete(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["state"] == "COMPLETE" and r["feasible"]]


def trials_table(search: Search, study: optuna.Study) -> TrialsTable:
    objectives = tuple(o.name for o in search.objectives)
    metrics = tuple(m.name for m in search.metrics)
    constraints = tuple(f"constraint:{c.name}" for c in search.constraints)
    trials = study.get_trials(deepcopy=False)
    # Details (e.g. latency_ms.iqr_ms) are whatever the objectives reported, in first-seen order.
    details = tuple(
        dict.fromkeys(
            key[len(DETAIL_PREFIX) :] for t in trials for key in t.user_attrs if key.startswith(DETAIL_PREFIX)
        )
    )
    columns = (
        "number",
        "state",
        "arch",
        *objectives,
        *metrics,
        *details,
        *constraints,
        "feasible",
        "reused_from_trial",
        "fail_reason",
        "duration_s",
        "datetime_start",
    )
    counts = {m.name for m in search.measures if m.integer}
    rows = []
    for trial in trials:
        values = trial.values if trial.state == TrialState.COMPLETE else None
        violations = trial.constraints
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "arch": trial.user_attrs.get(ARCH_KEY, ""),
            **{name: (values[i] if values else None) for i, name in enumerate(objectives)},
            **{name: trial.user_attrs.get(METRIC_PREFIX + name) for name in metrics},
            **{name: trial.user_attrs.get(DETAIL_PREFIX + name) for name in details},
            **{f"constraint:{c.name}": violations.get(c.name) for c in search.constraints},
            "feasible": trial.state == TrialState.COMPLETE and all(v <= 0 for v in violations.values()),
            "reused_from_trial": trial.user_attrs.get(REUSED_KEY),
            "fail_reason": trial.user_attrs.get(FAIL_KEY, ""),
            "duration_s": trial.duration.total_seconds() if trial.duration else None,
            "datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else None,
        }
        for name in counts:  # Optuna stores every value as a float; a count reads better as one
            if row[name] is not None:
                row[name] = round(row[name])
        rows.append(row)
    return TrialsTable(columns, tuple(rows), objectives, tuple(search.directions))


def column_descriptions(search: Search, table: TrialsTable) -> dict[str, str]:
    """What each column of ``table`` holds, for columns.json beside trials.csv and pareto.csv."""
    measures = {m.name: m for m in search.measures}
    directions = dict(zip(table.objectives, table.directions))
    described = {
        "number": "Optuna's trial number",
        "state": "COMPLETE, FAIL (see fail_reason), RUNNING (a live worker, or one that died) or PRUNED (not "
        "evaluated, see fail_reason: another worker had the architecture, the budget was full, or a table "
        "holds no value for it)",
        "arch": "the architecture's canonical string (space.parse reads it back)",
    }
    for name in table.objectives:
        described[name] = f"objective ({directions[name]}): {measures[name].describe()}"
    for name in table.columns:
        if name in measures and name not in described:
            described[name] = f"recorded metric, not optimised: {measures[name].describe()}"
        measure, _, key = name.partition(".")
        if key and measure in measures:
            described[name] = measures[measure].describe_details().get(key, f"detail {key!r} of {measure}")
    for constraint in search.constraints:
        described[f"constraint:{constraint.name}"] = (
            f"violation of the bound {constraint.name}: how far {constraint.metric} lies beyond it "
            "(in its unit); <= 0 means the bound holds"
        )
    return described | {
        "feasible": "True when the trial is COMPLETE and every constraint column is <= 0",
        "reused_from_trial": "the trial whose values this repeat of an architecture copied (not re-measured)",
        "fail_reason": "why a FAIL trial failed",
        "duration_s": "wall time of the trial, seconds",
        "datetime_start": "when the trial started (the storage's clock)",
    }


def pareto_rows(table: TrialsTable, sort_by: str | None = None) -> list[dict[str, Any]]:
    """The feasible non-dominated trials, one per architecture, sorted by ``sort_by`` ascending.
    A repeat answered from the storage is left out: the trial it copied represents it (an
    isomorph then appears as the network that was evaluated).

    ``sort_by`` defaults to the first objective whose name starts with "latency", else the first.
    """
    unique: dict[str, dict[str, Any]] = {}
    for row in table.feasible_complete():
        if row["reused_from_trial"] is None:
            unique.setdefault(row["arch"], row)  # the first trial of each architecture represents it
    rows = list(unique.values())
    if not rows:
        return []
    values = np.array([[r[name] for name in table.objectives] for r in rows], dtype=float)
    mask = pareto.non_dominated_mask(values, table.directions)
    front = [r for r, keep in zip(rows, mask) if keep]
    key = sort_by or next((n for n in table.objectives if n.startswith("latency")), table.objectives[0])
    return sorted(front, key=lambda r: (r[key], r["number"]))


def feasible_values(table: TrialsTable) -> np.ndarray:
    """Objective values of the feasible complete trials, shape (n, number of objectives)."""
    rows = table.feasible_complete()
    return np.array([[r[n] for n in table.objectives] for r in rows], dtype=float).reshape(
        len(rows), len(table.objectives)
    )


@dataclass(frozen=True)
class Oracle:
    """Every architecture the objectives know a value for up front (a benchmark table) that the
    search's constraints allow: the best a search under those constraints could find."""

    archs: tuple[str, ...]
    values: np.ndarray  # (len(archs), number of objectives)
    #: How many architectures the table knows before the constraints removed the infeasible ones.
    known: int

    @classmethod
    def of(cls, search: Search) -> Oracle | None:
        """The oracle of a search whose objectives, and every metric a constraint bounds, know
        their values; ``None`` otherwise (a constraint on a metric no table holds, such as
        parameters counted per trial, cannot be applied to the table, and an oracle that ignored
        it would score the search against architectures it was not allowed to find)."""
        measures = {m.name: m for m in search.measures}
        bounded = [measures[c.metric] for c in search.constraints]
        known = [m.oracle() for m in [*search.objectives, *bounded]]
        if any(k is None for k in known):
            return None
        archs = sorted(set.intersection(*(set(k) for k in known)))
        by_name = dict(zip([m.name for m in [*search.objectives, *bounded]], known))
        feasible = [a for a in archs if all(c.violation(by_name[c.metric][a]) <= 0 for c in search.constraints)]
        if not feasible:
            return None
        values = np.array([[by_name[o.name][a] for o in search.objectives] for a in feasible], dtype=float)
        return cls(tuple(feasible), values, known=len(archs))


def reference_point(
    table: TrialsTable, given: Sequence[float] | None, oracle: Oracle | None
) -> tuple[np.ndarray | None, str]:
    """The hypervolume reference point and the rule that chose it, in the order of preference:
    the one given; the oracle's worst value per objective (the same for every search on that
    table, so hypervolumes compare across samplers and seeds); else the feasible trials' worst
    value pushed out by 10% of the range (comparable only within this run)."""
    if given is not None:
        if len(given) != len(table.objectives):
            raise ValueError(
                f"reference_point has {len(given)} values; give one per objective {list(table.objectives)}"
            )
        return np.asarray(given, dtype=float), "given"
    if oracle is not None:
        worst = pareto.to_minimization(oracle.values, table.directions).max(axis=0)
        return pareto.to_minimization(worst[None, :], table.directions)[0], "oracle worst value per objective"
    values = feasible_values(table)
    if len(values) == 0:
        return None, "no feasible trial"
    return pareto.default_reference(values, table.directions), "feasible trials' worst value + 10% of range"


def hypervolume_summary(table: TrialsTable, reference: np.ndarray | None, rule: str) -> dict[str, Any]:
    """Hypervolume of the feasible trials and the reference point it was computed against."""
    if reference is None:
        return {"hypervolume": None, "reference_point": None, "reference_rule": rule}
    return {
        "hypervolume": pareto.hypervolume(feasible_values(table), table.directions, reference),
        "reference_point": dict(zip(table.objectives, map(float, reference))),
        "reference_rule": rule,
    }


@dataclass
class RunningFront:
    """A search's front and counts, one finished trial at a time (values in the objectives' own
    units): the progress bar's and the log's figures (``status``), and TensorBoard's. As an Optuna
    callback it takes each trial the loop finishes."""

    directions: Sequence[str]
    reference: np.ndarray | None
    points: np.ndarray = field(init=False)
    hypervolume: float = 0.0
    complete: int = 0
    feasible: int = 0
    failed: int = 0
    evaluations: int = 0

    def __post_init__(self) -> None:
        self.points = np.empty((0, len(self.directions)))

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.add(trial)

    def status(self) -> dict[str, object]:
        shown: dict[str, object] = {"front": len(self.points)}
        if self.reference is not None:
            shown["hypervolume"] = self.hypervolume
        return shown | {"failed": self.failed}

    def add(self, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            self.failed += 1
        if trial.state != TrialState.COMPLETE:
            return
        self.complete += 1
        if REUSED_KEY not in trial.user_attrs:
            self.evaluations += 1
        if not feasible(trial):
            return
        self.feasible += 1
        if REUSED_KEY in trial.user_attrs:  # a repeat answered from the storage: its point is there
            return
        candidate = np.vstack([self.points, [trial.values]])
        mask = pareto.non_dominated_mask(candidate, self.directions)
        if mask[-1]:  # only a new non-dominated point moves the front
            self.points = candidate[mask]
            if self.reference is not None:
                self.hypervolume = pareto.hypervolume(self.points, self.directions, self.reference)


def feasible(trial: FrozenTrial) -> bool:
    """COMPLETE and within every constraint (Optuna's violations <= 0)."""
    return trial.state == TrialState.COMPLETE and all(v <= 0 for v in trial.constraints.values())


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """``rows`` as CSV, written whole or not at all (a killed write leaves the previous file)."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(row.get(k)) for k in columns})
    replace_text(path, buffer.getvalue())


def write_json(path: Path, payload: Any) -> None:
    """``payload`` as JSON (no NaN), written whole or not at all."""
    replace_text(path, json.dumps(payload, indent=2, default=_json_default, allow_nan=False) + "\n")


def _csv_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):  # np.float64 too: repr(float(...)) keeps every digit, no "np." prefix
        return repr(float(value))  # pareto.csv must re-derive exactly from trials.csv
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def oracle_summary(table: TrialsTable, oracle: Oracle, reference: np.ndarray | None) -> dict[str, Any]:
    """How the search compares with the best possible on its own objectives: the oracle's size and
    Pareto set, and the hypervolume ratio. (Regret, measured on the truths whatever the search
    optimised, is :func:`nas.truth.regret`.)"""
    mask = pareto.non_dominated_mask(oracle.values, table.directions)
    summary: dict[str, Any] = {
        "architectures": len(oracle.archs),
        "architectures_before_constraints": oracle.known,
        "pareto_size": int(mask.sum()),
    }
    if reference is not None:
        oracle_hv = pareto.hypervolume(oracle.values, table.directions, reference)
        found_hv = pareto.hypervolume(feasible_values(table), table.directions, reference)
        summary.update(hypervolume=oracle_hv, hypervolume_ratio=found_hv / oracle_hv if oracle_hv > 0 else None)
    return summary
