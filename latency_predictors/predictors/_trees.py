"""LightGBM trees on a space's features: what ``gbdt`` and ``boosted_layer_sum`` share.

:class:`SpaceTrees` holds the settings only (boosters are returned, never kept) and does the four
things both predictors need: turn architectures into model inputs (the space's features, the
analytic costs, the isomorphism-class memory), split rows into calibration folds without leaking a
held row's target through the class memory, train a booster (optionally from a base prediction,
LightGBM's ``init_score``) and predict with it. Why these features and settings, and what they
measured, is in :mod:`._gbdt`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from latency_predictors.predictors._analytic import AnalyticCosts
from latency_predictors.predictors._common import check_space
from latency_predictors.predictors._features import feature_matrix
from latency_predictors.predictors._lightgbm_text import check_model_text
from nas import Architecture, IsomorphicSpace, SearchSpace
from nas.predictor_file import PredictorFileError

#: Batches of at least this many rows are predicted on every core.
PARALLEL_ROWS = 4096


def model_array(booster: Any) -> np.ndarray:
    """A booster as LightGBM's own text format (every threshold and leaf value exactly), held as
    a uint8 array of its UTF-8 bytes for a pickle-free predictor file."""
    return np.frombuffer(booster.model_to_string().encode("utf-8"), dtype=np.uint8).copy()


def model_from_array(array: np.ndarray) -> Any:
    """The booster :func:`model_array` stored, checked before LightGBM parses it (an edited model
    would otherwise abort the process: see :mod:`._lightgbm_text`); :class:`nas.PredictorFileError`
    names what is wrong."""
    import lightgbm

    try:
        text = np.asarray(array, dtype=np.uint8).tobytes().decode("utf-8")
        check_model_text(text)
        return lightgbm.Booster(model_str=text)
    except (UnicodeDecodeError, ValueError, lightgbm.basic.LightGBMError) as error:
        raise PredictorFileError(f"{error}; refit the predictor or restore the file") from None


@dataclass(frozen=True)
class ClassMemory:
    """Per isomorphism class, the sum and count of training targets (sorted by class id)."""

    classes: np.ndarray
    sums: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, classes: np.ndarray, t: np.ndarray) -> ClassMemory:
        ids, inverse = np.unique(classes, return_inverse=True)
        return cls(ids, np.bincount(inverse, weights=t), np.bincount(inverse).astype(np.float64))

    def lookup(self, classes: np.ndarray, leave_one_out: np.ndarray | None = None) -> np.ndarray:
        """Mean target of each row's class; ``leave_one_out`` (the rows' own targets, for rows
        the memory was built from) removes each row's own value. NaN where nothing remains."""
        sums, counts = np.zeros(len(classes)), np.zeros(len(classes))
        if len(self.classes):
            slot = np.clip(np.searchsorted(self.classes, classes), 0, len(self.classes) - 1)
            found = self.classes[slot] == classes
            sums, counts = np.where(found, self.sums[slot], 0.0), np.where(found, self.counts[slot], 0.0)
        if leave_one_out is not None:
            sums, counts = sums - leave_one_out, counts - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"memory_classes": self.classes, "memory_sums": self.sums, "memory_counts": self.counts}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ClassMemory:
        return cls(arrays["memory_classes"], arrays["memory_sums"], arrays["memory_counts"])


