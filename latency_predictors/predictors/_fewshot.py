"""Few-shot predictors for a new device: a non-negative blend of other devices' predictors.

HELP's goal (NeurIPS 2021): predict a device nobody has profiled from ``k ~ 10`` measured
architectures, using what other ("source") devices taught us. Here the sources are ordinary
fitted predictors (one per source device, e.g. :class:`GradientBoostingPredictor` trained on that
device's measurements of a pretraining pool), and adapting to the target is a tiny linear model
on their log predictions::

    log y(a) ~ intercept + sum_s w_s * (log source_s(a) - mean_k log source_s),   w_s >= 0

fitted by non-negative least squares on the ``k`` target measurements (optionally with a ridge on
``w``, off by default). Why this and not more: with ``k = 10`` the adaptation can only afford a
handful of effective parameters. Non-negativity is the strong regulariser: a device's latency is
"made of" the kinds of cost other devices pay (compute, memory, launch overhead), so it is
modelled as a mix of them; NNLS then picks a sparse subset by itself. Measured leave-one-device-out
(scripts/bench_few_shot.py, k=10, 3 seeds) it beat the best-correlated single source, the mean
source, free-sign ridge at fixed strength and leave-one-out-selected ridge/NNLS on the nb201 and
fbnet tables; see that script's docstring for the numbers and where it falls short.

Predictions only ever use the source *predictors*: the source devices' measurements of an
architecture being predicted are never read (the caller keeps pretraining pool and test rows
apart; hwnas-fit and the benchmark do).

Intervals (:meth:`FewShotPredictor.predict_interval`): split-free conformal on leave-one-out
residuals of the adaptation (each of the ``k`` points refitted without itself, the source
predictors fixed): ``factor`` = the ``ceil((k + 1) q) / k`` empirical quantile of ``|log y -
loo prediction|``, interval ``exp(centre -/+ factor)``. With ``k = 10`` and ``q = 0.9`` that is
the largest residual. Measured coverage is in scripts/bench_few_shot.py's output (it is a
statement about k exchangeable points, so it varies a lot from one draw of 10 to another).

Saving embeds each source predictor's own saved file (its bytes as a uint8 array) in this file,
so one file holds everything and stays pickle-free; the header records each source's name, kind
and device fingerprint. Loading writes each back to a temporary file and calls the ``load`` of the
:class:`StoredPredictor` family whose ``kind`` it names.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from latency_predictors.predictors._baselines import check_space, check_targets
from latency_predictors.predictors._format import StoredPredictor
from nas import Architecture, Predictor, SearchSpace

#: Source predictions are floored here before the log (a layer-sum model can predict 0).
_FLOOR = 1e-9
#: Fewest target measurements :meth:`FewShotPredictor.fit` accepts (a slope needs two points).
MIN_TARGETS = 2
#: Fewest target measurements for leave-one-out calibrated intervals.
MIN_CALIBRATION = 3


def _conformal_factor(scores: np.ndarray, quantile: float) -> float:
    n = len(scores)
    rank = math.ceil((n + 1) * quantile)
    return float(np.sort(scores)[min(rank, n) - 1])


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


def _blend(z: np.ndarray, t: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``(z_mean, w, t_mean)``: NNLS of centred ``t`` on centred ``z`` with ``ridge * |w|^2``."""
    z_mean, t_mean = z.mean(axis=0), float(t.mean())
    x = z - z_mean
    if ridge > 0:
        x = np.vstack([x, math.sqrt(ridge) * np.eye(x.shape[1])])
    target = np.concatenate([t - t_mean, np.zeros(x.shape[0] - len(t))])
    weights, _ = nnls(x, target)
    return z_mean, weights, t_mean


