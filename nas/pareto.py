"""Pareto fronts, hypervolume and regret on plain arrays of objective values.

Every function takes values of shape (n points, m objectives) in the objectives' own units and
directions, so callers never negate anything themselves. Internally everything is minimised.
Pure numpy: no torch, no optuna, so analysis scripts can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nas._objective import Direction

__all__ = [
    "default_reference",
    "hypervolume",
    "non_dominated_mask",
    "regret_at_budgets",
    "to_minimization",
]


def _directions(directions: Sequence[str | Direction], n_objectives: int) -> list[Direction]:
    if isinstance(directions, str | Direction):
        raise TypeError(
            f"directions must be a sequence with one direction per objective, got the single {directions!r}"
        )
    parsed = []
    for position, direction in enumerate(directions):
        try:
            parsed.append(Direction(direction))
        except ValueError:
            raise ValueError(f"direction {position} is {direction!r}; use 'minimize' or 'maximize'") from None
    if len(parsed) != n_objectives:
        raise ValueError(f"got {len(parsed)} directions for {n_objectives} objective columns; give one per column")
    return parsed


def _as_matrix(values: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(
            f"values must have shape (points, objectives), got shape {matrix.shape}; "
            "reshape a single objective to (n, 1)"
        )
    return matrix


def to_minimization(
    values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str | Direction]
) -> np.ndarray:
    """A float copy of ``values`` (n, m) with maximised columns negated, so smaller is better."""
    matrix = _as_matrix(values)
    signs = np.array([-1.0 if d is Direction.MAXIMIZE else 1.0 for d in _directions(directions, matrix.shape[1])])
    return matrix * signs


def _front_2d(points: np.ndarray) -> np.ndarray:
    """Non-dominated mask of finite-or-infinite, NaN-free minimisation points with 2 columns."""
    n = len(points)
    order = np.lexsort((points[:, 1], points[:, 0]))
    f0, f1 = points[order, 0], points[order, 1]
    # A point is dominated by one with smaller f0 and f1 <= its f1, or by one with the same f0 and
    # smaller f1. Within a run of equal f0 the first element has the run's smallest f1.
    run_start = np.ones(n, dtype=bool)
    run_start[1:] = f0[1:] != f0[:-1]
    first_of_run = np.maximum.accumulate(np.where(run_start, np.arange(n), 0))
    best_f1_so_far = np.minimum.accumulate(f1)
    best_f1_before_run = np.full(n, np.inf)
    has_earlier = first_of_run > 0
    best_f1_before_run[has_earlier] = best_f1_so_far[first_of_run[has_earlier] - 1]
    # has_earlier guards the first run, whose placeholder +inf must not "dominate" an f1 of +inf.
    dominated = (has_earlier & (best_f1_before_run <= f1)) | (f1 > f1[first_of_run])
    mask = np.empty(n, dtype=bool)
    mask[order] = ~dominated
    return mask


def _front_general(points: np.ndarray) -> np.ndarray:
    """Non-dominated mask for any number of columns: peel off the lexicographic minimum.

    The lexicographically smallest remaining point cannot be dominated by any remaining point,
    and anything that dominated it would already have removed it, so it is on the front. Each step
    removes everything it dominates: O(n * front size) comparisons, vectorised per front point.
    """
    n = len(points)
    order = np.lexsort(points.T[::-1])
    remaining = order
    on_front = []
    while remaining.size:
        best = remaining[0]
        on_front.append(best)
        rest = remaining[1:]
        others = points[rest]
        pivot = points[best]
        dominated = np.all(others >= pivot, axis=1) & np.any(others > pivot, axis=1)
        remaining = rest[~dominated]
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(on_front, dtype=np.intp)] = True
    return mask


def _non_dominated_minimization(points: np.ndarray) -> np.ndarray:
    mask = np.zeros(len(points), dtype=bool)
    # NaN compares false both ways, so it would neither dominate nor be dominated: keep such
    # rows out explicitly instead of letting them onto the front.
    valid = ~np.isnan(points).any(axis=1)
    finite_points = points[valid]
    if finite_points.shape[0] == 0:
        return mask
    m = points.shape[1]
    if m == 1:
        sub = finite_points[:, 0] == finite_points[:, 0].min()
    elif m == 2:
        sub = _front_2d(finite_points)
    else:
        sub = _front_general(finite_points)
    mask[valid] = sub
    return mask


def non_dominated_mask(
    values: np.ndarray | Sequence[Sequence[float]], directions: Sequence[str | Direction]
) -> np.ndarray:
    """Boolean mask (n,) of the points no other point dominates.

    Point a dominates b when a is at least as good in every objective and better in one, so
    points equal in every objective are kept together. Rows holding NaN are never on the front
    and dominate nothing.
    """
    points = to_minimization(values, directions)
    if points.shape[1] == 0:
        raise ValueError("values have no objective columns; give at least one")
    return _non_dominated_minimization(points)


def _hypervolume_2d(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact area for points that strictly dominate the reference (minimisation)."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    f0, f1 = points[order, 0], points[order, 1]
    # Sweep along f0: each point adds the strip between it and the best f1 seen before it.
    previous_best_f1 = np.concatenate(([reference[1]], np.minimum.accumulate(f1)[:-1]))
    heights = np.clip(previous_best_f1 - f1, 0.0, None)
    return float(np.sum((reference[0] - f0) * heights))


def _hypervolume_recursive(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume by slicing along the last objective (HSO); points dominate the reference."""
    m = points.shape[1]
    if len(points) == 0:
        return 0.0
    if m == 1:
        return float(reference[0] - points[:, 0].min())
    if m == 2:
        return _hypervolume_2d(points, reference)
    points = points[_non_dominated_minimization(points)]
    points = np.unique(points, axis=0)
    order = np.argsort(points[:, -1], kind="stable")
    points = points[order]
    last = points[:, -1]
    upper = np.append(last[1:], reference[-1])
    volume = 0.0
    for i in range(len(points)):
        thickness = upper[i] - last[i]
        if thickness <= 0.0:
            continue
        # Between last[i] and the next cut, the slab holds the projections of points 0..i.
        volume += thickness * _hypervolume_recursive(points[: i + 1, :-1], reference[:-1])
    return volume