@dataclass(frozen=True)
class SpaceTrees:
    """LightGBM regression trees on ``space``'s features (see module); settings only."""

    space: SearchSpace
    n_estimators: int = 300
    learning_rate: float = 0.08
    num_leaves: int = 31
    max_depth: int = 5
    min_child_samples: int = 5
    seed: int = 0
    folds: int = 5
    #: The analytic costs the space gives (``flops``, ``params``, ``memory_traffic``), in order.
    analytic_costs: tuple[str, ...] = field(init=False)
    costs: AnalyticCosts = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        requirements = {
            "n_estimators": (int(self.n_estimators) >= 1, ">= 1"),
            "learning_rate": (self.learning_rate > 0, "> 0"),
            "num_leaves": (int(self.num_leaves) >= 2, ">= 2"),
            "max_depth": (int(self.max_depth) >= 1 or int(self.max_depth) == -1, ">= 1, or -1 for no limit"),
            "min_child_samples": (int(self.min_child_samples) >= 1, ">= 1"),
            "folds": (int(self.folds) >= 2, ">= 2"),
        }
        for name, (ok, requirement) in requirements.items():
            if not ok:
                raise ValueError(f"{name} must be {requirement}, got {getattr(self, name)!r}")
        for name in ("n_estimators", "num_leaves", "max_depth", "min_child_samples", "seed", "folds"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "learning_rate", float(self.learning_rate))
        object.__setattr__(self, "costs", AnalyticCosts(self.space))
        object.__setattr__(self, "analytic_costs", self.costs.names)

    def features_and_classes(
        self, archs: Sequence[Architecture], memory: ClassMemory | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Model inputs (the space's features, the analytic costs, then ``memory``'s column when
        given and the space has classes) and the isomorphism classes, from one pass."""
        check_space(self.space, archs)
        indices = self.space.encoding.indices(archs)
        classes = self.space.isomorphism_classes_of(indices) if isinstance(self.space, IsomorphicSpace) else None
        columns = [feature_matrix(self.space, indices), self.costs.matrix(archs, indices, self.analytic_costs)]
        if memory is not None and classes is not None:
            columns.append(memory.lookup(classes)[:, None])
        # one float64 array written once: on batches of 1e5 rows each extra copy costs ~5%
        return np.hstack(columns, dtype=np.float64), classes

    def design(self, x: np.ndarray, classes: np.ndarray | None, t: np.ndarray) -> tuple[np.ndarray, ClassMemory | None]:
        """Training rows ``x`` with the class memory of their own targets ``t`` (leave-one-out),
        and that memory."""
        memory = ClassMemory.of(classes, t) if classes is not None else None
        return _with_memory(x, classes, memory, leave_one_out=t), memory

    def fold_designs(
        self, x: np.ndarray, classes: np.ndarray | None, t: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per fold (rows assigned by ``default_rng([seed, 7919])``): the held and kept row masks
        and their model inputs, with the kept rows' own class memory, so the held rows' targets
        stay unseen."""
        folds = np.random.default_rng([self.seed, 7919]).permutation(len(x)) % self.folds
        for fold in range(self.folds):
            held, kept = folds == fold, folds != fold
            kept_x, memory = self.design(x[kept], None if classes is None else classes[kept], t[kept])
            held_x = _with_memory(x[held], None if classes is None else classes[held], memory)
            yield held, kept, kept_x, held_x

    def train(self, x: np.ndarray, t: np.ndarray, init: np.ndarray | None = None, rounds: int | None = None) -> Any:
        """A booster of ``rounds`` (default ``n_estimators``) trees fitted to ``t``, boosting from
        ``init`` (a base prediction per row) when given; one thread, deterministic."""
        import lightgbm

        params = {
            "objective": "regression",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_data_in_leaf": self.min_child_samples,
            "feature_pre_filter": False,
            "deterministic": True,
            "force_col_wise": True,
            "num_threads": 1,
            "seed": self.seed,
            "verbose": -1,
        }
        return lightgbm.train(
            params,
            lightgbm.Dataset(x, t, init_score=init, params=params),
            num_boost_round=self.n_estimators if rounds is None else rounds,
        )

    @staticmethod
    def predict(booster: Any, x: np.ndarray, rounds: int | None = None) -> np.ndarray:
        """The booster's output (without any ``init_score``) for rows ``x``, using its first
        ``rounds`` trees (default all)."""
        # Rows are independent, so threads change speed, not values; below a few thousand
        # rows starting the thread pool costs more than it saves.
        threads = 1 if len(x) < PARALLEL_ROWS else (os.cpu_count() or 1)
        return np.asarray(booster.predict(x, num_iteration=rounds, num_threads=threads), dtype=np.float64)


def _with_memory(
    x: np.ndarray, classes: np.ndarray | None, memory: ClassMemory | None, leave_one_out: np.ndarray | None = None
) -> np.ndarray:
    if classes is None or memory is None:
        return x
    return np.hstack([x, memory.lookup(classes, leave_one_out)[:, None]])