class FewShotPredictor(StoredPredictor):
    """A new device from ``k`` measurements: NNLS blend of source predictors in log space (see module)."""

    kind = "few_shot"
    #: Version of the features: the log predictions of the source predictors, in their order.
    FEATURE_VERSION = 1

    def __init__(
        self,
        space: SearchSpace,
        device_fingerprint: str,
        sources: Mapping[str, Predictor] | None = None,
        ridge: float = 0.0,
        quantile: float = 0.9,
    ) -> None:
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
        self.ridge = float(ridge)
        self.quantile = float(quantile)
        # fitted state
        self.z_mean: np.ndarray | None = None
        self.weights = np.zeros(len(self.sources))
        self.t_mean = 0.0
        self.factor = 0.0
        self.calibrated = False
        self.n_fit = 0

    def source_features(self, archs: Sequence[Architecture]) -> np.ndarray:
        """``(len(archs), n_sources)``: log of each source predictor's prediction."""
        check_space(self.search_space, archs)
        columns = [np.asarray(s.predict(archs), dtype=np.float64) for s in self.sources.values()]
        return np.log(np.maximum(np.column_stack(columns), _FLOOR))

    def _check_sources(self) -> None:
        if not self.sources:
            raise ValueError(
                "FewShotPredictor needs fitted source predictors (name -> Predictor of other devices); "
                "with hwnas-fit set source_devices=[...]"
            )

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> FewShotPredictor:
        y = check_targets(archs, y, positive=True)
        self._check_sources()
        return self.fit_features(self.source_features(archs), y)

    def fit_features(self, z: np.ndarray, y: np.ndarray) -> FewShotPredictor:
        """:meth:`fit` on precomputed :meth:`source_features` (a benchmark reuses them across targets)."""
        self._check_sources()
        z, y = np.asarray(z, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if len(y) < MIN_TARGETS:
            raise ValueError(f"a few-shot fit needs at least {MIN_TARGETS} target measurements, got {len(y)}")
        if z.shape != (len(y), len(self.sources)):
            raise ValueError(f"features have shape {z.shape}; expected ({len(y)}, {len(self.sources)})")
        t = np.log(y)
        self.z_mean, self.weights, self.t_mean = _blend(z, t, self.ridge)
        k = len(t)
        if k >= MIN_CALIBRATION:
            loo = np.empty(k)
            for i in range(k):
                keep = np.arange(k) != i
                z_mean, w, t_mean = _blend(z[keep], t[keep], self.ridge)
                loo[i] = t_mean + (z[i] - z_mean) @ w
            residuals, self.calibrated = np.abs(t - loo), True
        else:
            residuals, self.calibrated = np.abs(t - self._centre(z)), False
        self.factor = _conformal_factor(residuals, self.quantile)
        self.n_fit = k
        return self

    def _centre(self, z: np.ndarray) -> np.ndarray:
        if self.z_mean is None:
            raise RuntimeError("FewShotPredictor used before fit (or load)")
        return self.t_mean + (z - self.z_mean) @ self.weights

    def predict_features(self, z: np.ndarray) -> np.ndarray:
        """:meth:`predict` on precomputed :meth:`source_features`."""
        return np.exp(self._centre(np.asarray(z, dtype=np.float64)))

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        if self.z_mean is None:
            raise RuntimeError("FewShotPredictor.predict before fit (or load)")
        if len(archs) == 0:
            return np.empty(0)
        return self.predict_features(self.source_features(archs))

    def predict_interval(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` meant to cover the measured value with probability ``quantile``
        (conformal on leave-one-out residuals of the k points; see module and :attr:`calibrated`)."""
        if self.z_mean is None:
            raise RuntimeError("FewShotPredictor.predict_interval before fit (or load)")
        if len(archs) == 0:
            return np.empty(0), np.empty(0)
        centre = self._centre(self.source_features(archs))
        return np.exp(centre - self.factor), np.exp(centre + self.factor)

    # persistence

    def save(self, path: Path) -> None:
        if self.z_mean is None:
            raise RuntimeError("cannot save a FewShotPredictor that was never fitted")
        arrays: dict[str, np.ndarray] = {"z_mean": self.z_mean, "weights": self.weights}
        described: list[dict[str, Any]] = []
        with tempfile.TemporaryDirectory(prefix="hwnas-few-shot-") as scratch:
            for i, (name, source) in enumerate(self.sources.items()):
                if not isinstance(source, StoredPredictor):
                    raise TypeError(f"source {name!r} ({type(source).__name__}) is not a StoredPredictor; cannot embed it")
                file = Path(scratch) / f"source_{i}.npz"
                source.save(file)
                arrays[f"source_{i}"] = np.frombuffer(file.read_bytes(), dtype=np.uint8).copy()
                described.append({"name": name, "kind": source.kind, "device_fingerprint": source.device_fingerprint})
        self._write(
            path,
            arrays=arrays,
            params={
                "sources": described,
                "ridge": self.ridge,
                "quantile": self.quantile,
                "t_mean": self.t_mean,
                "factor": self.factor,
                "calibrated": self.calibrated,
                "n_fit": self.n_fit,
            },
        )

    @classmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> FewShotPredictor:
        """Read ``path`` and the source predictors embedded in it (each by its family's ``load``)."""
        header, arrays = cls._read(path, space, device_fingerprint)
        p = header["params"]
        families = _stored_families()
        sources: dict[str, Predictor] = {}
        with tempfile.TemporaryDirectory(prefix="hwnas-few-shot-") as scratch:
            for i, source in enumerate(p["sources"]):
                family = families.get(source["kind"])
                if family is None:
                    raise ValueError(
                        f"{path}: source {source['name']!r} is a {source['kind']!r} predictor, a family this "
                        f"hwnas does not know (known: {sorted(families)})"
                    )
                file = Path(scratch) / f"source_{i}.npz"
                file.write_bytes(np.asarray(arrays[f"source_{i}"], dtype=np.uint8).tobytes())
                sources[source["name"]] = family.load(file, space=space, device_fingerprint=source["device_fingerprint"])
        predictor = cls(space, device_fingerprint, sources, ridge=p["ridge"], quantile=p["quantile"])
        predictor.z_mean = np.asarray(arrays["z_mean"], dtype=np.float64)
        predictor.weights = np.asarray(arrays["weights"], dtype=np.float64)
        predictor.t_mean = float(p["t_mean"])
        predictor.factor = float(p["factor"])
        predictor.calibrated = bool(p["calibrated"])
        predictor.n_fit = int(p["n_fit"])
        return predictor