def hypervolume(
    values: np.ndarray | Sequence[Sequence[float]],
    directions: Sequence[str | Direction],
    reference: Sequence[float] | np.ndarray,
) -> float:
    """Exact volume dominated by the points and bounded by ``reference``.

    ``reference`` is in the objectives' own units and directions, e.g. (lowest accuracy, highest
    latency) for (maximize accuracy, minimize latency). Points that do not strictly dominate the
    reference (or hold NaN) add nothing. Exact for any number of objectives; the cost grows quickly
    beyond 3 objectives or a few hundred front points.
    """
    points = to_minimization(values, directions)
    reference_array = np.asarray(reference, dtype=np.float64)
    if reference_array.shape != (points.shape[1],):
        raise ValueError(
            f"reference {reference_array.tolist()} has shape {reference_array.shape}; "
            f"give one value per objective ({points.shape[1]})"
        )
    if not np.all(np.isfinite(reference_array)):
        raise ValueError(f"reference {reference_array.tolist()} must be finite in every objective")
    ref_min = to_minimization(reference_array[None, :], directions)[0]
    inside = np.all(points < ref_min, axis=1)  # NaN compares false, so NaN rows drop out here
    points = points[inside]
    if len(points) == 0:
        return 0.0
    points = points[_non_dominated_minimization(points)]
    return _hypervolume_recursive(points, ref_min)


