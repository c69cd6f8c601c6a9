"""Rank ensembles: percentiles put refused architectures last, the rules obey their laws, and the
learned combination recovers a known relation from a few labels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from nas import Candidate, Direction, Objective, ObjectiveError
from nas.proxies import (
    EnsembleObjective,
    LearnedCombination,
    log_percentile_sum,
    mean_percentile,
    nonlinear_rank,
    percentiles,
    rank_vote,
)
from tests.nas.toy import Capacity, NanFor, ToySpace


def test_percentiles_rank_each_column_with_nan_last_and_ties_shared() -> None:
    scores = np.array([[3.0, np.nan], [1.0, 2.0], [1.0, 5.0], [np.nan, np.nan]])
    expected = np.array([[4, 1.5], [2.5, 3], [2.5, 4], [1, 1.5]]) / 4
    np.testing.assert_allclose(percentiles(scores), expected)


def test_percentiles_refuse_a_flat_vector() -> None:
    with pytest.raises(ValueError, match="n_archs, n_proxies"):
        percentiles(np.arange(3.0))


def test_one_proxy_ensembles_keep_its_order() -> None:
    scores = np.random.default_rng(0).normal(size=(50, 1))
    for rule in (rank_vote, nonlinear_rank):
        assert spearmanr(rule(scores), scores[:, 0])[0] == pytest.approx(1.0)


def test_an_architecture_better_on_every_proxy_is_ranked_higher() -> None:
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(40, 3))
    scores[0] = scores.max(axis=0) + 1
    for rule in (rank_vote, nonlinear_rank):
        combined = rule(scores)
        dominated = np.all(scores < scores[0], axis=1)
        assert np.all(combined[dominated] < combined[0])


def test_nonlinear_rank_prefers_balanced_to_lopsided() -> None:
    # Equal rank sums; AZ-NAS's log punishes the near-bottom rank of the lopsided architecture.
    scores = np.array([[2.0, 6.0], [4.0, 4.0], [1.0, 1.0], [3.0, 2.0], [5.0, 3.0], [6.0, 5.0]])
    ranks = percentiles(scores)
    assert ranks[0].sum() == pytest.approx(ranks[1].sum())
    assert nonlinear_rank(scores)[1] > nonlinear_rank(scores)[0]
    assert rank_vote(scores)[1] == pytest.approx(rank_vote(scores)[0])


def test_learned_combination_finds_the_informative_proxy_from_few_labels() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(size=300)
    scores = np.column_stack([truth + 0.1 * rng.normal(size=300), rng.normal(size=300), rng.normal(size=300)])
    labelled = rng.choice(300, size=30, replace=False)
    model = LearnedCombination.fit(scores, labelled, truth[labelled])
    assert spearmanr(model.predict(scores), truth)[0] > 0.9
    assert spearmanr(rank_vote(scores), truth)[0] < 0.8  # the vote cannot tell which proxy to trust


class Widths(Objective):
    """A second toy proxy: the second width, larger better."""

    direction = Direction.MAXIMIZE

    def __call__(self, candidate: Candidate) -> float:
        return float(candidate.arch["width_1"])


@pytest.mark.parametrize(
    ("rule", "population_rule"), [(log_percentile_sum, nonlinear_rank), (mean_percentile, rank_vote)]
)
def test_ensemble_objective_ranks_a_candidate_as_the_rule_ranks_it_among_the_reference(rule, population_rule) -> None:
    space = ToySpace()
    members = {"capacity": Capacity("capacity"), "widths": Widths("widths")}
    ensemble = EnsembleObjective(members, rule, reference_size=20, seed=3)
    reference = ensemble.reference(space)
    assert reference.shape == (20, 2)
    for arch in (space.parse("32-32-3-3"), space.parse("4-4-1-1"), space.parse("8-16-3-1")):
        candidate = Candidate(arch, space)
        row = np.array([[m(candidate) for m in members.values()]])
        expected = population_rule(np.vstack([reference, row]))[-1]
        assert ensemble(candidate) == pytest.approx(expected)
    assert ensemble(Candidate(space.parse("32-32-3-3"), space)) > ensemble(Candidate(space.parse("4-4-1-1"), space))


def test_ensemble_objective_fails_a_candidate_a_member_refuses() -> None:
    space = ToySpace()
    ensemble = EnsembleObjective({"broken": NanFor("broken", width=4), "widths": Widths("widths")}, reference_size=10)
    with pytest.raises(ObjectiveError, match="broken"):
        ensemble.evaluate(Candidate(space.parse("4-8-1-3"), space))
    assert np.isfinite(ensemble.evaluate(Candidate(space.parse("8-8-1-3"), space)))
