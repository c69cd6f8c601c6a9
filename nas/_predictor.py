"""The predictor interface: a model of one metric of one device over one search space."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nas._architecture import Architecture
from nas._objective import Candidate, Cost, Direction, Objective
from nas._space import SearchSpace


class PredictorMismatchError(ValueError):
    """A predictor used for a space or device it was not trained for."""


class Predictor(ABC):
    """``fit`` on measured architectures, ``predict`` many at once, ``save``/``load`` safely.

    The space and device fingerprint it was trained for travel with it, so a predictor loaded for
    another space or device is refused rather than silently wrong.
    """

    space: str
    device_fingerprint: str

    @abstractmethod
    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> Predictor:
        """Train on architectures and their measured values; returns self."""

    @abstractmethod
    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Predicted values, shape (len(archs),)."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write weights and a JSON header; no pickled code objects."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> Predictor:
        """Read a saved predictor for ``space`` (which its predictions need: layers, FLOPs,
        features), refusing one trained for another space or device."""

    def check_compatible(self, space: str, device_fingerprint: str) -> None:
        if (space, device_fingerprint) != (self.space, self.device_fingerprint):
            raise PredictorMismatchError(
                f"predictor was trained for space {self.space!r}, device {self.device_fingerprint};"
                f" asked for space {space!r}, device {device_fingerprint}"
            )


class IntervalPredictor(Predictor):
    """A predictor that also says how sure it is: a central interval per architecture, calibrated
    on held-out rows (conformal) to hold about ``quantile`` of the measured values."""

    @abstractmethod
    def predict_interval(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` bounds, each shape (len(archs),)."""


class TransferPredictor(Predictor):
    """A predictor for a new device built on fitted predictors of other ("source") devices.

    Its factory takes ``sources`` (name -> fitted :class:`Predictor`) besides ``space`` and
    ``device_fingerprint``. ``nas.fitting`` fits the sources first, on a pool of rows whose
    architectures the target then neither trains nor is tested on (``nas.fit_data``); a fit
    with sources refuses a predictor that is not one, and one that is, without sources."""

    sources: Mapping[str, Predictor]


class PredictedObjective(Objective):
    """An objective answered by a fitted predictor (a lookup-cost call per architecture)."""

    cost = Cost.LOOKUP

    def __init__(self, name: str, predictor: Predictor, direction: Direction = Direction.MINIMIZE) -> None:
        super().__init__(name)
        self.predictor = predictor
        self.direction = Direction(direction)

    def __call__(self, candidate: Candidate) -> float:
        return float(self.predictor.predict([candidate.arch])[0])

    def source(self) -> str:
        return f"predicted {type(self.predictor).__name__} device {self.predictor.device_fingerprint}"
