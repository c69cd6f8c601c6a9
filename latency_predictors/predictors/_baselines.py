"""Baseline predictors: a metric as a power law of FLOPs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from latency_predictors.predictors._analytic import AnalyticCosts
from latency_predictors.predictors._common import check_space, check_targets
from latency_predictors.predictors._features import flops_of_layers
from latency_predictors.predictors._format import StoredPredictor
from nas import Architecture, LayeredSpace, SearchSpace


class FlopsPredictor(StoredPredictor):
    """``log y = intercept + slope * log FLOPs``, least squares on measured architectures.

    FLOPs come from the space's own count when it has one (:class:`nas.FlopsSpace`: NB201, FBNet,
    OFA, from the specs, one gather per batch), else summed over its layers (a
    :class:`nas.LayeredSpace`: per-layer counts on built layers, equal to
    :class:`nas.objectives.Flops` on the built network; a Python sum per network, 4,000 OFA
    networks a second). A baseline: latency on most devices is far from a
    function of FLOPs alone.
    """

    kind = "flops_loglinear"
    #: Version of the feature (FLOPs as ``nas.objectives.Flops`` counts them: 2 x MACs).
    FEATURE_VERSION = 1

    def __init__(self, space: SearchSpace, device_fingerprint: str) -> None:
        self.search_space = space
        self._costs = AnalyticCosts(space)
        if "flops" not in self._costs.names and not isinstance(space, LayeredSpace):
            raise TypeError(
                f"FlopsPredictor needs a space that counts FLOPs or lists its layers; {space!r} does neither"
            )
        self.space = space.name
        self.device_fingerprint = device_fingerprint
        self.slope: float | None = None
        self.intercept: float | None = None

    def flops(self, archs: Sequence[Architecture]) -> np.ndarray:
        """FLOPs of each architecture: the space's own count where it has one, else summed over
        the layers."""
        check_space(self.search_space, archs)
        counted = self._costs.flops(archs)
        if counted is not None:
            return counted
        return np.array([flops_of_layers(self.search_space, arch) for arch in archs], dtype=np.float64)

    def _log_flops(self, archs: Sequence[Architecture]) -> np.ndarray:
        return np.log(np.maximum(self.flops(archs), 1.0))

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> FlopsPredictor:
        y = check_targets(archs, y, positive=True)
        x = self._log_flops(archs)
        if np.ptp(x) == 0:
            self.slope, self.intercept = 0.0, float(np.mean(np.log(y)))
        else:
            self.slope, self.intercept = (float(v) for v in np.polyfit(x, np.log(y), 1))
        return self

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        if self.slope is None or self.intercept is None:
            raise RuntimeError("FlopsPredictor.predict before fit (or load)")
        if len(archs) == 0:
            return np.empty(0)
        return np.exp(self.intercept + self.slope * self._log_flops(archs))

    def save(self, path: Path) -> None:
        if self.slope is None or self.intercept is None:
            raise RuntimeError("cannot save a FlopsPredictor that was never fitted")
        self._write(
            path,
            arrays={"coefficients": np.array([self.slope, self.intercept], dtype=np.float64)},
            params={},
        )

    @classmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> FlopsPredictor:
        """Read ``path``; ``space`` is the :class:`SearchSpace` itself (FLOPs of new architectures
        need it), compared by name with the file's."""
        _, arrays = cls._read(path, space, device_fingerprint)
        predictor = cls(space, device_fingerprint)
        predictor.slope, predictor.intercept = (float(v) for v in arrays["coefficients"])
        return predictor
