"""The plain baseline: scikit-learn's histogram gradient boosting on one-hot genes only.

What a user without hwnas's features would try first: ``HistGradientBoostingRegressor``
(``max_iter`` rounds, scikit-learn's other defaults, ``random_state=seed``) on
``space.encoding.encode(archs)`` (one-hot genes; no value counts, no analytic costs, no class memory),
log target. It is the grid's ``onehot_boosting`` column (scripts/bench_predictors.py), which
shows what the features of the other families add. No intervals. With scikit-learn's default
20 rows per leaf, fewer than 40 training rows grow no split: every prediction is the mean.

The file holds the training rows (architecture strings and targets), not the trees:
scikit-learn offers no pickle-free format for them. Loading parses the strings with the space
and fits again; fitting is deterministic (the same rows, settings and seed give the same trees;
early stopping, scikit-learn's default above 10,000 rows, splits its validation rows with
``random_state`` too), so the loaded predictor predicts bit-identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from latency_predictors.predictors._common import check_space, check_targets
from latency_predictors.predictors._format import StoredPredictor
from nas import Architecture, SearchSpace

if TYPE_CHECKING:  # imported where it fits: scikit-learn costs every command's start-up
    from sklearn.ensemble import HistGradientBoostingRegressor


class OneHotBoostingPredictor(StoredPredictor):
    """``log y`` by scikit-learn's ``HistGradientBoostingRegressor`` on one-hot genes (see module)."""

    kind = "onehot_boosting"
    #: Version of the features: ``space.encoding.encode`` (one-hot genes).
    FEATURE_VERSION = 1

    def __init__(self, space: SearchSpace, device_fingerprint: str, max_iter: int = 300, seed: int = 0) -> None:
        if int(max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1, got {max_iter!r}")
        self.search_space = space
        self.space = space.name
        self.device_fingerprint = device_fingerprint
        self.max_iter = int(max_iter)
        self.seed = int(seed)
        self.model: HistGradientBoostingRegressor | None = None
        self.fitted_archs: tuple[str, ...] = ()
        self.fitted_targets = np.empty(0)

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> OneHotBoostingPredictor:
        from sklearn.ensemble import HistGradientBoostingRegressor

        y = check_targets(archs, y, positive=True)
        check_space(self.search_space, archs)
        model = HistGradientBoostingRegressor(max_iter=self.max_iter, random_state=self.seed)
        self.model = model.fit(self.search_space.encoding.encode(archs), np.log(y))
        self.fitted_archs, self.fitted_targets = tuple(a.string for a in archs), y.copy()
        return self

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("OneHotBoostingPredictor.predict before fit (or load)")
        if len(archs) == 0:
            return np.empty(0)
        check_space(self.search_space, archs)
        return np.exp(self.model.predict(self.search_space.encoding.encode(archs)))

    def save(self, path: Path) -> None:
        if self.model is None:
            raise RuntimeError("cannot save a OneHotBoostingPredictor that was never fitted")
        self._write(
            path,
            arrays={"archs": np.array(self.fitted_archs, dtype=str), "targets": self.fitted_targets},
            params={"max_iter": self.max_iter, "seed": self.seed},
        )

    @classmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> OneHotBoostingPredictor:
        """Read ``path`` and fit again on the training rows it holds (see module)."""
        header, arrays = cls._read(path, space, device_fingerprint)
        p = header["params"]
        predictor = cls(space, device_fingerprint, max_iter=p["max_iter"], seed=p["seed"])
        return predictor.fit([space.parse(str(s)) for s in arrays["archs"]], arrays["targets"])