def default_reference(
    values: np.ndarray | Sequence[Sequence[float]],
    directions: Sequence[str | Direction],
    margin: float = 0.1,
) -> np.ndarray:
    """A reference point just worse than every point, in the objectives' own units and directions.

    Per objective: the worst value pushed further out by ``margin`` times the range (worst - best)
    over the non-NaN rows. Where the range is 0, the push is ``margin * max(|worst|, 1)`` so that
    the points still strictly dominate the reference and count. E.g. for (maximize accuracy,
    minimize latency) with accuracy in [60, 90] and latency in [2, 12], margin 0.1 gives (57, 13).
    Record the reference next to any hypervolume: values are comparable only under the same one.
    """
    if margin < 0:
        raise ValueError(f"margin is {margin}; give a margin >= 0 (a fraction of each objective's range)")
    points = to_minimization(values, directions)
    points = points[~np.isnan(points).any(axis=1)]
    if len(points) == 0:
        raise ValueError("no rows without NaN to derive a reference from; pass a reference explicitly")
    if not np.all(np.isfinite(points)):
        raise ValueError("values hold infinities; pass a finite reference explicitly")
    worst = points.max(axis=0)
    spread = worst - points.min(axis=0)
    push = np.where(spread > 0, margin * spread, margin * np.maximum(np.abs(worst), 1.0))
    ref_min = worst + push
    # Undo the negation of maximised columns (to_minimization is its own inverse).
    return to_minimization(ref_min[None, :], directions)[0]


def _best_under_budgets(cost: np.ndarray, score: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    """Highest score with cost <= each budget; -inf where nothing fits (the max of an empty set)."""
    keep = ~(np.isnan(cost) | np.isnan(score))
    cost, score = cost[keep], score[keep]
    order = np.argsort(cost, kind="stable")
    running_best = np.concatenate(([-np.inf], np.maximum.accumulate(score[order])))
    fitting = np.searchsorted(cost[order], budgets, side="right")
    return running_best[fitting]


def _vector(name: str, values: np.ndarray | Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def regret_at_budgets(
    found_cost: np.ndarray | Sequence[float],
    found_score: np.ndarray | Sequence[float],
    all_cost: np.ndarray | Sequence[float],
    all_score: np.ndarray | Sequence[float],
    budgets: np.ndarray | Sequence[float],
    found_floor: float = -np.inf,
) -> np.ndarray:
    """Per budget: the oracle's best score within the budget minus the search's best within it.

    Score is maximised, cost minimised, and "within" means cost <= budget. The oracle is usually
    the full benchmark table and the found set a subset of it; then regret >= 0, and 0 means the
    search found the best network that fits the budget. Rows with NaN cost or score are ignored.

    Two cases have no finite regret, read as the max of an empty set being -inf:
    - NaN: the oracle has nothing within the budget (the budget is infeasible; regret undefined).
    - +inf: the oracle has something within the budget but the search found nothing within it;
      with ``found_floor`` (e.g. 0 for an accuracy), the search's best is never below it, so
      finding nothing costs the oracle's best score minus the floor (nas.truth.regret's rule).
    ``json.dumps`` writes these as NaN and Infinity; summary writers should map them to null and
    a string such as "inf" for strict JSON readers.
    """
    found_cost_array = _vector("found_cost", found_cost)
    found_score_array = _vector("found_score", found_score)
    all_cost_array = _vector("all_cost", all_cost)
    all_score_array = _vector("all_score", all_score)
    budgets_array = _vector("budgets", budgets)
    if found_cost_array.shape != found_score_array.shape:
        raise ValueError(
            f"found_cost has {found_cost_array.size} values but found_score {found_score_array.size}; "
            "give one cost per score"
        )
    if all_cost_array.shape != all_score_array.shape:
        raise ValueError(
            f"all_cost has {all_cost_array.size} values but all_score {all_score_array.size}; give one cost per score"
        )
    oracle = _best_under_budgets(all_cost_array, all_score_array, budgets_array)
    found = np.maximum(_best_under_budgets(found_cost_array, found_score_array, budgets_array), found_floor)
    with np.errstate(invalid="ignore"):
        regret = oracle - found  # -inf - -inf = NaN; finite - -inf = +inf
    regret[oracle == -np.inf] = np.nan
    return regret
