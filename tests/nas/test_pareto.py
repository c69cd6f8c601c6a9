"""Pareto laws checked against brute force on small integer matrices (ties and duplicates matter)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas import Direction
from nas.pareto import (
    default_reference,
    hypervolume,
    non_dominated_mask,
    regret_at_budgets,
    to_minimization,
)

DIRECTIONS = st.sampled_from(["minimize", "maximize", Direction.MINIMIZE, Direction.MAXIMIZE])


@st.composite
def problems(draw, max_points: int = 25, objectives: tuple[int, int] = (1, 4), nan: bool = True):
    """A small integer matrix (few distinct values, so ties are common), its directions."""
    m = draw(st.integers(*objectives))
    n = draw(st.integers(0, max_points))
    cells = draw(st.lists(st.integers(0, 4), min_size=n * m, max_size=n * m))
    values = np.array(cells, dtype=np.float64).reshape(n, m)
    if nan and n and draw(st.booleans()):
        rows = draw(st.lists(st.integers(0, n - 1), max_size=3))
        values[rows, draw(st.integers(0, m - 1))] = np.nan
    directions = draw(st.lists(DIRECTIONS, min_size=m, max_size=m))
    return values, directions


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a dominates b, both minimised; NaN rows neither dominate nor are dominated."""
    if np.isnan(a).any() or np.isnan(b).any():
        return False
    return bool(np.all(a <= b) and np.any(a < b))


def brute_force_mask(values: np.ndarray, directions: list) -> np.ndarray:
    points = to_minimization(values, directions)
    return np.array(
        [not np.isnan(p).any() and not any(dominates(q, p) for q in points) for p in points],
        dtype=bool,
    )


def brute_force_hypervolume(values: np.ndarray, directions: list, reference: np.ndarray) -> float:
    """Inclusion-exclusion over subsets: the boxes [p, ref] intersect in [max of p, ref]."""
    points = to_minimization(values, directions)
    ref = to_minimization(reference[None, :], directions)[0]
    points = points[np.all(points < ref, axis=1)]
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(range(len(points)), size):
            corner = points[list(subset)].max(axis=0)
            total += (-1) ** (size + 1) * float(np.prod(ref - corner))
    return total


def reference_for(values: np.ndarray, directions: list) -> np.ndarray:
    """A fixed reference (worse than every drawn value, 0..4) in the objectives' directions."""
    return np.array([-1.0 if Direction(d) is Direction.MAXIMIZE else 5.0 for d in directions])


@settings(max_examples=300, deadline=None)
@given(problems())
def test_mask_equals_brute_force(problem):
    values, directions = problem
    np.testing.assert_array_equal(non_dominated_mask(values, directions), brute_force_mask(values, directions))


@settings(max_examples=200, deadline=None)
@given(problems())
def test_front_is_undominated_and_everything_else_is_dominated_by_it(problem):
    values, directions = problem
    mask = non_dominated_mask(values, directions)
    points = to_minimization(values, directions)
    front = points[mask]
    for p in front:
        assert not any(dominates(q, p) for q in points)
    for p in points[~mask]:
        if np.isnan(p).any():
            continue
        assert any(dominates(q, p) for q in front)


def test_equal_points_are_both_kept_and_nan_rows_never():
    values = np.array([[1.0, 2.0], [1.0, 2.0], [0.0, np.nan], [2.0, 3.0]])
    assert non_dominated_mask(values, ["minimize", "minimize"]).tolist() == [True, True, False, False]


def test_mixed_directions():
    # (accuracy up, latency down): 90@5 and 80@2 trade off; 70@3 loses to 80@2.
    values = np.array([[90.0, 5.0], [80.0, 2.0], [70.0, 3.0]])
    assert non_dominated_mask(values, ["maximize", "minimize"]).tolist() == [True, True, False]


def test_mask_is_fast_on_a_benchmark_sized_table():
    rng = np.random.default_rng(0)
    values = rng.random((15_625, 3))
    mask = non_dominated_mask(values, ["maximize", "minimize", "minimize"])
    assert mask.any()


def test_bad_directions_are_named():
    with pytest.raises(ValueError, match="'fastest'"):
        non_dominated_mask(np.zeros((2, 2)), ["minimize", "fastest"])
    with pytest.raises(ValueError, match="1 directions for 2"):
        non_dominated_mask(np.zeros((2, 2)), ["minimize"])


@settings(max_examples=150, deadline=None)
@given(problems(max_points=8, objectives=(2, 4)))
def test_hypervolume_equals_inclusion_exclusion(problem):
    values, directions = problem
    reference = reference_for(values, directions)
    assert hypervolume(values, directions, reference) == pytest.approx(
        brute_force_hypervolume(values, directions, reference), abs=1e-9
    )


