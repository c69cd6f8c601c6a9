"""The ensemble + conformal skeleton of the network families (:mod:`._mlp`, :mod:`._gnn`).

A family subclasses :class:`EnsemblePredictor` and gives only what differs: its inputs (how
architectures become arrays, and their scaling fitted on the training rows), its network (how
``members`` copies are trained together and run), and what of them its file holds. This module
does the rest, the same way for every family:

Targets are ``log y`` (``log_target=True``, the default; latencies and energies are > 0 and their
errors are multiplicative), or ``y`` itself, standardised with the training rows' mean and
standard deviation. Members are trained together (Adam is elementwise, so a stacked training is
exactly ``members`` independent ones), member ``i`` from initial weights drawn by
:func:`initial_layers` with ``torch.Generator().manual_seed(seed + i)``; each family draws its
members' rows (the MLP: bootstrap resamples; the GCN: the order of its mini-batches). No global
random state is read or changed. A prediction is the mean of the members' outputs in the
transformed space, back-transformed with ``exp`` (a geometric mean of the members).

Intervals (:meth:`EnsemblePredictor.predict_interval`) are split-conformal with the ensemble's
spread as the scale. When ``fit`` gets at least :data:`MIN_CALIBRATION_FIT` rows, a fraction
``calibration_fraction`` (default 20%, drawn with ``numpy.random.default_rng([seed, 7919])``) is
held out from training (:func:`calibration_split`); on those rows, with ``m`` the members' mean
and ``s`` their standard deviation in log space and ``sigma = sqrt(s^2 + floor^2)`` (``floor`` =
``spread_floor`` times the held-out rows' median ``s``, at least 1e-6), the score
``|log y - m| / sigma`` is computed and the calibration ``factor`` is its
``ceil((n + 1) * quantile) / n`` empirical quantile (the largest score when that exceeds 1). The
interval is ``exp(m -/+ factor * sigma)``, which covers a fresh row drawn like the held-out ones
with probability >= ``quantile`` (the split-conformal guarantee; marginal, not per row). The
members are *not* retrained on the held-out rows: the factor is valid for exactly the ensemble it
was measured on. With fewer rows nothing is held out, and the factor is the Gaussian
``z_{(1+quantile)/2}`` on the raw spread, marked ``calibrated = False`` (such intervals are
typically far too narrow). With ``log_target=False`` the same is done on ``y`` itself.

The file holds the family's arrays, then each layer's stacked members, ``layer{i}_weight``
(members, fan_in, fan_out) and ``layer{i}_bias`` (members, fan_out), float32, the precision the
members were trained in: inference is numpy float32 arithmetic, so a reloaded predictor predicts
bit-identically. Its params hold the settings (the shared ones and the family's
:attr:`~EnsemblePredictor.FAMILY_SETTINGS`), the target scaling and the calibration.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import numpy as np

from latency_predictors.predictors._common import check_targets, conformal_factor
from latency_predictors.predictors._format import StoredPredictor
from nas import Architecture, IntervalPredictor, SearchSpace

if TYPE_CHECKING:
    import torch

__all__ = ["MIN_CALIBRATION_FIT", "EnsemblePredictor", "calibration_split", "initial_layers"]

#: Fewest rows ``fit`` needs to hold some out for calibrating intervals.
MIN_CALIBRATION_FIT = 20
#: The spread floor of files written before a family made it a setting.
SPREAD_FLOOR_BEFORE_SETTING = 0.1

#: What a family's network reads: the MLP a feature matrix, the GCN a batch of graphs.
Inputs = TypeVar("Inputs")


def calibration_split(n: int, seed: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(calibration, train)`` row indices of ``n`` rows: ``max(2, round(fraction * n))``
    held out (drawn with ``default_rng([seed, 7919])``) when ``n >= MIN_CALIBRATION_FIT``, else
    none."""
    if n < MIN_CALIBRATION_FIT:
        return np.empty(0, dtype=np.int64), np.arange(n)
    order = np.random.default_rng([seed, 7919]).permutation(n)
    held = max(2, round(fraction * n))
    return np.sort(order[:held]), np.sort(order[held:])


