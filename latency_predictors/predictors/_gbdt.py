"""Gradient-boosted regression trees (LightGBM) on the space's features, with conformal intervals.

Features (:data:`GradientBoostingPredictor.FEATURE_VERSION` 3): the space's feature matrix
(:mod:`._features`: one-hot genes, then value counts), plus the space's analytic costs
(:mod:`._analytic`: FLOPs where the space counts them, and (3) parameters and memory traffic where
it adds up over genes, as NB201 and FBNet do). Trees split on thresholds, so the scale of a column does not matter; these sums
over a network's layers are something a tree ensemble otherwise has to piece together from many
splits. Parameters and traffic took fbnet gold_6226 from Spearman 0.942 / 78.0% within +/-10% to
0.964 / 87.9% and silver_4210r from 0.936 to 0.957 (900 rows, seed 0); nb201's columns did not
change. The target is ``log y``
(``log_target=True``, the default; latencies and energies are > 0 and their errors multiplicative).

When the space has isomorphism classes (a :class:`nas.IsomorphicSpace`; NB201's 6,466), one more
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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latency_predictors.predictors._analytic import check_recorded
from latency_predictors.predictors._common import check_targets, conformal_factor
from latency_predictors.predictors._format import StoredPredictor
from latency_predictors.predictors._trees import ClassMemory, SpaceTrees, model_array, model_from_array
from nas import Architecture, IntervalPredictor, SearchSpace

#: Fewest rows ``fit`` needs to calibrate intervals on out-of-fold residuals.
MIN_CALIBRATION_FIT = 20

__all__ = ["MIN_CALIBRATION_FIT", "ClassMemory", "GradientBoostingPredictor"]


class GradientBoostingPredictor(StoredPredictor, IntervalPredictor):
    """LightGBM trees on the space's features (+ FLOPs) with cross-conformal intervals (see module)."""

    kind = "gbdt"
    #: Version of the columns this class adds to the space's features (whose own version is
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
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
        # the trees validate their own settings
        self.trees = SpaceTrees(
            space,
            n_estimators=n_estimators,
            learning_rate=learning_rate,
            num_leaves=num_leaves,
            max_depth=max_depth,
            min_child_samples=min_child_samples,
            seed=seed,
            folds=calibration_folds,
        )
        self.search_space = space
        self.space = space.name
        self.device_fingerprint = device_fingerprint
        self.log_target = bool(log_target)
        self.quantile = float(quantile)
        self.analytic_costs = self.trees.analytic_costs
        # fitted state
        self.memory: ClassMemory | None = None
        self.booster: Any = None
        self.n_features = 0
        self.factor = 0.0
        self.calibrated = False
        self.n_fit = 0

    # features and targets

    def features(self, archs: Sequence[Architecture]) -> np.ndarray:
        """The model's input rows: the space's features, then (when the space has them) FLOPs,
        parameters and memory traffic."""
        return self.trees.features_and_classes(archs)[0]

    def _transform(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.log_target else y

    def _untransform(self, t: np.ndarray) -> np.ndarray:
        return np.exp(t) if self.log_target else t

    # training

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> GradientBoostingPredictor:
        y = check_targets(archs, y, positive=self.log_target)
        trees = self.trees
        x, classes = trees.features_and_classes(archs)
        t = self._transform(y)
        n = len(archs)
        x_all, memory = trees.design(x, classes, t)
        booster = trees.train(x_all, t)
        if n >= MIN_CALIBRATION_FIT:
            out_of_fold = np.empty(n)
            for held, kept, kept_x, held_x in trees.fold_designs(x, classes, t):
                out_of_fold[held] = trees.predict(trees.train(kept_x, t[kept]), held_x)
            self.factor = conformal_factor(np.abs(t - out_of_fold), self.quantile)
            self.calibrated = True
        else:
            self.factor = conformal_factor(np.abs(t - trees.predict(booster, x_all)), self.quantile)
            self.calibrated = False
        self.booster, self.n_features, self.n_fit = booster, x_all.shape[1], n
        self.memory = memory
        return self

    # inference

    def _check_fitted(self, what: str) -> None:
        if self.booster is None:
            raise RuntimeError(f"GradientBoostingPredictor.{what} before fit (or load)")

    def _centre(self, archs: Sequence[Architecture]) -> np.ndarray:
        x, _ = self.trees.features_and_classes(archs, self.memory)
        if x.shape[1] != self.n_features:
            raise ValueError(
                f"{self.space} features have {x.shape[1]} columns; this predictor was trained on {self.n_features}"
            )
        return self.trees.predict(self.booster, x)

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        self._check_fitted("predict")
        if len(archs) == 0:
            return np.empty(0)
        return self._untransform(self._centre(archs))

    def predict_interval(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` bounds meant to cover the measured value with probability
        ``quantile`` (cross-conformal on out-of-fold residuals; see module and :attr:`calibrated`)."""
        self._check_fitted("predict_interval")
        if len(archs) == 0:
            return np.empty(0), np.empty(0)
        centre = self._centre(archs)
        return self._untransform(centre - self.factor), self._untransform(centre + self.factor)

    # persistence

    def save(self, path: Path) -> None:
        self._check_fitted("save")
        self._write(
            path,
            arrays={"model": model_array(self.booster), **(self.memory.arrays() if self.memory else {})},
            params={
                "n_estimators": self.trees.n_estimators,
                "learning_rate": self.trees.learning_rate,
                "num_leaves": self.trees.num_leaves,
                "max_depth": self.trees.max_depth,
                "min_child_samples": self.trees.min_child_samples,
                "log_target": self.log_target,
                "quantile": self.quantile,
                "seed": self.trees.seed,
                "calibration_folds": self.trees.folds,
                "analytic_costs": list(self.analytic_costs),
                "n_features": self.n_features,
                "factor": self.factor,
                "calibrated": self.calibrated,
                "n_fit": self.n_fit,
            },
        )

    @classmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> GradientBoostingPredictor:
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
        predictor.booster = model_from_array(arrays["model"])
        predictor.memory = ClassMemory.from_arrays(arrays) if "memory_classes" in arrays else None
        predictor.n_features = int(p["n_features"])
        predictor.factor = float(p["factor"])
        predictor.calibrated = bool(p["calibrated"])
        predictor.n_fit = int(p["n_fit"])
        return predictor