@settings(max_examples=100, deadline=None)
@given(problems(max_points=12, objectives=(1, 4), nan=False), st.randoms(use_true_random=False))
def test_hypervolume_laws(problem, random):
    values, directions = problem
    reference = reference_for(values, directions)
    volume = hypervolume(values, directions, reference)
    assert volume >= 0.0

    permutation = list(range(len(values)))
    random.shuffle(permutation)
    assert hypervolume(values[permutation], directions, reference) == pytest.approx(volume)

    if len(values):
        # A copy of a point made worse in every objective is dominated and adds nothing.
        worse = to_minimization(values[:1], directions) + 1.0
        worse = to_minimization(worse, directions)
        assert hypervolume(np.vstack([values, worse]), directions, reference) == pytest.approx(volume)

    extra = np.array([[random.randint(0, 4) for _ in directions]], dtype=np.float64)
    assert hypervolume(np.vstack([values, extra]), directions, reference) >= volume - 1e-9


def test_hypervolume_hand_example():
    # Minimise both, reference (4, 4): boxes 3x1 from (1,3) and 1x3 from (3,1) overlap in 1x1.
    values = np.array([[1.0, 3.0], [3.0, 1.0]])
    assert hypervolume(values, ["minimize", "minimize"], (4.0, 4.0)) == pytest.approx(5.0)
    # The same in (maximize, minimize) units: accuracy = -first column, reference accuracy -4.
    flipped = np.array([[-1.0, 3.0], [-3.0, 1.0]])
    assert hypervolume(flipped, ["maximize", "minimize"], (-4.0, 4.0)) == pytest.approx(5.0)


def test_hypervolume_ignores_points_not_strictly_better_than_reference():
    values = np.array([[4.0, 1.0], [1.0, 1.0], [np.nan, 0.0]])
    assert hypervolume(values, ["minimize", "minimize"], (4.0, 4.0)) == pytest.approx(9.0)
    assert hypervolume(np.zeros((0, 3)), ["minimize"] * 3, (1.0, 1.0, 1.0)) == 0.0


def test_hypervolume_reference_shape_is_checked():
    with pytest.raises(ValueError, match="one value per objective"):
        hypervolume(np.zeros((2, 2)), ["minimize", "minimize"], (1.0,))


def test_hypervolume_of_a_3d_front_is_fast_and_matches_a_monte_carlo_estimate():
    rng = np.random.default_rng(1)
    # Points on a sphere's octant are mutually non-dominated: a 200-point front.
    directions = rng.random((200, 3)) + 0.05
    front = 1.0 - directions / np.linalg.norm(directions, axis=1, keepdims=True)
    exact = hypervolume(front, ["minimize"] * 3, (1.0, 1.0, 1.0))
    samples = rng.random((50_000, 3))
    covered = np.zeros(len(samples), dtype=bool)
    for p in front:
        covered |= np.all(samples >= p, axis=1)
    assert exact == pytest.approx(covered.mean(), abs=0.01)


def test_default_reference_pushes_past_the_worst_value():
    values = np.array([[60.0, 2.0], [90.0, 12.0], [np.nan, 100.0]])
    reference = default_reference(values, ["maximize", "minimize"], margin=0.1)
    np.testing.assert_allclose(reference, [57.0, 13.0])
    assert hypervolume(values, ["maximize", "minimize"], reference) > 0


def test_default_reference_with_zero_range_still_counts_the_points():
    values = np.array([[5.0, 0.0]])
    reference = default_reference(values, ["minimize", "maximize"], margin=0.1)
    np.testing.assert_allclose(reference, [5.5, -0.1])
    assert hypervolume(values, ["minimize", "maximize"], reference) == pytest.approx(0.05)


def test_regret_hand_example():
    all_cost = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    all_score = np.array([50.0, 70.0, 60.0, 90.0, 99.0])
    found_cost = np.array([2.0, 4.0])
    found_score = np.array([70.0, 80.0])  # a measured 80 at cost 4 where the table says 90
    regret = regret_at_budgets(found_cost, found_score, all_cost, all_score, [0.5, 1.0, 2.5, 3.0, 10.0])
    # 0.5: nothing fits anywhere -> NaN; 1.0: the oracle has 50, the search nothing -> inf.
    assert math.isnan(regret[0])
    assert regret[1] == math.inf
    np.testing.assert_allclose(regret[2:], [0.0, 0.0, 10.0])
    # With a floor of 0 (issue 14: finding nothing within a budget costs the whole best accuracy).
    floored = regret_at_budgets(found_cost, found_score, all_cost, all_score, [0.5, 1.0, 10.0], found_floor=0.0)
    assert math.isnan(floored[0])
    np.testing.assert_allclose(floored[1:], [50.0, 10.0])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=30),
    st.data(),
)
def test_regret_of_a_subset_is_non_negative(table, data):
    all_cost, all_score = (np.array(column, dtype=np.float64) for column in zip(*table))
    picked = data.draw(st.lists(st.integers(0, len(table) - 1), max_size=len(table)))
    budgets = np.arange(-1.0, 11.0)
    regret = regret_at_budgets(all_cost[picked], all_score[picked], all_cost, all_score, budgets)
    assert np.all(np.isnan(regret) == (budgets < all_cost.min()))
    assert np.all(regret[~np.isnan(regret)] >= 0)
    full = regret_at_budgets(all_cost, all_score, all_cost, all_score, budgets)
    assert np.all(full[~np.isnan(full)] == 0)