def initial_layers(dims: Sequence[int], members: int, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Initial weights of ``members`` networks of dense layers of widths ``dims``, as
    ``torch.nn.Linear`` initialises them (uniform within ``1/sqrt(fan_in)``), member ``i`` drawn
    from ``torch.Generator().manual_seed(seed + i)``; stacked over members: weights (members,
    fan_in, fan_out) and biases (members, fan_out) per layer."""
    import torch

    weights: list[list[torch.Tensor]] = [[] for _ in dims[1:]]
    biases: list[list[torch.Tensor]] = [[] for _ in dims[1:]]
    for member in range(members):
        generator = torch.Generator().manual_seed(seed + member)
        for layer, (fan_in, fan_out) in enumerate(pairwise(dims)):
            bound = 1.0 / math.sqrt(fan_in)
            weights[layer].append((torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound)
            biases[layer].append((torch.rand(fan_out, generator=generator) * 2 - 1) * bound)
    return [torch.stack(w) for w in weights], [torch.stack(b) for b in biases]


class EnsemblePredictor(StoredPredictor, IntervalPredictor, Generic[Inputs]):
    """``members`` networks on a family's inputs with split-conformal intervals (see module).

    A family implements :meth:`_fit_inputs`, :meth:`_inputs`, :meth:`_rows`, :meth:`_train`,
    :meth:`_outputs`, :meth:`_family_state` and :meth:`_restore_family_state`, and lists its own
    constructor arguments in :attr:`FAMILY_SETTINGS` (saved in the file and passed back by
    :meth:`load`).
    """

    #: The shared constructor arguments, saved in the file's params.
    SETTINGS: ClassVar[tuple[str, ...]] = (
        "members",
        "epochs",
        "lr",
        "weight_decay",
        "seed",
        "log_target",
        "quantile",
        "calibration_fraction",
        "spread_floor",
    )
    #: The family's own constructor arguments, saved in the file's params.
    FAMILY_SETTINGS: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        space: SearchSpace,
        device_fingerprint: str,
        *,
        members: int,
        epochs: int,
        lr: float,
        weight_decay: float,
        seed: int,
        log_target: bool,
        quantile: float,
        calibration_fraction: float,
        spread_floor: float,
    ) -> None:
        if int(members) < 1:
            raise ValueError(f"members must be >= 1, got {members!r}")
        if int(epochs) < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs!r}")
        if not 0 < quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {quantile!r}")
        if not 0 < calibration_fraction < 1:
            raise ValueError(f"calibration_fraction must be in (0, 1), got {calibration_fraction!r}")
        if not spread_floor >= 0:
            raise ValueError(f"spread_floor must be >= 0, got {spread_floor!r}")
        if not lr > 0 or not weight_decay >= 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0, got {lr!r}, {weight_decay!r}")
        self.search_space = space
        self.space = space.name
        self.device_fingerprint = device_fingerprint
        self.members = int(members)
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.seed = int(seed)
        self.log_target = bool(log_target)
        self.quantile = float(quantile)
        self.calibration_fraction = float(calibration_fraction)
        self.spread_floor = float(spread_floor)
        # fitted state
        self.target_mean, self.target_std = 0.0, 1.0
        self.weights: list[np.ndarray] = []  # per layer (members, fan_in, fan_out) float32
        self.biases: list[np.ndarray] = []  # per layer (members, fan_out) float32
        self.factor, self.sigma_floor, self.calibrated = 1.0, 1e-6, False
        self.n_fit = self.n_calibration = 0

    # what a family gives

    @abstractmethod
    def _fit_inputs(self, archs: Sequence[Architecture], train: np.ndarray) -> Inputs:
        """The inputs of ``archs`` (refusing another space's), after fitting the family's input
        scaling on the ``train`` rows."""

    @abstractmethod
    def _inputs(self, archs: Sequence[Architecture]) -> Inputs:
        """The inputs of ``archs`` for prediction (refusing another space's)."""

    @abstractmethod
    def _rows(self, inputs: Inputs, rows: np.ndarray) -> Inputs:
        """The inputs of some rows."""

    @abstractmethod
    def _train(self, inputs: Inputs, t: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The members trained on ``inputs`` and standardised targets ``t``: float32 weights
        (members, fan_in, fan_out) and biases (members, fan_out) per layer."""

    @abstractmethod
    def _outputs(self, inputs: Inputs) -> np.ndarray:
        """The members' standardised outputs, float32 (members, rows)."""

    @abstractmethod
    def _family_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The fitted arrays and params the family adds to its file."""

    @abstractmethod
    def _restore_family_state(self, path: Path, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> None:
        """Set the family's fitted state from a file's arrays and params (refusing what does
        not fit this space)."""

    # targets

    def _transform(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.log_target else y

    def _untransform(self, t: np.ndarray) -> np.ndarray:
        return np.exp(t) if self.log_target else t

    # training and calibration

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> Self:
        y = check_targets(archs, y, positive=self.log_target)
        t = self._transform(y)
        calibration, train = calibration_split(len(archs), self.seed, self.calibration_fraction)
        inputs = self._fit_inputs(archs, train)
        self.target_mean = float(t[train].mean())
        target_std = float(t[train].std())
        self.target_std = target_std if target_std > 0 else 1.0
        self.weights, self.biases = self._train(
            self._rows(inputs, train), (t[train] - self.target_mean) / self.target_std
        )
        self.n_fit, self.n_calibration = len(train), len(calibration)
        if len(calibration):
            self._calibrate(self._member_outputs(self._rows(inputs, calibration)), t[calibration])
        else:
            from scipy.stats import norm

            self.sigma_floor, self.calibrated = 1e-6, False
            self.factor = float(norm.ppf((1 + self.quantile) / 2))
        return self

    def _calibrate(self, outputs: np.ndarray, t: np.ndarray) -> None:
        """Set the spread floor and the conformal factor from the members' ``outputs`` (members,
        rows) on held-out rows and those rows' transformed targets ``t``."""
        centre, spread = outputs.mean(axis=0), outputs.std(axis=0)
        self.sigma_floor = max(self.spread_floor * float(np.median(spread)), 1e-6)
        sigma = np.sqrt(spread**2 + self.sigma_floor**2)
        self.factor = conformal_factor(np.abs(t - centre) / sigma, self.quantile)
        self.calibrated = True

    # inference

    def _member_outputs(self, inputs: Inputs) -> np.ndarray:
        """Each member's prediction in the transformed (log) target space: (members, rows)."""
        return self.target_mean + self.target_std * self._outputs(inputs).astype(np.float64)

    def _check_fitted(self, what: str) -> None:
        if not self.weights:
            raise RuntimeError(f"{type(self).__name__}.{what} before fit (or load)")

    def member_predictions(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Every member's prediction in the transformed (log) space: (members, len(archs))."""
        self._check_fitted("member_predictions")
        if len(archs) == 0:
            return np.empty((self.members, 0))
        return self._member_outputs(self._inputs(archs))

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        self._check_fitted("predict")
        if len(archs) == 0:
            return np.empty(0)
        return self._untransform(self.member_predictions(archs).mean(axis=0))

    def predict_interval(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` bounds meant to cover the measured value with probability
        ``quantile`` (calibrated on held-out rows; see module and :attr:`calibrated`)."""
        self._check_fitted("predict_interval")
        if len(archs) == 0:
            return np.empty(0), np.empty(0)
        outputs = self.member_predictions(archs)
        centre = outputs.mean(axis=0)
        sigma = np.sqrt(outputs.std(axis=0) ** 2 + self.sigma_floor**2)
        return (
            self._untransform(centre - self.factor * sigma),
            self._untransform(centre + self.factor * sigma),
        )

    # persistence

    def save(self, path: Path) -> None:
        self._check_fitted("save")
        arrays, params = self._family_state()
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"layer{layer}_weight"] = w.astype(np.float32)
            arrays[f"layer{layer}_bias"] = b.astype(np.float32)
        settings = {name: getattr(self, name) for name in (*self.SETTINGS, *self.FAMILY_SETTINGS)}
        fitted = {
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "factor": self.factor,
            "sigma_floor": self.sigma_floor,
            "calibrated": self.calibrated,
            "n_fit": self.n_fit,
            "n_calibration": self.n_calibration,
        }
        self._write(path, arrays=arrays, params={**settings, **params, **fitted})

    @classmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> Self:
        """Read ``path``; ``space`` is the :class:`SearchSpace` itself (the family's inputs are
        computed from it), compared by name with the file's."""
        header, arrays = cls._read(path, space, device_fingerprint)
        p = header["params"]
        settings = {name: p[name] for name in (*cls.SETTINGS, *cls.FAMILY_SETTINGS) if name != "spread_floor"}
        spread_floor = p.get("spread_floor", SPREAD_FLOOR_BEFORE_SETTING)
        predictor = cls(space, device_fingerprint, **settings, spread_floor=spread_floor)
        predictor._restore_family_state(Path(path), arrays, p)
        depth = 0
        while f"layer{depth}_weight" in arrays:
            depth += 1
        predictor.weights = [np.asarray(arrays[f"layer{i}_weight"]) for i in range(depth)]
        predictor.biases = [np.asarray(arrays[f"layer{i}_bias"]) for i in range(depth)]
        predictor.target_mean, predictor.target_std = float(p["target_mean"]), float(p["target_std"])
        predictor.factor, predictor.sigma_floor = float(p["factor"]), float(p["sigma_floor"])
        predictor.calibrated = bool(p["calibrated"])
        predictor.n_fit, predictor.n_calibration = int(p["n_fit"]), int(p["n_calibration"])
        return predictor
