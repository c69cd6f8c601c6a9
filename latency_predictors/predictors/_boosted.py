"""A layer sum corrected by boosted trees, as many correction rounds as held-out rows support.

A network's latency is nearly a sum over its layers, and a layer sum fitted from whole networks
(:class:`LayerSumPredictor`) has few parameters (NB201: 22 layer keys, FBNet: 110), so it
averages measurement noise away; what it cannot express (interactions, a runtime's fusions, a
copied class's exact value) gradient-boosted trees can, but trees also fit noise. This predictor
boosts from the layer sum: ``log y = log layer_sum(x) + trees(x)``, the trees being
:class:`GradientBoostingPredictor`'s (:class:`._trees.SpaceTrees`: same features, class memory
and LightGBM settings) with the layer sum as LightGBM's ``init_score``, and it chooses how many
rounds to keep out of fold.

Fitting (``n`` rows, ``folds`` folds drawn with ``numpy.random.default_rng([seed, 7919])``):

1. out-of-fold layer sums: for each fold, a layer sum fitted on the other folds predicts it, so
   the trees learn from base predictions as wrong as the ones they will meet on new networks;
2. for each fold, trees boosted from those bases on the other folds predict it after each of
   :data:`ROUNDS` rounds; the kept rounds are the count with the least out-of-fold squared log
   error (ties: the fewest; 0 means the layer sum alone);
3. the layer sum is refitted on all rows, and the trees (that many rounds) on all rows from the
   out-of-fold bases. Intervals are cross-conformal on the chosen count's out-of-fold residuals,
   ``exp(centre -/+ factor)`` as in :mod:`._gbdt`. Ten folds, not five: models fitted on 80% of
   the rows err more than the final one where it is nearly exact (fbnet's per-layer-table
   columns), and the nominal 90% covered 0.94-0.97 there with five folds, 0.93-0.95 with ten.

Where the layer costs outnumber the training networks (FBNet's 110 keys and 20-100 rows) the
layer sum is underdetermined and a poor base: there steps 1-2 also boost from a constant (each
fold's mean log target, i.e. plain gbdt), and the base with the least out-of-fold error is kept
(:attr:`base`, ``"layer_sum"`` or ``"mean"``; ties go to the layer sum). On every fbnet column,
seeds 0 and 1, mean Spearman at 20 / 50 / 100 rows went from 0.712 / 0.694 / 0.847 (layer sum
base only) to 0.782 / 0.893 / 0.943 (gbdt: 0.801 / 0.901 / 0.922). With fewer than
:data:`MIN_BOOSTED_FIT` rows there are no folds: the layer sum alone, intervals from its
in-sample residuals (:attr:`calibrated` ``False``).

Measured (900 rows, seeds 0 and 1, Spearman / within +/-10%): nb201 2080ti_1 0.970 / 93.9%
(gbdt 0.961 / 91.2%), samsung_a50 0.982 / 93.2% (0.974 / 85.6%), samsung_s7 0.935 / 76.4% (0.907 /
62.1%), pixel3 0.974 / 68.3% (0.966 / 58.5%), raspi4 0.973 / 63.2% (0.967 / 61.9%), gold_6226
0.989 / 96.3% (0.985 / 94.7%); the rounds kept were 0-25 on the GPUs, phones and gold_6226, 50-300
on raspi4, pixel3 and the copied pixel6a_litert. fbnet kept 0 rounds on samsung_a50, gold_6226 and
titan_rtx_64, where the layer sum beats gbdt (titan_rtx_64 0.998 against 0.95).

Where the fitted layer sum cannot price every layer the space can contain (its
:meth:`~nas.LayeredSpace.distinct_layers`: OFA's keys are mostly unseen by 900 networks and have
no kinds to borrow a mean from), it is no base at all: the trees boost from the constant alone,
which makes this gbdt with out-of-fold rounds and ten-fold intervals, and :meth:`predict` never
meets an unseen key. With under :data:`MIN_BOOSTED_FIT` rows such a fit is refused.

The file embeds the layer sum's own file and the trees as LightGBM text: no pickle.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latency_predictors.predictors._analytic import check_recorded
from latency_predictors.predictors._common import check_targets, conformal_factor
from latency_predictors.predictors._correction import MIN_BOOSTED_FIT, ROUNDS, out_of_fold_rounds
from latency_predictors.predictors._format import StoredPredictor, embedded, unembedded
from latency_predictors.predictors._lut import LayerSumPredictor, UnseenLayerError, check_layered
from latency_predictors.predictors._trees import ClassMemory, SpaceTrees, model_array, model_from_array
from nas import Architecture, IntervalPredictor, SearchSpace


class BoostedLayerSumPredictor(StoredPredictor, IntervalPredictor):
    """``exp(log layer_sum(x) + trees(x))``, the trees' rounds chosen out of fold (see module)."""

    kind = "boosted_layer_sum"
    FEATURE_VERSION = 1
    USES_SPACE_FEATURES = True

    def __init__(
        self,
        space: SearchSpace,
        device_fingerprint: str,
        learning_rate: float = 0.08,
        num_leaves: int = 31,
        max_depth: int = 5,
        min_child_samples: int = 5,
        quantile: float = 0.9,
        seed: int = 0,
        folds: int = 10,
    ) -> None:
        check_layered(space, self.kind)
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
        # gbdt's features, class memory and LightGBM settings; the trees validate them
        self.trees = SpaceTrees(
            space,
            n_estimators=max(ROUNDS),
            learning_rate=learning_rate,
            num_leaves=num_leaves,
            max_depth=max_depth,
            min_child_samples=min_child_samples,
            seed=seed,
            folds=folds,
        )
        self.search_space = space
        self.space = space.name
        self.device_fingerprint = device_fingerprint
        self.seed, self.folds, self.quantile = int(seed), int(folds), float(quantile)
        # fitted state
        self.layer_sum: LayerSumPredictor | None = None
        self.booster: Any = None
        self.memory: ClassMemory | None = None
        self.rounds = 0
        self.base, self.mean_log = "layer_sum", 0.0
        self.floor_ms = 0.0
        self.factor = 0.0
        self.calibrated = False
        self.n_fit = 0

    def _layer_sum(self) -> LayerSumPredictor:
        return LayerSumPredictor(self.search_space, self.device_fingerprint, unseen="kind_mean")

    def _log_base(self, layer_sum: LayerSumPredictor, archs: Sequence[Architecture]) -> np.ndarray:
        # a layer sum is >= 0; the floor (half the fastest training network) keeps the log finite
        return np.log(np.maximum(layer_sum.predict(archs), self.floor_ms))

    def _covers_space(self, layer_sum: LayerSumPredictor) -> bool:
        """Whether ``layer_sum`` can price every layer the space's networks can contain."""
        keys = [layer.key for layer in layer_sum.search_space.distinct_layers()]
        return not layer_sum.uncovered(keys)

    def _out_of_fold_bases(
        self,
        archs: Sequence[Architecture],
        y: np.ndarray,
        t: np.ndarray,
        folds: list[tuple[np.ndarray, ...]],
        names: Sequence[str],
    ) -> dict[str, np.ndarray]:
        """The out-of-fold log predictions of each base in ``names`` (module, steps 1 and 2)."""
        bases = {name: np.empty(len(t)) for name in names}
        for held, kept, _, _ in folds:
            if "layer_sum" in bases:
                fold_sum = self._layer_sum().fit([archs[i] for i in np.flatnonzero(kept)], y[kept])
                bases["layer_sum"][held] = self._log_base(fold_sum, [archs[i] for i in np.flatnonzero(held)])
            if "mean" in bases:
                bases["mean"][held] = t[kept].mean()
        return bases

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> BoostedLayerSumPredictor:
        y = check_targets(archs, y, positive=True)
        t, n = np.log(y), len(archs)
        self.floor_ms = 0.5 * float(y.min())
        self.layer_sum = self._layer_sum().fit(archs, y)
        self.booster, self.memory, self.rounds, self.n_fit = None, None, 0, n
        self.base, self.mean_log = "layer_sum", float(t.mean())
        covers = self._covers_space(self.layer_sum)
        if n < MIN_BOOSTED_FIT:
            if not covers:
                raise UnseenLayerError(
                    f"boosted_layer_sum got {n} {self.space} networks whose layers do not cover the space's "
                    f"{len(self.search_space.distinct_layers())} layer keys, and needs at least "
                    f"{MIN_BOOSTED_FIT} to boost from a constant instead; fit more networks, or fit gbdt, "
                    "mlp or flops"
                )
            self.factor = conformal_factor(np.abs(t - self._log_base(self.layer_sum, archs)), self.quantile)
            self.calibrated = False
            return self
        x, classes = self.trees.features_and_classes(archs)
        fold_designs = list(self.trees.fold_designs(x, classes, t))
        names = ["layer_sum"] if covers else []
        if not covers or n <= len(self.layer_sum.keys):  # more layer costs than networks
            names.append("mean")
        bases = self._out_of_fold_bases(archs, y, t, fold_designs, names)
        # (base, rounds, row)
        out_of_fold = np.stack([out_of_fold_rounds(self.trees, fold_designs, t, base) for base in bases.values()])
        errors = ((out_of_fold - t) ** 2).sum(axis=2)
        b, best = np.unravel_index(int(np.argmin(errors)), errors.shape)  # first minimum: layer sum, fewest rounds
        self.base, self.rounds = list(bases)[b], ROUNDS[best]
        if self.rounds:
            x_all, self.memory = self.trees.design(x, classes, t)
            # out-of-fold layer sums: the trees learn from bases as wrong as on new networks
            init = bases["layer_sum"] if self.base == "layer_sum" else np.full(n, self.mean_log)
            self.booster = self.trees.train(x_all, t, init=init, rounds=self.rounds)
        self.factor = conformal_factor(np.abs(t - out_of_fold[b, best]), self.quantile)
        self.calibrated = True
        return self

    # inference

    def _centre(self, archs: Sequence[Architecture]) -> np.ndarray:
        if self.layer_sum is None:
            raise RuntimeError("BoostedLayerSumPredictor.predict before fit (or load)")
        if self.base == "mean":
            centre = np.full(len(archs), self.mean_log)
        else:
            centre = self._log_base(self.layer_sum, archs)
        if self.booster is not None:
            x, _ = self.trees.features_and_classes(archs, self.memory)
            centre = centre + self.trees.predict(self.booster, x)
        return centre

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        if len(archs) == 0:
            return np.empty(0)
        return np.exp(self._centre(archs))

    def predict_interval(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` meant to cover the measured value with probability ``quantile``
        (cross-conformal on out-of-fold residuals; see module and :attr:`calibrated`)."""
        if len(archs) == 0:
            return np.empty(0), np.empty(0)
        centre = self._centre(archs)
        return np.exp(centre - self.factor), np.exp(centre + self.factor)

    # persistence

    def save(self, path: Path) -> None:
        if self.layer_sum is None:
            raise RuntimeError("BoostedLayerSumPredictor.save before fit (or load)")
        with tempfile.TemporaryDirectory(prefix="hwnas-boosted-") as scratch:
            arrays = {"layer_sum": embedded(self.layer_sum, Path(scratch) / "layer_sum.npz")}
        if self.booster is not None:
            arrays["model"] = model_array(self.booster)
        if self.memory is not None:
            arrays.update(self.memory.arrays())
        trees = self.trees
        self._write(
            path,
            arrays=arrays,
            params={
                "learning_rate": trees.learning_rate,
                "num_leaves": trees.num_leaves,
                "max_depth": trees.max_depth,
                "min_child_samples": trees.min_child_samples,
                "quantile": self.quantile,
                "seed": self.seed,
                "folds": self.folds,
                "analytic_costs": list(trees.analytic_costs),
                "rounds": self.rounds,
                "base": self.base,
                "mean_log": self.mean_log,
                "floor_ms": self.floor_ms,
                "factor": self.factor,
                "calibrated": self.calibrated,
                "n_fit": self.n_fit,
            },
        )

    @classmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> BoostedLayerSumPredictor:
        """Read ``path`` (and the layer sum embedded in it); ``space`` is the space itself."""
        header, arrays = cls._read(path, space, device_fingerprint)
        p = header["params"]
        predictor = cls(
            space,
            device_fingerprint,
            learning_rate=p["learning_rate"],
            num_leaves=p["num_leaves"],
            max_depth=p["max_depth"],
            min_child_samples=p["min_child_samples"],
            quantile=p["quantile"],
            seed=p["seed"],
            folds=p["folds"],
        )
        check_recorded(path, space, p["analytic_costs"], predictor.trees.analytic_costs)
        with tempfile.TemporaryDirectory(prefix="hwnas-boosted-") as scratch:
            layer_sum = unembedded(
                LayerSumPredictor, arrays["layer_sum"], Path(scratch) / "layer_sum.npz", space, device_fingerprint
            )
        assert isinstance(layer_sum, LayerSumPredictor)
        predictor.layer_sum = layer_sum
        predictor.booster = model_from_array(arrays["model"]) if "model" in arrays else None
        predictor.memory = ClassMemory.from_arrays(arrays) if "memory_classes" in arrays else None
        predictor.rounds, predictor.floor_ms = int(p["rounds"]), float(p["floor_ms"])
        # files written before the constant base existed always boosted from the layer sum
        predictor.base, predictor.mean_log = str(p.get("base", "layer_sum")), float(p.get("mean_log", 0.0))
        predictor.factor, predictor.calibrated = float(p["factor"]), bool(p["calibrated"])
        predictor.n_fit = int(p["n_fit"])
        return predictor
