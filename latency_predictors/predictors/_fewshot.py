"""Few-shot predictors for a new device: a non-negative blend of other devices' predictors.

HELP's goal (NeurIPS 2021): predict a device nobody has profiled from ``k ~ 10`` measured
architectures, using what other ("source") devices taught us. Here the sources are ordinary
fitted predictors (one per source device, e.g. :class:`LayerSumPredictor` trained on that device's
measurements of a pretraining pool), and adapting to the target is a tiny non-negative linear
model fitted by NNLS on the ``k`` target measurements (optionally with a ridge, off by default).
Two blends (``blend``):

* ``"linear"`` (the default)::

      y(a) ~ b + sum_s w_s * source_s(a) + sum_c v_c * cost_c(a),      b, w, v >= 0

  where the ``cost_c`` (``analytic=True``) are the space's analytic costs: FLOPs, parameters,
  memory traffic and activation traffic, where the space gives them
  (:class:`._analytic.AnalyticCosts`, ``ALL_COSTS``). Why linear: a network's latency is a sum
  over its layers, and a non-negative mix of per-layer cost models is again one, so a target
  device whose layer costs are a mix of the sources' (compute-bound like one, memory-bound like
  another) is represented exactly; the analytic costs add pure compute- and memory-cost sources.
* with ``own_layer_sum=True``, one more column: the target's own :class:`LayerSumPredictor`
  fitted on the ``k`` points. It is *stacked*: the blend is fitted on its cross-fitted
  predictions (each point predicted by a layer sum that did not see it), so it earns weight only
  where it predicts unseen networks, as on a device no source resembles (nb201 eyeriss, a sum of
  per-op costs: 0.79 -> 0.996 at k=10); it is dropped when it cannot cost every layer kind of the
  space (OFA, whose layer keys a few networks leave mostly unseen).
* ``"log"``: ``log y ~ intercept + sum_s w_s * (log source_s(a) - mean_k log source_s)``, the
  earlier blend, kept so files saved by it (which name no blend) load and predict as before.
* with ``correct=True`` (hwnas-fit's setting), LightGBM trees boosted from the blend's held-out
  log predictions (:class:`._correction.TreeCorrection`, boosted_layer_sum's step), their rounds
  chosen out of fold: with under 20 points there are none, with tens they mostly keep the blend,
  with hundreds they learn what neither the sources nor a layer sum expresses (nb201 pixel3 at
  k = 900: 0.972, against 0.910 for the uncorrected blend of layer-sum sources).

Measured leave-one-device-out (scripts/bench_few_shot.py, k=10, 3 seeds, layer-sum sources on a
900-row pool), mean Spearman: nb201 latency 0.955 (log) -> 0.956 (linear + FLOPs), fbnet 0.934 ->
0.939 (0.944 with parameters and traffic too: gold_6226 0.871 -> 0.919), nb201 energy 0.981 ->
0.984; with gbdt sources 0.955 -> 0.959, 0.918 -> 0.928 and 0.979 -> 0.981 (linear + FLOPs).
Over five seeds: 0.957, 0.944 and 0.983; with the own layer sum stacked (hwnas-fit's setting
for nb201 and fbnet) 0.970, 0.942 and 0.983 (README). With boosted_layer_sum sources (now the
spaces' setting, configs/few_shot/) nb201 latency went to 0.978 (3 seeds; pixel3 0.888 -> 0.954,
raspi4 0.898 -> 0.965), fbnet's stayed 0.938. Also tried on that protocol and not kept: the 3 or 5
sources whose predictions rank the k points best (fbnet 0.938 -> 0.914 / 0.926), the blend
(linear or log) chosen per target by leave-one-out error, the own layer sum alone where its
cross-fitted error beat the blend's (nb201 k = 5: 0.964 -> 0.936; it gained on this CPU's own
profiles, 0.905 -> 0.930 at k = 10, which is why it was tried), roofline columns (sum over layers
of max(FLOPs, c * traffic): no change) and a ridge layer sum fitted to the blend's residuals
(fbnet titan_rtx_64 0.808 -> 0.823 at k = 10 without the own layer sum, samsung_a50 worse).

Activation traffic (the elements every op reads and writes, a block's inner tensors included)
joined the analytic columns after a diagnosis of FBNet's titan_rtx_64 (batch 64): per layer it
costs about its batch-1 overhead (titan_rtx_1's) plus a term that follows the expanded tensors of
the wide early blocks, which neither FLOPs nor the layer-boundary traffic follow and no mix of
the sources spans. Leave one device out, seeds 0-2, k = 5 / 10 / 20 / 50 / 900: fbnet latency
0.909 / 0.938 / 0.948 / 0.959 / 0.985 -> 0.916 / 0.951 / 0.957 / 0.965 / 0.985 (titan_rtx_64
0.661 / 0.808 -> 0.729 / 0.928 at k = 5 / 10); fbnet energy (fpga) 0.979 / 0.976 -> 0.971 / 0.974
at k = 5 / 10, level from k = 20; nb201 latency 0.964 / 0.978 at k = 5 / 10 unchanged (samsung_s7
0.913 -> 0.908); nb201 energy unchanged; this CPU's three profiles unchanged to three decimals.

With ``k = 10`` the adaptation can only afford a handful of effective parameters; non-negativity
is the regulariser that lets NNLS pick a sparse subset of sources by itself. Also measured and
rejected earlier: the best-correlated single source, the mean source, free-sign ridge,
leave-one-out selection among blends and analytic models (picks wrongly from 10 points: fbnet
0.88), an op-count sum stacked into the log blend (nb201 0.973 but fbnet 0.882).

Predictions only ever use the source *predictors*: the source devices' measurements of an
architecture being predicted are never read (the caller keeps pretraining pool and test rows
apart; hwnas-fit and the benchmark do).

Intervals (:meth:`FewShotPredictor.predict_interval`): split-free conformal on leave-one-out
residuals of the adaptation (each of the ``k`` points refitted without itself, the source
predictors fixed; beyond :data:`CALIBRATION_FOLDS` points, without its fold, cross-conformal):
``factor`` = the ``ceil((k + 1) q) / k`` empirical quantile of ``|log y - log held-out
prediction|``, interval ``centre * exp(-/+ factor)``. With ``k = 10`` and ``q = 0.9`` that is
the largest residual. Measured coverage is in scripts/bench_few_shot.py's output (it is a
statement about k exchangeable points, so it varies a lot from one draw of 10 to another).

Saving embeds each source predictor's own saved file (its bytes as a uint8 array) in this file,
so one file holds everything and stays pickle-free; the header records each source's name, kind
and device fingerprint, the blend and the analytic costs used. Loading writes each back to a
temporary file and calls the ``load`` of the :class:`StoredPredictor` family whose ``kind`` it names.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from latency_predictors.predictors._analytic import ALL_COSTS, AnalyticCosts, check_recorded
from latency_predictors.predictors._common import check_space, check_targets, conformal_factor
from latency_predictors.predictors._correction import ROUNDS, TreeCorrection
from latency_predictors.predictors._format import StoredPredictor, embedded, unembedded
from latency_predictors.predictors._lut import LayerSumPredictor, UnseenLayerError
from latency_predictors.predictors._trees import SpaceTrees
from nas import Architecture, IntervalPredictor, Predictor, SearchSpace, TransferPredictor

#: Predictions are floored here before a log (a layer-sum model can predict 0).
_FLOOR = 1e-9
#: Fewest target measurements :meth:`FewShotPredictor.fit` accepts (a slope needs two points).
MIN_TARGETS = 2
#: Fewest target measurements for leave-one-out calibrated intervals.
MIN_CALIBRATION = 3
#: Folds of the own layer sum's cross-fitted column (leave-one-out below this many points).
OWN_FOLDS = 10
#: Folds of the intervals' held-out residuals (leave-one-out below this many points): beyond it,
#: leave-one-out would refit the whole procedure once per point (a minute at k = 900).
CALIBRATION_FOLDS = 20


def _stored_families() -> dict[str, type[StoredPredictor]]:
    """Every loaded :class:`StoredPredictor` family by its ``kind`` (subclasses, recursively)."""
    families: dict[str, type[StoredPredictor]] = {}
    pending = list(StoredPredictor.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if isinstance(getattr(cls, "kind", None), str):
            families.setdefault(cls.kind, cls)
    return families


def _nnls(x: np.ndarray, target: np.ndarray, ridge: float, penalised: np.ndarray) -> np.ndarray:
    """NNLS of ``target`` on ``x`` plus ``ridge * |w[penalised]|^2``."""
    from scipy.optimize import nnls

    if ridge > 0:
        x = np.vstack([x, math.sqrt(ridge) * np.eye(x.shape[1])[penalised]])
        target = np.concatenate([target, np.zeros(int(penalised.sum()))])
    return nnls(x, target)[0]


@dataclass(frozen=True)
class LogBlend:
    """``log y ~ t_mean + (log x - z_mean) @ weights``, ``weights >= 0``."""

    z_mean: np.ndarray
    weights: np.ndarray
    t_mean: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, ridge: float) -> LogBlend:
        z, t = np.log(np.maximum(x, _FLOOR)), np.log(y)
        z_mean, t_mean = z.mean(axis=0), float(t.mean())
        weights = _nnls(z - z_mean, t - t_mean, ridge, np.ones(z.shape[1], dtype=bool))
        return cls(z_mean, weights, t_mean)

    def log_predict(self, x: np.ndarray) -> np.ndarray:
        return self.t_mean + (np.log(np.maximum(x, _FLOOR)) - self.z_mean) @ self.weights

    def stored(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"z_mean": self.z_mean, "weights": self.weights}, {"t_mean": self.t_mean}

    @classmethod
    def from_stored(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> LogBlend:
        return cls(
            np.asarray(arrays["z_mean"], np.float64), np.asarray(arrays["weights"], np.float64), float(params["t_mean"])
        )


@dataclass(frozen=True)
class LinearBlend:
    """``y ~ weights[0] + (x / scale) @ weights[1:]``, ``weights >= 0``; ``scale`` is each
    column's mean over the fitted points, so a ridge treats the columns alike."""

    scale: np.ndarray
    weights: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, ridge: float) -> LinearBlend:
        scale = np.maximum(x.mean(axis=0), _FLOOR)
        design = np.hstack([np.ones((len(x), 1)), x / scale])
        penalised = np.r_[False, np.ones(x.shape[1], dtype=bool)]
        return cls(scale, _nnls(design, y, ridge, penalised))

    def log_predict(self, x: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(self.weights[0] + (x / self.scale) @ self.weights[1:], _FLOOR))

    def stored(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"scale": self.scale, "weights": self.weights}, {}

    @classmethod
    def from_stored(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> LinearBlend:
        return cls(np.asarray(arrays["scale"], np.float64), np.asarray(arrays["weights"], np.float64))


#: The blends by name: the ``blend`` option, and what a saved file records.
BLENDS: dict[str, type[LogBlend] | type[LinearBlend]] = {"linear": LinearBlend, "log": LogBlend}


class FewShotPredictor(StoredPredictor, IntervalPredictor, TransferPredictor):
    """A new device from ``k`` measurements: NNLS blend of source predictors (see module)."""

    kind = "few_shot"
    #: Version of the features: the source predictors' predictions in their order, then the
    #: :attr:`analytic_costs` (recorded in the file; files without the record have none).
    FEATURE_VERSION: ClassVar[int] = 1

    def __init__(
        self,
        space: SearchSpace,
        device_fingerprint: str,
        sources: Mapping[str, Predictor] | None = None,
        blend: str = "linear",
        analytic: bool = True,
        own_layer_sum: bool = False,
        ridge: float = 0.0,
        quantile: float = 0.9,
        correct: bool = False,
        seed: int = 0,
    ) -> None:
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {sorted(BLENDS)}, got {blend!r}")
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0, got {ridge!r}")
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
        sources = sources or {}  # allowed empty so a config composes; fit refuses it
        for name, source in sources.items():
            if source.space != space.name:
                raise ValueError(f"source {name!r} predicts space {source.space!r}, not {space.name!r}")
            if source.device_fingerprint == device_fingerprint:
                raise ValueError(
                    f"source {name!r} has the target device's own fingerprint {device_fingerprint}: "
                    "a few-shot predictor adapts to a device none of its sources measured"
                )
        self.search_space = space
        self.space = space.name
        self.device_fingerprint = device_fingerprint
        self.sources: dict[str, Predictor] = dict(sources)
        self.blend = blend
        self._costs = AnalyticCosts(space, ALL_COSTS)
        self.analytic_costs: tuple[str, ...] = self._costs.names if analytic else ()
        self.own_layer_sum = bool(own_layer_sum)
        self.ridge = float(ridge)
        self.quantile = float(quantile)
        self.correct, self.seed = bool(correct), int(seed)
        # the correcting trees' settings: boosted_layer_sum's (ten folds, LightGBM's defaults there)
        self.trees = SpaceTrees(space, n_estimators=max(ROUNDS), seed=self.seed, folds=10)
        # fitted state
        self.fitted: LogBlend | LinearBlend | None = None
        self.own: LayerSumPredictor | None = None  # the target's own layer sum, when it earned a column
        self.correction = TreeCorrection()  # trees on the blend's log predictions, when they earned rounds
        self.factor = 0.0
        self.calibrated = False
        self.n_fit = 0

    @property
    def weights(self) -> np.ndarray:
        """The blend's non-negative weights (the linear blend's intercept first)."""
        return self.fitted.weights if self.fitted is not None else np.zeros(0)

    def leaned_on(self) -> dict[str, float]:
        """Each blended column's share of the blend's weights (the linear blend's columns are
        scaled to their mean over the fitted points, so a weight is that column's share of a
        typical prediction; the log blend's are exponents): the sources, then the analytic costs
        and the target's own layer sum; columns of weight 0 left out."""
        if self.fitted is None:
            return {}
        weights = self.fitted.weights[1:] if isinstance(self.fitted, LinearBlend) else self.fitted.weights
        names = [*self.sources, *self.analytic_costs, *(["own_layer_sum"] if self.own is not None else [])]
        total = float(weights.sum())
        if total <= 0:
            return {}
        shares = {name: float(w) / total for name, w in zip(names, weights) if w > 0}
        return dict(sorted(shares.items(), key=lambda item: -item[1]))

    def source_features(self, archs: Sequence[Architecture]) -> np.ndarray:
        """``(len(archs), columns)``: each source predictor's prediction, then the analytic costs."""
        check_space(self.search_space, archs)
        columns = [np.asarray(s.predict(archs), dtype=np.float64) for s in self.sources.values()]
        return self.with_analytic(np.column_stack(columns) if columns else np.zeros((len(archs), 0)), archs)

    def with_analytic(self, predictions: np.ndarray, archs: Sequence[Architecture]) -> np.ndarray:
        """``predictions`` (one column per source) with the :attr:`analytic_costs` columns
        appended: a benchmark that reuses source predictions across targets builds features so."""
        predictions = np.asarray(predictions, dtype=np.float64)
        if not self.analytic_costs:
            return predictions
        indices = self.search_space.encoding.indices(archs)
        return np.hstack([predictions, self._costs.matrix(archs, indices, self.analytic_costs)])

    def _check_sources(self) -> None:
        if not self.sources:
            raise ValueError(
                "FewShotPredictor needs fitted source predictors (name -> Predictor of other devices); "
                "with hwnas-fit set source_devices=[...]"
            )

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> FewShotPredictor:
        y = check_targets(archs, y, positive=True)
        self._check_sources()
        return self.fit_features(self.source_features(archs), y, archs)

    def _own_fit(self, archs: Sequence[Architecture], y: np.ndarray) -> LayerSumPredictor:
        return LayerSumPredictor(self.search_space, self.device_fingerprint, unseen="kind_mean").fit(archs, y)

    def _own_cross(self, archs: Sequence[Architecture], y: np.ndarray) -> np.ndarray | None:
        """Each point's prediction by a layer sum fitted without it: leave-one-out up to
        :data:`OWN_FOLDS` points, that many folds (point ``j`` in fold ``j % folds``) beyond;
        ``None`` when one cannot be made (a layer kind only its fold has)."""
        folds = np.arange(len(y)) % min(len(y), OWN_FOLDS)
        cross = np.empty(len(y))
        for fold in np.unique(folds):
            held = np.flatnonzero(folds == fold)
            kept = np.flatnonzero(folds != fold)
            try:
                own = self._own_fit([archs[j] for j in kept], y[kept])
                cross[held] = own.predict([archs[j] for j in held])
            except UnseenLayerError:
                return None
        return cross

    def _covers_every_kind(self, own: LayerSumPredictor) -> bool:
        kinds = {own.layer_kind(layer.key) for layer in own.search_space.distinct_layers()}
        return kinds <= {own.layer_kind(key) for key in own.keys}

    def fit_features(
        self, x: np.ndarray, y: np.ndarray, archs: Sequence[Architecture] | None = None
    ) -> FewShotPredictor:
        """:meth:`fit` on precomputed :meth:`source_features` (a benchmark reuses them across
        targets); ``archs`` too when :attr:`own_layer_sum`."""
        self._check_sources()
        if (self.own_layer_sum or self.correct) and archs is None:
            raise ValueError(
                "own_layer_sum=True and correct=True fit the target's architectures: pass archs with the features"
            )
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if len(y) < MIN_TARGETS:
            raise ValueError(f"a few-shot fit needs at least {MIN_TARGETS} target measurements, got {len(y)}")
        columns = len(self.sources) + len(self.analytic_costs)
        if x.shape != (len(y), columns):
            raise ValueError(f"features have shape {x.shape}; expected ({len(y)}, {columns})")
        blend = BLENDS[self.blend]
        k, t = len(y), np.log(y)
        # The target's own layer sum is stacked: its column holds cross-fitted predictions, so the
        # blend weighs it by how it predicts points it did not see (and not at all if it cannot).
        self.own, own_column = None, None
        self.correction = TreeCorrection()
        if self.own_layer_sum and k >= MIN_CALIBRATION:
            assert archs is not None
            own, own_column = self._own_fit(archs, y), self._own_cross(archs, y)
            if own_column is not None and self._covers_every_kind(own):
                self.own = own
        design = x if self.own is None else np.column_stack([x, own_column])
        self.fitted = blend.fit(design, y, self.ridge)
        if k >= MIN_CALIBRATION:
            # Each point predicted by the whole procedure refitted without its fold (the own
            # column included): leave-one-out up to CALIBRATION_FOLDS points, that many folds beyond.
            held_out = np.empty(k)
            folds = np.arange(k) % min(k, CALIBRATION_FOLDS)
            for fold in np.unique(folds):
                keep = folds != fold
                kept, held = design[keep], design[~keep]
                if self.own is not None:
                    assert archs is not None
                    kept_archs = [a for j, a in enumerate(archs) if keep[j]]
                    inner = self._own_cross(kept_archs, y[keep])
                    try:
                        own_held = self._own_fit(kept_archs, y[keep]).predict(
                            [a for j, a in enumerate(archs) if not keep[j]]
                        )
                    except UnseenLayerError:  # a kind only the held points have: keep the outer column
                        inner = None
                    if inner is not None:
                        kept = np.column_stack([x[keep], inner])
                        held = np.column_stack([x[~keep], own_held])
                held_out[~keep] = blend.fit(kept, y[keep], self.ridge).log_predict(held)
            if self.correct:  # the blend's held-out predictions are the trees' out-of-fold base
                assert archs is not None
                self.correction, held_out = TreeCorrection.fit(self.trees, archs, t, held_out)
            residuals, self.calibrated = np.abs(t - held_out), True
        else:
            residuals, self.calibrated = np.abs(t - self.fitted.log_predict(design)), False
        self.factor = conformal_factor(residuals, self.quantile)
        self.n_fit = k
        return self

    def _centre(self, x: np.ndarray, archs: Sequence[Architecture] | None) -> np.ndarray:
        """Log predictions: the blend of ``x`` (and the own layer sum), plus the trees' correction."""
        if self.fitted is None:
            raise RuntimeError("FewShotPredictor used before fit (or load)")
        x = np.asarray(x, dtype=np.float64)
        if (self.own is not None or self.correction.booster is not None) and archs is None:
            raise ValueError("this predictor stacks its own layer sum or corrects by trees: pass the architectures too")
        if self.own is not None:
            assert archs is not None
            x = np.column_stack([x, self.own.predict(archs)])
        centre = self.fitted.log_predict(x)
        if self.correction.booster is not None:
            assert archs is not None
            centre = centre + self.correction.log_correction(self.trees, archs)
        return centre

    def predict_features(self, x: np.ndarray, archs: Sequence[Architecture] | None = None) -> np.ndarray:
        """:meth:`predict` on precomputed :meth:`source_features` (and ``archs`` for the own layer
        sum and the trees)."""
        return np.exp(self._centre(x, archs))

    def interval_features(
        self, x: np.ndarray, archs: Sequence[Architecture] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_interval` on precomputed :meth:`source_features` (and ``archs``)."""
        centre = self._centre(x, archs)
        return np.exp(centre - self.factor), np.exp(centre + self.factor)

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        if self.fitted is None:
            raise RuntimeError("FewShotPredictor.predict before fit (or load)")
        if len(archs) == 0:
            return np.empty(0)
        return self.predict_features(self.source_features(archs), archs)

    def predict_interval(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` meant to cover the measured value with probability ``quantile``
        (conformal on leave-one-out residuals of the k points; see module and :attr:`calibrated`)."""
        if self.fitted is None:
            raise RuntimeError("FewShotPredictor.predict_interval before fit (or load)")
        if len(archs) == 0:
            return np.empty(0), np.empty(0)
        return self.interval_features(self.source_features(archs), archs)

    # persistence

    def save(self, path: Path, embed_sources: bool = True) -> None:
        """Write the fitted blend and, unless ``embed_sources`` is false (a file that keeps the
        sources itself, once for several targets: ``per_deployment``), the sources' own files."""
        if self.fitted is None:
            raise RuntimeError("cannot save a FewShotPredictor that was never fitted")
        arrays, blend_params = self.fitted.stored()
        described: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="hwnas-few-shot-") as scratch:
            for i, (name, source) in enumerate(self.sources.items()):
                if not isinstance(source, StoredPredictor):
                    raise TypeError(
                        f"source {name!r} ({type(source).__name__}) is not a StoredPredictor; cannot embed it"
                    )
                if embed_sources:
                    arrays[f"source_{i}"] = embedded(source, Path(scratch) / f"source_{i}.npz")
                described.append({"name": name, "kind": source.kind, "device_fingerprint": source.device_fingerprint})
            if self.own is not None:
                arrays["own_layer_sum"] = embedded(self.own, Path(scratch) / "own.npz")
        arrays.update(self.correction.arrays())
        self._write(
            path,
            arrays=arrays,
            params={
                "sources": described,
                "blend": self.blend,
                "analytic_costs": list(self.analytic_costs),
                "own_layer_sum": self.own_layer_sum,
                "ridge": self.ridge,
                "quantile": self.quantile,
                "correct": self.correct,
                "seed": self.seed,
                "correction_rounds": self.correction.rounds,
                **blend_params,
                "factor": self.factor,
                "calibrated": self.calibrated,
                "n_fit": self.n_fit,
            },
        )

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        space: SearchSpace,
        device_fingerprint: str,
        sources: Mapping[str, Predictor] | None = None,
    ) -> FewShotPredictor:
        """Read ``path`` and the source predictors embedded in it (each by its family's ``load``),
        or for a file saved without them, take them from ``sources`` by name. A file that names no
        blend was written by the log blend without analytic costs, and reads as one; one whose
        analytic costs this space no longer gives all of is refused."""
        header, arrays = cls._read(path, space, device_fingerprint)
        p = header["params"]
        families = _stored_families()
        given, sources = dict(sources or {}), {}
        with tempfile.TemporaryDirectory(prefix="hwnas-few-shot-") as scratch:
            for i, source in enumerate(p["sources"]):
                if f"source_{i}" not in arrays:
                    if source["name"] not in given:
                        raise ValueError(
                            f"{path}: source {source['name']!r} is not embedded in the file, and was not given"
                        )
                    sources[source["name"]] = given[source["name"]]
                    continue
                family = families.get(source["kind"])
                if family is None:
                    raise ValueError(
                        f"{path}: source {source['name']!r} is a {source['kind']!r} predictor, a family this "
                        f"hwnas does not know (known: {sorted(families)})"
                    )
                sources[source["name"]] = unembedded(
                    family,
                    arrays[f"source_{i}"],
                    Path(scratch) / f"source_{i}.npz",
                    space,
                    source["device_fingerprint"],
                )
            own = None
            if "own_layer_sum" in arrays:
                own = unembedded(
                    LayerSumPredictor, arrays["own_layer_sum"], Path(scratch) / "own.npz", space, device_fingerprint
                )
        blend = p.get("blend", "log")
        if blend not in BLENDS:
            raise ValueError(f"{path}: blend {blend!r} is not one this hwnas knows ({sorted(BLENDS)}); upgrade hwnas")
        recorded = tuple(p.get("analytic_costs", ()))
        predictor = cls(
            space,
            device_fingerprint,
            sources,
            blend=blend,
            analytic=bool(recorded),
            own_layer_sum=p.get("own_layer_sum", False),
            ridge=p["ridge"],
            quantile=p["quantile"],
            correct=p.get("correct", False),  # files written before the trees had none
            seed=p.get("seed", 0),
        )
        predictor.own = own
        predictor.correction = TreeCorrection.from_arrays(arrays, int(p.get("correction_rounds", 0)))
        # Files written before activation traffic was a column name fewer costs: read them so.
        check_recorded(path, space, recorded, tuple(n for n in predictor.analytic_costs if n in recorded))
        predictor.analytic_costs = recorded
        predictor.fitted = BLENDS[blend].from_stored(arrays, p)
        predictor.factor = float(p["factor"])
        predictor.calibrated = bool(p["calibrated"])
        predictor.n_fit = int(p["n_fit"])
        return predictor
