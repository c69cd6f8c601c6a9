"""Proxies combined: rank vote, AZ-NAS's non-linear rank aggregation, and a combination learned
from a few labelled architectures. Each works on a population's scores, ``(n_archs, n_proxies)``,
where NaN marks an architecture a proxy could not score (ranked below every scored one)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from nas._objective import Candidate, Cost, Direction, Objective, ObjectiveError
from nas._space import SearchSpace
from nas.proxies._objective import proxy_name


def percentiles(scores: np.ndarray) -> np.ndarray:
    """Each column's ranks divided by the population size, in (0, 1]: ties share their mean rank
    (as AZ-NAS's and VKDNW's code rank), NaN or -inf (unscored) ranks below everything, tied."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"scores must be (n_archs, n_proxies), both >= 1, got shape {scores.shape}")
    if np.any(scores == np.inf):
        raise ValueError("a score is +inf: an unscored architecture must be NaN (or -inf)")
    filled = np.where(np.isnan(scores), -np.inf, scores)
    return rankdata(filled, axis=0) / len(scores)


def percentiles_among(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Each of ``scores``' rows ``(n, n_proxies)`` placed among a fixed population's scores
    ``reference`` ``(r, n_proxies)``, in (0, 1): the rank it would take joining the population
    (the mean rank of it and the scores it ties with, as rankdata gives) divided by ``r + 1``.
    NaN or -inf ranks below every scored value, in both."""
    reference = np.sort(np.where(np.isnan(reference), -np.inf, np.asarray(reference, dtype=np.float64)), axis=0)
    scores = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))
    ranks = np.empty(scores.shape)
    for j in range(scores.shape[1]):
        below = np.searchsorted(reference[:, j], scores[:, j], side="left")
        tied = np.searchsorted(reference[:, j], scores[:, j], side="right") - below
        ranks[:, j] = (below + (tied + 2) / 2) / (len(reference) + 1)
    return ranks


def rank_vote(scores: np.ndarray) -> np.ndarray:
    """The mean of the proxies' percentiles (a Borda count): each proxy one equal vote."""
    return mean_percentile(percentiles(scores))


def nonlinear_rank(scores: np.ndarray) -> np.ndarray:
    """AZ-NAS's non-linear rank aggregation (Lee & Ham, CVPR 2024): the sum of ``log(rank / N)``.

    A log rewards being good on every proxy over being excellent on some: one proxy ranking an
    architecture near the bottom costs more than another ranking it near the top gains. AZ-NAS
    aggregates expressivity, progressivity, trainability and flops; VKDNW's aggregate
    (``vkdnw_comb_rank`` in its code) is the same sum over vkdnw_single, expressivity,
    trainability, flops and jacob_cov.
    """
    return log_percentile_sum(percentiles(scores))


def mean_percentile(ranks: np.ndarray) -> np.ndarray:
    """:func:`rank_vote`'s rule on percentiles ``(n, p)``."""
    return ranks.mean(axis=1)


def log_percentile_sum(ranks: np.ndarray) -> np.ndarray:
    """:func:`nonlinear_rank`'s rule on percentiles ``(n, p)``."""
    return np.log(ranks).sum(axis=1)


#: A rank rule: percentiles ``(n_archs, n_proxies)`` in (0, 1] -> one score per architecture.
RankRule = Callable[[np.ndarray], np.ndarray]


class EnsembleObjective(Objective):
    """Several proxies combined by a rank rule into one objective a search can maximise.

    A search sees one architecture at a time, so ranks cannot be taken within the candidates
    (they would change as the search goes, and Optuna's samplers assume fixed values). Each
    member's score is instead placed among its scores of a fixed reference sample of the space
    (``reference_size`` architectures drawn by ``seed``, scored once, at the first call), and
    ``rule`` combines those percentiles: :func:`log_percentile_sum` (AZ-NAS's aggregation) or
    :func:`mean_percentile` (rank vote). Reference architectures a member refuses rank below
    every scored one; a candidate a member refuses fails with that member's error.
    """

    direction = Direction.MAXIMIZE
    cost = Cost.PROXY

    def __init__(
        self,
        members: Mapping[str, Objective],
        rule: RankRule = log_percentile_sum,
        name: str = "ensemble",
        *,
        reference_size: int = 100,
        seed: int = 0,
    ) -> None:
        super().__init__(name)
        if not members or reference_size < 1:
            raise ValueError(f"ensemble {name!r} needs at least one member and reference_size >= 1")
        self.members = dict(members)
        self.rule = rule
        self.reference_size = reference_size
        self.seed = seed
        self._reference: np.ndarray | None = None

    def describe(self) -> str:
        return f"{proxy_name(self.rule)} of {', '.join(self.members)} ranked against {self.reference_size} reference architectures; higher is better"

    def source(self) -> str:
        sources = "; ".join(f"{n}: {m.source()}" for n, m in self.members.items())
        return f"ensemble {proxy_name(self.rule)} over [{sources}], reference {self.reference_size} seed {self.seed}"

    def reference(self, space: SearchSpace) -> np.ndarray:
        """The members' scores of the reference sample, ``(reference_size, n_members)``."""
        if self._reference is None:
            rng = np.random.default_rng(self.seed)
            archs = [space.sample(rng) for _ in range(self.reference_size)]
            self._reference = np.array(
                [[_or_nan(m, Candidate(a, space)) for m in self.members.values()] for a in archs]
            )
        return self._reference

    def __call__(self, candidate: Candidate) -> float:
        values = np.array([m.evaluate(candidate) for m in self.members.values()])
        return float(self.rule(percentiles_among(self.reference(candidate.space), values[None, :]))[0])


def _or_nan(objective: Objective, candidate: Candidate) -> float:
    try:
        return objective.evaluate(candidate)
    except ObjectiveError:
        return math.nan


@dataclass(frozen=True)
class LearnedCombination:
    """A ridge regression of the accuracy *ranks* of a few labelled architectures on the proxies'
    percentiles; its predictions rank architectures (a score on the scale of ``rank / k``, not an
    accuracy).

    Percentiles are of the whole population (labelled or not), so one proxy's scale cannot
    dominate. The target is the labelled accuracies' ranks divided by k, because raw accuracies
    have outliers (NB201's disconnected cells sit at chance, 10% on CIFAR-10) that lever a least-
    squares fit away from the ranking it is used for. On 1,000 random NB201 cells with synflow,
    naswot, flops and meco (``scripts/bench_proxies.py``, five label draws per k; Spearman on the
    unlabelled cells at k = 10 / 50 / 100 / 500): CIFAR-10 0.903 / 0.922 / 0.924 / 0.925 and
    CIFAR-100 0.891 / 0.903 / 0.911 / 0.912, against 0.772 / 0.844 / 0.730 / 0.683 and 0.843 /
    0.890 / 0.888 / 0.893 for the first version (percentiles and their logs fitted to raw accuracy).
    The ridge strength is chosen by leave-one-out on the labels alone (``RidgeCV``).
    """

    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, scores: np.ndarray, labelled: np.ndarray, accuracy: np.ndarray) -> LearnedCombination:
        """``labelled``: row indices of the population with a known ``accuracy`` (same order)."""
        return cls.fit_percentiles(percentiles(scores)[labelled], accuracy)

    @classmethod
    def fit_percentiles(cls, ranks: np.ndarray, accuracy: np.ndarray) -> LearnedCombination:
        """Fitted on the labelled architectures' percentiles ``(k, n_proxies)`` directly (taken
        against whatever population the caller chose)."""
        from scipy.stats import rankdata
        from sklearn.linear_model import RidgeCV

        accuracy = np.asarray(accuracy, dtype=np.float64)
        model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(ranks, rankdata(accuracy) / len(accuracy))
        return cls(np.asarray(model.coef_, dtype=np.float64), float(model.intercept_))

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return self.predict_percentiles(percentiles(scores))

    def predict_percentiles(self, ranks: np.ndarray) -> np.ndarray:
        return ranks @ self.coef + self.intercept
