"""A returned front scored against the truth: what the search estimated, measured.

A search may run on estimates (a predictor fitted on a few rows, a zero-cost proxy) while what
matters is the device's real latency and the network's real accuracy. Each objective names what
measures it (:meth:`nas.Objective.truth`: a predictor's table column, a live device); this module
reads those truths for the returned architectures only, as a user would check them:

- :func:`measure_front`: each front row gains ``<objective>.measured``; per objective the
  agreement of estimate and measurement (Spearman, MAPE, ...) and, per constraint, how many
  returned architectures break it when measured.
- :func:`regret`: the score regret, whenever the score and the cost have a table behind them:
  budgets at percentiles of the true cost over every allowed architecture; per budget, the best
  true score of any architecture within it minus the best true score of a returned architecture
  whose true cost is within it (nothing within it counts the whole best score); and their mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nas import pareto
from nas._objective import Candidate, Constraint, Direction, Objective, ObjectiveError
from nas.predictor_metrics import prediction_metrics
from nas.search import Search

#: Budgets of :func:`regret`: these percentiles of the true cost over the allowed architectures.
REGRET_PERCENTILES = (10, 30, 50, 70, 90)
MEASURED_SUFFIX = ".measured"
#: prediction_metrics' keys that say nothing here (n_measured counts the rows; no intervals).
SKIPPED = ("n_test", "coverage")


def measured_truth(measure: Objective) -> Objective | None:
    """What measures ``measure``'s values: its :meth:`~nas.Objective.truth`, or the measure itself
    when it knows every value up front (a table column); None for an estimate with nothing behind
    it (a proxy) and for a live measurement (which is its own truth, already measured)."""
    truth = measure.truth()
    if truth is not None:
        return truth
    return measure if measure.oracle() is not None else None


def cost_objective(objectives: Sequence[Objective]) -> Objective | None:
    """The objective a front's cost is read from: the first minimised one named like a latency,
    else the first minimised one; None when nothing is minimised."""
    minimised = [o for o in objectives if o.direction == Direction.MINIMIZE]
    return next((o for o in minimised if o.name.startswith("latency")), minimised[0] if minimised else None)


def measure_front(search: Search, front: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """Add ``<name>.measured`` to every front row for each measure estimated against a truth, and
    return those column names and summary.json's ``measured`` block ({} when none has one).

    A truth is read once per architecture and truth (a live device measures each network once);
    an architecture the truth has no value for gets None and is left out of the agreement."""
    estimated = [m for m in search.measures if m.truth() is not None]
    if not estimated or not front:
        return [], {}
    readings: dict[int, dict[str, float | None]] = {}
    columns, block = [], {"objectives": {}, "constraints": {}}
    for measure in estimated:
        truth = measure.truth()
        assert truth is not None
        values = readings.get(id(truth))
        if values is None:
            values = readings[id(truth)] = {row["arch"]: _read(truth, search, row["arch"]) for row in front}
            column = measure.name + MEASURED_SUFFIX
            columns.append(column)
            for row in front:
                row[column] = values[row["arch"]]
        pairs = [(values[r["arch"]], r[measure.name]) for r in front if values[r["arch"]] is not None]
        agreement: dict[str, Any] = {
            "measured_by": truth.describe(),
            "n_measured": len(pairs),
            "n_returned": len(front),
        }
        if pairs and all(m > 0 for m, _ in pairs):
            measured, predicted = (np.array(v, dtype=float) for v in zip(*pairs))
            agreement |= {k: v for k, v in prediction_metrics(measured, predicted).items() if k not in SKIPPED}
        block["objectives"][measure.name] = agreement
    by_name = {m.name: m for m in search.measures}
    for constraint in search.constraints:
        truth = by_name[constraint.metric].truth()
        if truth is None or id(truth) not in readings:
            continue
        values = readings[id(truth)]
        known = [values[r["arch"]] for r in front if values[r["arch"]] is not None]
        block["constraints"][constraint.name] = {
            "measured_by": truth.describe(),
            "broken_when_measured": sum(constraint.violation(v) > 0 for v in known),
            "n_measured": len(known),
        }
    return columns, block


def _read(truth: Objective, search: Search, arch: str) -> float | None:
    try:
        return truth.evaluate(Candidate(search.space.parse(arch), search.space))
    except ObjectiveError:
        return None


def regret(
    search: Search,
    front: Sequence[dict[str, Any]],
    score_fallback: Objective | None = None,
    budgets: Sequence[float] | None = None,
) -> dict[str, Any] | None:
    """The score regret of the returned ``front`` at cost budgets, measured on the truths; None
    when the score or the cost has no table behind it.

    The score is the first maximised objective, measured by its truth, or ``score_fallback``
    (the space's table accuracy) when it has none (a proxy); the cost is the first latency-like
    (else first) minimised objective's truth. Architectures whose truths break a constraint are
    neither allowed to the oracle nor counted as found; a constraint on a measure with no table
    behind it leaves the run without regret (an oracle ignoring it would be unfair)."""
    maximised = [o for o in search.objectives if o.direction == Direction.MAXIMIZE]
    cost = cost_objective(search.objectives)
    if not maximised or cost is None:
        return None
    score_truth = measured_truth(maximised[0]) or score_fallback
    cost_truth = measured_truth(cost)
    by_name = {m.name: m for m in search.measures}
    bounded = [(c, measured_truth(by_name[c.metric])) for c in search.constraints]
    if score_truth is None or cost_truth is None or any(t is None for _, t in bounded):
        return None
    known = [score_truth.oracle(), cost_truth.oracle(), *(t.oracle() for _, t in bounded)]
    if any(k is None for k in known):
        return None
    scores, costs = known[0], known[1]
    limits = [(c, values) for (c, _), values in zip(bounded, known[2:])]
    allowed = sorted(set(scores).intersection(costs, *known[2:]))
    allowed = [a for a in allowed if _feasible(a, limits)]
    if not allowed:
        return None
    all_cost = np.array([costs[a] for a in allowed])
    all_score = np.array([scores[a] for a in allowed])
    allowed_set = set(allowed)
    returned = [r["arch"] for r in front if r["arch"] in allowed_set]
    found_cost = np.array([costs[a] for a in returned])
    found_score = np.array([scores[a] for a in returned])
    rule = "given" if budgets is not None else f"percentiles {list(REGRET_PERCENTILES)} of the allowed true cost"
    budget_values = np.asarray(budgets if budgets is not None else np.percentile(all_cost, REGRET_PERCENTILES), float)
    per_budget = pareto.regret_at_budgets(found_cost, found_score, all_cost, all_score, budget_values, found_floor=0.0)
    finite = per_budget[~np.isnan(per_budget)]
    return {
        "score": f"{maximised[0].name}, measured by {score_truth.describe()}",
        "cost": f"{cost.name}, measured by {cost_truth.describe()}",
        "budgets": budget_values.tolist(),
        "budget_rule": rule,
        # null: nothing allowed fits that budget (a budget given below every architecture's cost).
        "regret": [None if np.isnan(r) else float(r) for r in per_budget],
        "mean": float(finite.mean()) if len(finite) else None,
        "returned": len(front),
        "returned_measured_feasible": len(returned),
        "allowed_architectures": len(allowed),
    }


def _feasible(arch: str, limits: Sequence[tuple[Constraint, dict[str, float]]]) -> bool:
    return all(c.violation(values[arch]) <= 0 for c, values in limits)
