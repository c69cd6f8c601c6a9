"""Ensembles of proxies that combine ranks, not values: AZ-NAS's non-linear rank aggregation."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import rankdata


def nonlinear_rank_aggregation(scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """AZ-NAS's non-linear rank aggregation (Lee & Ham, CVPR 2024): for each architecture,
    ``sum over proxies of ln(rank / N)``, ranks ascending (1 = the lowest score, N = the highest)
    among the N architectures; larger is better.

    The logarithm makes one bad rank cost more than one good rank gains, so a network must do
    well on every proxy to lead. AZ-NAS aggregates expressivity, progressivity, trainability and
    FLOPs (``flops``); VKDNW's aggregate (Tybl & Neumann, CVPR 2025; ``vkdnw_comb_rank`` in their
    code) is the same sum over ``vkdnw_single``, expressivity, trainability, FLOPs and jacob_cov
    (their dense ranks of ``(tensors, entropy)`` equal these ranks when no two entropies tie).

    Ties get their average rank (``scipy.stats.rankdata``'s default, as both papers' code): equal
    scores are equally good. A NaN or ``-inf`` score (an architecture the proxy could not score)
    ranks below every scored architecture, tied with the other unscored ones, as the papers'
    ``-inf`` does. Scores are arrays of one length, architecture i at index i of each.
    """
    if not scores:
        raise ValueError("nonlinear_rank_aggregation needs at least one proxy's scores")
    arrays = {name: np.asarray(values, dtype=np.float64) for name, values in scores.items()}
    lengths = {name: a.shape for name, a in arrays.items()}
    if (
        len(set(lengths.values())) != 1
        or next(iter(lengths.values())) in ((), (0,))
        or any(a.ndim != 1 for a in arrays.values())
    ):
        raise ValueError(f"give every proxy a 1-d array of the same non-zero length; got shapes {lengths}")
    total = np.zeros(next(iter(arrays.values())).shape[0])
    for name, values in arrays.items():
        if np.any(values == np.inf):
            raise ValueError(f"proxy {name!r} has a +inf score: an unscored network must be NaN or -inf")
        unscored = np.isnan(values) | (values == -np.inf)
        total += np.log(rankdata(np.where(unscored, -np.inf, values)) / len(values))
    return total
