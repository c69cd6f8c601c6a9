"""How good a predictor is on held-out measurements: the figures hwnas-fit writes to metrics.json.

Pure numpy/scipy; rank agreement (Spearman, Kendall) for search, relative error bands for
budgets (within +/-5% and +/-10%, nn-Meter's headline figure), and interval coverage when the
predictor gives intervals.
"""

from __future__ import annotations

import numpy as np


def prediction_metrics(
    measured: np.ndarray,
    predicted: np.ndarray,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """Agreement of ``predicted`` with ``measured`` (same shape, finite, measured > 0 for the
    relative figures); ``coverage`` is the fraction of measurements inside [lower, upper]."""
    measured = np.asarray(measured, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if measured.shape != predicted.shape or measured.ndim != 1:
        raise ValueError(f"measured {measured.shape} and predicted {predicted.shape} must be equal 1-d shapes")
    if len(measured) == 0:
        raise ValueError("no held-out rows to score: lower n_train or give a larger table")
    from scipy.stats import kendalltau, spearmanr  # here: scipy.stats costs every command 0.5 s to import

    relative = np.abs(predicted - measured) / np.abs(measured)
    rank_defined = len(measured) > 1 and np.ptp(measured) > 0 and np.ptp(predicted) > 0
    metrics: dict[str, float | int | None] = {
        "n_test": int(len(measured)),
        "spearman": float(spearmanr(measured, predicted).statistic) if rank_defined else None,
        "kendall": float(kendalltau(measured, predicted).statistic) if rank_defined else None,
        "mape": float(np.mean(relative)),
        # The mean is at the mercy of near-zero measurements (NB201's disconnected cells).
        "median_ape": float(np.median(relative)),
        "rmse": float(np.sqrt(np.mean((predicted - measured) ** 2))),
        "within_5pct": float(np.mean(relative <= 0.05)),
        "within_10pct": float(np.mean(relative <= 0.10)),
        "coverage": None,
    }
    if lower is not None and upper is not None:
        inside = (np.asarray(lower) <= measured) & (measured <= np.asarray(upper))
        metrics["coverage"] = float(np.mean(inside))
    return metrics
