"""Checks and the conformal quantile shared by the predictor families."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nas import Architecture, PredictorMismatchError, SearchSpace

__all__ = ["check_space", "check_targets", "conformal_factor"]


def conformal_factor(scores: np.ndarray, quantile: float) -> float:
    """The ``ceil((n + 1) * quantile) / n`` empirical quantile of ``n`` nonconformity scores (the
    largest score when that rank exceeds ``n``): the split-conformal width factor."""
    n = len(scores)
    rank = math.ceil((n + 1) * quantile)
    return float(np.sort(scores)[min(rank, n) - 1])


def check_targets(archs: Sequence[Architecture], y: np.ndarray, *, positive: bool = False) -> np.ndarray:
    """``y`` as a float64 (n,) array matching ``archs``, finite (and > 0 when ``positive``)."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1 or len(y) != len(archs):
        raise ValueError(f"expected {len(archs)} target values, one per architecture; got shape {y.shape}")
    if len(archs) == 0:
        raise ValueError("cannot fit a predictor on no architectures")
    bad = ~np.isfinite(y) | ((y <= 0) if positive else False)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{int(bad.sum())} target value(s) are not {'finite and > 0' if positive else 'finite'}, "
            f"e.g. {y[first]!r} for {archs[first].string!r}; drop those rows before fitting"
        )
    return y


def check_space(space: SearchSpace, archs: Sequence[Architecture]) -> None:
    """Refuse architectures of another space (:class:`nas.PredictorMismatchError` naming both)."""
    foreign = [a for a in archs if a.space != space.name]
    if foreign:
        raise PredictorMismatchError(
            f"{len(foreign)} architecture(s) of space {foreign[0].space!r} given to a predictor "
            f"of space {space.name!r}, e.g. {foreign[0].string!r}"
        )
