"""Proxies combined: rank vote, AZ-NAS's non-linear rank aggregation, and a combination learned
from a few labelled architectures. Each works on a population's scores, ``(n_archs, n_proxies)``,
where NaN marks an architecture a proxy could not score (ranked below every scored one)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


def percentiles(scores: np.ndarray) -> np.ndarray:
    """Each column's ranks divided by the population size, in (0, 1]: ties share their mean rank,
    NaN ranks below everything (tied among themselves)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or len(scores) == 0:
        raise ValueError(f"scores must be (n_archs, n_proxies) with n_archs >= 1, got shape {scores.shape}")
    filled = np.where(np.isnan(scores), -np.inf, scores)
    return rankdata(filled, axis=0) / len(scores)


def rank_vote(scores: np.ndarray) -> np.ndarray:
    """The mean of the proxies' percentiles (a Borda count): each proxy one equal vote."""
    return percentiles(scores).mean(axis=1)


def nonlinear_rank(scores: np.ndarray) -> np.ndarray:
    """AZ-NAS's non-linear rank aggregation (Lee & Ham, CVPR 2024): the sum of ``log(rank / N)``.

    A log rewards being good on every proxy over being excellent on some: one proxy ranking an
    architecture near the bottom costs more than another ranking it near the top gains.
    """
    return np.log(percentiles(scores)).sum(axis=1)


@dataclass(frozen=True)
class LearnedCombination:
    """A ridge regression of accuracy on the proxies' percentiles (their log, as AZ-NAS weighs
    them, beside the plain ones), fitted on a few labelled architectures of the population.

    Percentiles are of the whole population (labelled or not), so the combination needs no
    accuracy beyond the ``k`` labels, and one proxy's scale cannot dominate. The ridge strength
    is chosen by leave-one-out on the labels alone (scikit-learn's ``RidgeCV``).
    """

    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, scores: np.ndarray, labelled: np.ndarray, accuracy: np.ndarray) -> LearnedCombination:
        """``labelled``: row indices of the population with a known ``accuracy`` (same order)."""
        from sklearn.linear_model import RidgeCV

        features = _features(scores)[labelled]
        model = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(features, accuracy)
        return cls(np.asarray(model.coef_, dtype=np.float64), float(model.intercept_))

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return _features(scores) @ self.coef + self.intercept


def _features(scores: np.ndarray) -> np.ndarray:
    ranks = percentiles(scores)
    return np.hstack([ranks, np.log(ranks)])
