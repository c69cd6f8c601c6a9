"""Gradient-boosted regression trees (LightGBM) on the space's features, with conformal intervals.

Features (:data:`GradientBoostingPredictor.FEATURE_VERSION` 3): ``space.features(archs)`` (one-hot
genes, then value counts), plus the space's analytic costs (:mod:`._analytic`: FLOPs where the
space has ``flops``, and (3) parameters and memory traffic where it adds up over genes, as NB201
and FBNet do). Trees split on thresholds, so the scale of a column does not matter; these sums
over a network's layers are something a tree ensemble otherwise has to piece together from many
splits. Parameters and traffic took fbnet gold_6226 from Spearman 0.942 / 78.0% within +/-10% to
0.964 / 87.9% and silver_4210r from 0.936 to 0.957 (900 rows, seed 0); nb201's columns did not
change. The target is ``log y``
(``log_target=True``, the default; latencies and energies are > 0 and their errors multiplicative).

When the space has isomorphism classes (``space.isomorphism_classes``; NB201's 6,466), one more
column is the *class memory*: the mean log target of the training architectures in the same
class (leave-one-out for a training row itself, NaN, which LightGBM routes as missing, when no
training row shares the class). Tables built by measuring one member per class and copying it
(the nb201 pi5_* and pixel6a columns) are then matched exactly wherever a class was trained on:
pi5_onnx within +/-10% 86% -> 91% with 900 rows. The per-class sums and counts are saved.

Training is LightGBM's ``regression`` (L2) objective, ``n_estimators`` rounds at
``learning_rate`` on trees of at most ``num_leaves`` leaves, ``max_depth`` levels and
``min_child_samples`` rows per leaf, with no row or column subsampling, on one thread with
``deterministic=True`` and ``seed``: the same rows give the same trees, bit for bit. No global
random state is read or changed.

Prediction time is trees x path length: LightGBM walks every tree per row. The defaults (300
rounds at 0.08, depth <= 5) replaced 500 rounds at 0.05 with unlimited depth (whose 31-leaf trees
grew 10.7 levels deep on average): 6.4-7.6 instead of 16.0-17.1 us per row on 2 threads (nb201,
fbnet, ofa; 100,000 rows). On 10 columns (nb201 raspi4, pixel3, pi5_onnx, pixel6a_litert,
gold_6226, titan_rtx_1, fpga; fbnet gold_6226, raspi4, samsung_a50), 900 rows, seeds 0 and 1:
mean Spearman 0.9686 vs 0.9688, within +/-10% 87.2% vs 87.2%; the largest loss fbnet
samsung_a50, 0.8590 vs 0.8629. Depth 6 was 1.3x slower and no better; 200 rounds at 0.12 lost up
to 0.007. What shallow trees give up is the exact match of a copied class: on 1,200 pi5_onnx rows,
held-out cells whose class was trained on have a median error of 1.3% (unlimited depth: 0.6%),
the others 1.8% (1.7%); within +/-10% is unchanged.

Intervals (:meth:`GradientBoostingPredictor.predict_interval`) are cross-conformal on the point
model's residuals. When ``fit`` gets at least :data:`MIN_CALIBRATION_FIT` rows, they are split
into ``calibration_folds`` folds (assigned by ``numpy.random.default_rng([seed, 7919])``); a model
of the same settings is fitted on each fold's complement and predicts that fold, giving an
out-of-fold residual ``|log y - prediction|`` for every row. The ``factor`` is the residuals'
``ceil((n + 1) * quantile) / n`` empirical quantile, and the interval is ``exp(prediction -/+
factor)`` around the model fitted on all rows (a constant multiplicative width). The fold models
saw fewer rows than the final one, so the factor is if anything slightly conservative. On nb201
with 900 rows the nominal 90% covered 89-92% of 1,000 held-out rows on raspi4, pixel3, gold_6226
and titan_rtx_1. LightGBM's own quantile objective (two extra models at alphas ``(1 - q) / 2`` and
``(1 + q) / 2``) was measured too and rejected: its in-sample-fitted quantiles covered only 56-65%.
With fewer rows there are no folds: the factor is the quantile of the in-sample residuals, which
is far too narrow, and :attr:`calibrated` is ``False``.

Saving writes each model as LightGBM's own text format (``Booster.model_to_string``, which
stores every threshold and leaf value exactly), held as a uint8 array of its UTF-8 bytes in the
pickle-free predictor file; loading rebuilds ``lightgbm.Booster(model_str=...)``, and the
reloaded predictor predicts bit-identically.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from latency_predictors.predictors._analytic import analytic_matrix, analytic_names, check_recorded
from latency_predictors.predictors._baselines import check_space, check_targets, conformal_factor
from latency_predictors.predictors._format import StoredPredictor
from nas import Architecture, SearchSpace

#: Fewest rows ``fit`` needs to calibrate intervals on out-of-fold residuals.
MIN_CALIBRATION_FIT = 20
#: Batches of at least this many rows are predicted on every core.
PARALLEL_ROWS = 4096


def _model_array(booster: Any) -> np.ndarray:
    return np.frombuffer(
        booster.model_to_string().encode("utf-8"), dtype=np.uint8
    ).copy()


def _model_from_array(array: np.ndarray) -> Any:
    import lightgbm

    return lightgbm.Booster(
        model_str=np.asarray(array, dtype=np.uint8).tobytes().decode("utf-8")
    )


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


class GradientBoostingPredictor(StoredPredictor):
    """LightGBM trees on ``space.features`` (+ FLOPs) with cross-conformal intervals (see module)."""

    kind = "gbdt"
    #: Version of the columns this class adds to ``SearchSpace.features`` (whose own version is
    #: checked separately): the analytic costs (FLOPs; (3) parameters and memory traffic), then
    #: (2) the class memory when the space has isomorphism classes.
    FEATURE_VERSION = 3
    USES_SPACE_FEATURES = True

    def __init__(
        self,
        space: SearchSpace,
        device_fingerprint: str,
        n_estimators: int = 300,
        learning_rate: float = 0.08,
        num_leaves: int = 31,
        max_depth: int = 5,
        min_child_samples: int = 5,
        log_target: bool = True,
        quantile: float = 0.9,
        seed: int = 0,
        calibration_folds: int = 5,
    ) -> None:
        if int(n_estimators) < 1:
            raise ValueError(f"n_estimators must be >= 1, got {n_estimators!r}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
        if int(num_leaves) < 2:
            raise ValueError(f"num_leaves must be >= 2, got {num_leaves!r}")
        if int(max_depth) == 0 or int(max_depth) < -1:
            raise ValueError(f"max_depth must be >= 1, or -1 for no limit, got {max_depth!r}")
        if int(min_child_samples) < 1:
            raise ValueError(
                f"min_child_samples must be >= 1, got {min_child_samples!r}"
            )
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
        if int(calibration_folds) < 2:
            raise ValueError(
                f"calibration_folds must be >= 2, got {calibration_folds!r}"
            )
        self.search_space = space
        self.space = space.name
        self.device_fingerprint = device_fingerprint
        self.n_estimators = int(n_estimators)
        self.learning_rate = float(learning_rate)
        self.num_leaves = int(num_leaves)
        self.max_depth = int(max_depth)
        self.min_child_samples = int(min_child_samples)
        self.log_target = bool(log_target)
        self.quantile = float(quantile)
        self.seed = int(seed)
        self.calibration_folds = int(calibration_folds)
        self.analytic_costs = analytic_names(space)
        # fitted state
        self.memory: ClassMemory | None = None
        self.booster: Any = None
        self.n_features = 0
        self.factor = 0.0
        self.calibrated = False
        self.n_fit = 0

    # features and targets

    def features(self, archs: Sequence[Architecture]) -> np.ndarray:
        """The model's input rows: ``space.features``, then (when the space has them) FLOPs,
        parameters and memory traffic."""
        return self._features_and_classes(archs)[0]

    def _features_and_classes(
        self, archs: Sequence[Architecture], memory: ClassMemory | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`features` (then ``memory``'s column, when given and the space has classes) and
        the isomorphism classes, from one pass over the architectures."""
        check_space(self.search_space, archs)
        indices = self.search_space.gene_indices(archs)
        classes = self.search_space.isomorphism_classes_of(indices)
        columns = [self.search_space.features_of(indices), analytic_matrix(self.search_space, archs, indices, self.analytic_costs)]
        if memory is not None and classes is not None:
            columns.append(memory.lookup(classes)[:, None])
        # one float64 array written once: on batches of 1e5 rows each extra copy costs ~5%
        return np.hstack(columns, dtype=np.float64), classes

    def _with_memory(
        self, x: np.ndarray, classes: np.ndarray | None, memory: ClassMemory | None, leave_one_out: np.ndarray | None = None
    ) -> np.ndarray:
        if classes is None or memory is None:
            return x
        return np.hstack([x, memory.lookup(classes, leave_one_out)[:, None]])

    def _transform(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.log_target else y

    def _untransform(self, t: np.ndarray) -> np.ndarray:
        return np.exp(t) if self.log_target else t

    # training

    def _params(self) -> dict[str, Any]:
        return {
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

    def _train(self, x: np.ndarray, t: np.ndarray, init: np.ndarray | None = None, rounds: int | None = None) -> Any:
        """A booster of ``rounds`` (default ``n_estimators``) trees fitted to ``t``, boosting from
        ``init`` (a base prediction per row, LightGBM's ``init_score``) when given."""
        import lightgbm

        params = self._params()
        return lightgbm.train(
            params,
            lightgbm.Dataset(x, t, init_score=init, params=params),
            num_boost_round=self.n_estimators if rounds is None else rounds,
        )

    def _raw(self, booster: Any, x: np.ndarray) -> np.ndarray:
        # Rows are independent, so threads change speed, not values; below a few thousand
        # rows starting the thread pool costs more than it saves.
        threads = 1 if len(x) < PARALLEL_ROWS else (os.cpu_count() or 1)
        return np.asarray(booster.predict(x, num_threads=threads), dtype=np.float64)

    def _design(
        self, x: np.ndarray, classes: np.ndarray | None, t: np.ndarray
    ) -> tuple[np.ndarray, ClassMemory | None]:
        """Training rows ``x`` with the class memory of their own targets ``t`` (leave-one-out),
        and that memory."""
        memory = ClassMemory.of(classes, t) if classes is not None else None
        return self._with_memory(x, classes, memory, leave_one_out=t), memory

    def _fold_designs(
        self, x: np.ndarray, classes: np.ndarray | None, t: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per calibration fold (rows assigned by ``default_rng([seed, 7919])``): the held and
        kept row masks and their model inputs, with the kept rows' own class memory, so the held
        rows' targets stay unseen."""
        folds = np.random.default_rng([self.seed, 7919]).permutation(len(x)) % self.calibration_folds
        for fold in range(self.calibration_folds):
            held, kept = folds == fold, folds != fold
            kept_x, memory = self._design(x[kept], None if classes is None else classes[kept], t[kept])
            held_x = self._with_memory(x[held], None if classes is None else classes[held], memory)
            yield held, kept, kept_x, held_x

    def fit(
        self, archs: Sequence[Architecture], y: np.ndarray
    ) -> GradientBoostingPredictor:
        y = check_targets(archs, y, positive=self.log_target)
        x, classes = self._features_and_classes(archs)
        t = self._transform(y)
        n = len(archs)
        x_all, memory = self._design(x, classes, t)
        booster = self._train(x_all, t)
        if n >= MIN_CALIBRATION_FIT:
            out_of_fold = np.empty(n)
            for held, kept, kept_x, held_x in self._fold_designs(x, classes, t):
                out_of_fold[held] = self._raw(self._train(kept_x, t[kept]), held_x)
            self.factor = conformal_factor(np.abs(t - out_of_fold), self.quantile)
            self.calibrated = True
        else:
            self.factor = conformal_factor(
                np.abs(t - self._raw(booster, x_all)), self.quantile
            )
            self.calibrated = False
        self.booster, self.n_features, self.n_fit = booster, x_all.shape[1], n
        self.memory = memory
        return self

    # inference

    def _check_fitted(self, what: str) -> None:
        if self.booster is None:
            raise RuntimeError(f"GradientBoostingPredictor.{what} before fit (or load)")

    def _centre(self, archs: Sequence[Architecture]) -> np.ndarray:
        x, _ = self._features_and_classes(archs, self.memory)
        if x.shape[1] != self.n_features:
            raise ValueError(
                f"{self.space} features have {x.shape[1]} columns; this predictor was trained on "
                f"{self.n_features}"
            )
        return self._raw(self.booster, x)

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        self._check_fitted("predict")
        if len(archs) == 0:
            return np.empty(0)
        return self._untransform(self._centre(archs))

    def predict_interval(
        self, archs: Sequence[Architecture]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` bounds meant to cover the measured value with probability
        ``quantile`` (cross-conformal on out-of-fold residuals; see module and :attr:`calibrated`)."""
        self._check_fitted("predict_interval")
        if len(archs) == 0:
            return np.empty(0), np.empty(0)
        centre = self._centre(archs)
        return self._untransform(centre - self.factor), self._untransform(
            centre + self.factor
        )

    # persistence

    def save(self, path: Path) -> None:
        self._check_fitted("save")
        self._write(
            path,
            arrays={"model": _model_array(self.booster), **(self.memory.arrays() if self.memory else {})},
            params={
                "n_estimators": self.n_estimators,
                "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves,
                "max_depth": self.max_depth,
                "min_child_samples": self.min_child_samples,
                "log_target": self.log_target,
                "quantile": self.quantile,
                "seed": self.seed,
                "calibration_folds": self.calibration_folds,
                "analytic_costs": list(self.analytic_costs),
                "n_features": self.n_features,
                "factor": self.factor,
                "calibrated": self.calibrated,
                "n_fit": self.n_fit,
            },
        )

    @classmethod
    def load(
        cls, path: Path, *, space: SearchSpace, device_fingerprint: str
    ) -> GradientBoostingPredictor:
        """Read ``path``; ``space`` is the :class:`SearchSpace` itself (its ``features`` and
        ``flops`` are needed), compared by name with the file's."""
        header, arrays = cls._read(path, space, device_fingerprint)
        p = header["params"]
        predictor = cls(
            space,
            device_fingerprint,
            n_estimators=p["n_estimators"],
            learning_rate=p["learning_rate"],
            num_leaves=p["num_leaves"],
            max_depth=p.get("max_depth", -1),  # files before the option had no limit
            min_child_samples=p["min_child_samples"],
            log_target=p["log_target"],
            quantile=p["quantile"],
            seed=p["seed"],
            calibration_folds=p["calibration_folds"],
        )
        check_recorded(path, space, p["analytic_costs"], predictor.analytic_costs)
        predictor.booster = _model_from_array(arrays["model"])
        predictor.memory = ClassMemory.from_arrays(arrays) if "memory_classes" in arrays else None
        predictor.n_features = int(p["n_features"])
        predictor.factor = float(p["factor"])
        predictor.calibrated = bool(p["calibrated"])
        predictor.n_fit = int(p["n_fit"])
        return predictor
