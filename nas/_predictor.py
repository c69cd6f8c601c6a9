"""The predictor interface: a model of one metric of one device over one search space."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nas._architecture import Architecture
from nas._objective import Candidate, Cost, Direction, Objective
from nas._space import SearchSpace
from nas.errors import HwnasError


class PredictorMismatchError(HwnasError, ValueError):
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

    #: The share of measured values the interval is calibrated to hold (0.9: a 90% interval).
    quantile: float

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

    def leaned_on(self) -> dict[str, float]:
        """Which inputs the fitted predictor leans on: each source's (and any other input's) share
        of the prediction, summing to 1, largest first; empty before fitting. A user onboarding a
        device reads which known devices it resembles."""
        return {}


class PredictedObjective(Objective):
    """An objective answered by a fitted predictor (a lookup-cost call per architecture).

    ``truth``, when given, is what the predictor was fitted to (its table column, or the device
    measured live): a search scores its returned front against it, never the search itself."""

    cost = Cost.LOOKUP

    def __init__(
        self,
        name: str,
        predictor: Predictor,
        direction: Direction | str = Direction.MINIMIZE,
        truth: Objective | None = None,
        space: SearchSpace | None = None,
    ) -> None:
        super().__init__(name)
        self.predictor = predictor
        self.direction = Direction(direction)
        self._truth = truth
        self.space = space

    def arch_of(self, candidate: Candidate) -> Architecture:
        """The candidate as an architecture of the space the predictor was fitted in (``space``):
        read from its string where the search's space is another one writing the same strings (a
        list of the deployments a profile measured, searched with a predictor fitted on it)."""
        if self.space is None or candidate.space is None or candidate.space is self.space:
            return candidate.arch
        return self.space.parse(candidate.arch.string)

    def __call__(self, candidate: Candidate) -> float:
        return float(self.predictor.predict([self.arch_of(candidate)])[0])

    def describe(self) -> str:
        return f"{self.name} predicted by {type(self.predictor).__name__} (device {self.predictor.device_fingerprint})"

    def source(self) -> str:
        return f"predicted {type(self.predictor).__name__} device {self.predictor.device_fingerprint}"

    def truth(self) -> Objective | None:
        return self._truth

    def interval_bound(self, level: str) -> IntervalBound:
        """The end of this predictor's interval named ``level`` (``upper90``: the upper end of its
        90% interval), as an objective a constraint can bound. Refused, naming the predictor and
        its level, for a predictor without intervals or calibrated to another level."""
        side, _, percent = level.partition("er")
        side += "er"
        if side not in ("lower", "upper") or not percent.isdigit():
            raise ValueError(
                f"bound {level!r} of {self.name!r}: use 'value', or upper<percent> / lower<percent> "
                "(e.g. upper90: the upper end of the predictor's 90% interval)"
            )
        predictor = self.predictor
        if not isinstance(predictor, IntervalPredictor):
            raise ValueError(
                f"bound {level!r} of {self.name!r}: {type(predictor).__name__} gives no intervals; use an "
                "interval predictor (boosted_layer_sum, gbdt, mlp, gnn, few_shot) or bound=value"
            )
        calibrated = round(100 * predictor.quantile)
        if int(percent) != calibrated:
            raise ValueError(
                f"bound {level!r} of {self.name!r}: the predictor's intervals are calibrated to hold "
                f"{calibrated}% of measured values; use {side}{calibrated}, or refit with quantile={int(percent) / 100}"
            )
        return IntervalBound(f"{self.name}.{level}", self, upper=side == "upper")


class IntervalBound(Objective):
    """One end of a predicted objective's calibrated interval, for constraints that must still hold
    when measured: ``latency_ms.upper90 <= 5`` keeps networks whose latency is, with about 90%
    confidence (95% for the one-sided bound of a central 90% interval), under 5 ms."""

    cost = Cost.LOOKUP

    def __init__(self, name: str, predicted: PredictedObjective, upper: bool) -> None:
        super().__init__(name)
        self.predicted = predicted
        self.upper = upper
        self.direction = predicted.direction

    def __call__(self, candidate: Candidate) -> float:
        assert isinstance(self.predicted.predictor, IntervalPredictor)
        lower, upper = self.predicted.predictor.predict_interval([self.predicted.arch_of(candidate)])
        return float((upper if self.upper else lower)[0])

    def describe(self) -> str:
        side = "upper" if self.upper else "lower"
        return f"{side} end of the calibrated interval of {self.predicted.describe()}"

    def source(self) -> str:
        return f"{'upper' if self.upper else 'lower'} interval of {self.predicted.source()}"

    def truth(self) -> Objective | None:
        return self.predicted.truth()


def check_one_device(objectives: Sequence[Objective]) -> None:
    """Predicted objectives of one search must model one device: latency from one device's
    predictor and energy from another's would describe no real device. Raises
    :class:`PredictorMismatchError` naming both."""
    seen: dict[str, str] = {}
    for objective in objectives:
        if isinstance(objective, PredictedObjective):
            seen.setdefault(objective.predictor.device_fingerprint, objective.name)
    if len(seen) > 1:
        listed = ", ".join(f"{name} from device {fingerprint}" for fingerprint, name in seen.items())
        raise PredictorMismatchError(
            f"predicted objectives of two devices in one search ({listed}); give predictors fitted on one "
            "device (hwnas-fit runs of the same device.name and table), or search them as separate devices"
        )
