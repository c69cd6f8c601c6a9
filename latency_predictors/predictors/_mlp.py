"""An ensemble of small MLPs on the space's features, with calibrated prediction intervals.

Features (version 2) are the space's features (:mod:`._features`: one-hot genes, value counts) and the log
of the space's analytic costs (:mod:`._analytic`: FLOPs, parameters, memory traffic, those the
space gives), standardised with the training mean and standard deviation (a constant column keeps
std 1). The target is ``log y``
(``log_target=True``, the default; latencies and energies are > 0 and their errors are
multiplicative), itself standardised. Each of ``members`` MLPs (ReLU hidden layers ``hidden``,
one linear output) is trained full-batch with Adam (``lr``, L2 ``weight_decay``) for ``epochs``
steps on its own bootstrap resample of the fitting rows, drawn with
``numpy.random.default_rng(seed + i)``; its initial weights come from
``torch.Generator().manual_seed(seed + i)``. No global random state is read or changed. The
members are trained together as one batched network (``torch.bmm``; Adam is elementwise, so this
is exactly ``members`` independent trainings) on the CPU. The default ``lr=1e-2`` beat 1e-3 and
3e-3 on nb201 raspi4 and pixel3 (900 rows: Spearman 0.964 vs 0.952, within 10% 58% vs 50%).

Prediction: the mean of the members' outputs in log space, back-transformed with ``exp`` (a
geometric mean of the members). Inference runs in numpy in float32, the precision the members
were trained in, so a saved and reloaded predictor predicts bit-identically; a batch and single
predictions of the same architectures agree to float32 rounding (BLAS may sum a large batch in
another order). float32 took the members' products on 100,000 nb201 rows from 1.19 s to 0.48 s
(2 threads) against float64 arithmetic.

Intervals (:meth:`MLPEnsemblePredictor.predict_interval`) are split-conformal with the ensemble's
spread as the scale. When ``fit`` gets at least :data:`MIN_CALIBRATION_FIT` rows, a fraction
``calibration_fraction`` (default 20%, drawn with ``numpy.random.default_rng([seed, 7919])``) is
held out from training; on those rows, with ``m`` the members' mean and ``s`` their standard
deviation in log space and ``sigma = sqrt(s^2 + floor^2)`` (``floor`` = ``spread_floor`` times
the held-out rows' median ``s``, at least 1e-6), the
score ``|log y - m| / sigma`` is computed and the calibration ``factor`` is its
``ceil((n + 1) * quantile) / n`` empirical quantile (the largest score when that exceeds 1). The
interval is ``exp(m -/+ factor * sigma)``, which covers a fresh row drawn like the held-out ones
with probability >= ``quantile`` (the split-conformal guarantee; marginal, not per row). The
members are *not* retrained on the held-out rows: the factor is valid for exactly the ensemble it
was measured on. With fewer rows nothing is held out, and the factor is the Gaussian
``z_{(1+quantile)/2}`` on the raw spread, marked ``calibrated = False`` (such intervals are
typically far too narrow).

Why ``spread_floor = 1`` (it was 0.1): a score divided by a small spread is heavy-tailed, and the
90% quantile of 180 such scores swings with the draw of the calibration rows. Measured on nb201
(900 rows, seeds 0-4, titan_rtx_1 / 2080ti_1 / raspi4), coverage of the other 14,725 rows ranged
0.843-0.918 / 0.868-0.934 / 0.885-0.906 with 0.1 and 0.884-0.912 / 0.877-0.925 / 0.874-0.912 with
1, whose intervals are also 11-19% narrower (the floor keeps rows the members happen to agree
on from getting an unearned narrow interval, so the factor needs no inflating for them).

With ``log_target=False`` the same is done on ``y`` itself (no logs, no ``exp``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np

from latency_predictors.predictors._analytic import AnalyticCosts, check_recorded
from latency_predictors.predictors._baselines import check_space, check_targets, conformal_factor
from latency_predictors.predictors._features import feature_matrix
from latency_predictors.predictors._format import StoredPredictor
from nas import Architecture, IntervalPredictor, SearchSpace

#: Fewest rows ``fit`` needs to hold some out for calibrating intervals.
MIN_CALIBRATION_FIT = 20


class MLPEnsemblePredictor(StoredPredictor, IntervalPredictor):
    """A bootstrap ensemble of MLPs on the space's features with split-conformal intervals (see module)."""

    kind = "mlp_ensemble"
    #: Version of the features: ``_features.feature_matrix``, then (2) the log analytic costs.
    FEATURE_VERSION = 2
    USES_SPACE_FEATURES = True

    def __init__(
        self,
        space: SearchSpace,
        device_fingerprint: str,
        members: int = 5,
        hidden: Sequence[int] = (128, 128),
        epochs: int = 300,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        seed: int = 0,
        log_target: bool = True,
        quantile: float = 0.9,
        calibration_fraction: float = 0.2,
        spread_floor: float = 1.0,
    ) -> None:
        if int(members) < 1:
            raise ValueError(f"members must be >= 1, got {members!r}")
        if any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {tuple(hidden)!r}")
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
        self.hidden = tuple(int(h) for h in hidden)
        self.epochs = int(epochs)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.seed = int(seed)
        self.log_target = bool(log_target)
        self.quantile = float(quantile)
        self.calibration_fraction = float(calibration_fraction)
        self.spread_floor = float(spread_floor)
        self._costs = AnalyticCosts(space)
        self.analytic_costs = self._costs.names
        # fitted state
        self.feature_mean: np.ndarray | None = None
        self.feature_std: np.ndarray | None = None
        self.target_mean = 0.0
        self.target_std = 1.0
        self.weights: list[np.ndarray] = []  # per layer, (members, fan_in, fan_out) float32
        self.biases: list[np.ndarray] = []  # per layer, (members, fan_out) float32
        self.factor = 1.0
        self.sigma_floor = 1e-6
        self.calibrated = False
        self.n_fit = 0
        self.n_calibration = 0

    # features and targets

    def _features(self, archs: Sequence[Architecture]) -> np.ndarray:
        check_space(self.search_space, archs)
        indices = self.search_space.encoding.indices(archs)
        costs = self._costs.matrix(archs, indices, self.analytic_costs)
        return np.hstack(
            [feature_matrix(self.search_space, indices), np.log1p(np.maximum(costs, 0.0)).astype(np.float32)]
        )

    def _transform(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.log_target else y

    def _untransform(self, t: np.ndarray) -> np.ndarray:
        return np.exp(t) if self.log_target else t

    # training

    def _train(self, x: np.ndarray, t: np.ndarray) -> None:
        """Train all members on standardised ``x`` and ``t`` (float64 arrays)."""
        import torch

        n, d = x.shape
        dims = [d, *self.hidden, 1]
        rows = np.stack([np.random.default_rng(self.seed + i).integers(0, n, size=n) for i in range(self.members)])
        inputs = torch.from_numpy(x[rows].astype(np.float32))  # (members, n, d)
        targets = torch.from_numpy(t[rows].astype(np.float32))[..., None]  # (members, n, 1)
        weights: list[list[torch.Tensor]] = [[] for _ in dims[1:]]
        biases: list[list[torch.Tensor]] = [[] for _ in dims[1:]]
        for i in range(self.members):
            generator = torch.Generator().manual_seed(self.seed + i)
            for layer, (fan_in, fan_out) in enumerate(pairwise(dims)):
                bound = 1.0 / math.sqrt(fan_in)  # torch.nn.Linear's default initialisation
                weights[layer].append((torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound)
                biases[layer].append((torch.rand(1, fan_out, generator=generator) * 2 - 1) * bound)
        params_w = [torch.stack(w).requires_grad_() for w in weights]
        params_b = [torch.stack(b).requires_grad_() for b in biases]
        optimizer = torch.optim.Adam([*params_w, *params_b], lr=self.lr, weight_decay=self.weight_decay)
        last = len(params_w) - 1
        for _ in range(self.epochs):
            optimizer.zero_grad(set_to_none=True)
            h = inputs
            for layer, (w, b) in enumerate(zip(params_w, params_b)):
                h = torch.baddbmm(b, h, w)
                if layer < last:
                    h = torch.relu(h)
            # the sum over members of each member's mean squared error: independent gradients
            loss = ((h - targets) ** 2).mean(dim=(1, 2)).sum()
            loss.backward()
            optimizer.step()
        self.weights = [w.detach().numpy().astype(np.float32) for w in params_w]
        self.biases = [b.detach().numpy()[:, 0, :].astype(np.float32) for b in params_b]

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> MLPEnsemblePredictor:
        y = check_targets(archs, y, positive=self.log_target)
        features = self._features(archs)
        t = self._transform(y)
        n = len(archs)
        if n >= MIN_CALIBRATION_FIT:
            order = np.random.default_rng([self.seed, 7919]).permutation(n)
            held = max(2, round(self.calibration_fraction * n))
            calibration, train = np.sort(order[:held]), np.sort(order[held:])
        else:
            calibration, train = np.empty(0, dtype=np.int64), np.arange(n)
        mean = features[train].mean(axis=0, dtype=np.float64)
        std = features[train].std(axis=0, dtype=np.float64)
        self.feature_mean = mean
        self.feature_std = np.where(std > 0, std, 1.0)
        self.target_mean = float(t[train].mean())
        target_std = float(t[train].std())
        self.target_std = target_std if target_std > 0 else 1.0
        self._train(
            self._standardise(features[train].astype(np.float64)), (t[train] - self.target_mean) / self.target_std
        )
        self.n_fit, self.n_calibration = len(train), len(calibration)
        if len(calibration):
            outputs = self._member_outputs(self._standardise(features[calibration]))
            centre, spread = outputs.mean(axis=0), outputs.std(axis=0)
            self.sigma_floor = max(self.spread_floor * float(np.median(spread)), 1e-6)
            sigma = np.sqrt(spread**2 + self.sigma_floor**2)
            self.factor = conformal_factor(np.abs(t[calibration] - centre) / sigma, self.quantile)
            self.calibrated = True
        else:
            from scipy.stats import norm

            self.sigma_floor = 1e-6
            self.factor = float(norm.ppf((1 + self.quantile) / 2))
            self.calibrated = False
        return self

    # inference

    def _standardise(self, features: np.ndarray) -> np.ndarray:
        assert self.feature_mean is not None and self.feature_std is not None
        if features.shape[1] != len(self.feature_mean):
            raise ValueError(
                f"{self.space} features have {features.shape[1]} columns; this predictor was "
                f"trained on {len(self.feature_mean)}"
            )
        dtype = features.dtype  # float64 for training, float32 for inference
        return (features - self.feature_mean.astype(dtype)) / self.feature_std.astype(dtype)

    def _member_outputs(self, x: np.ndarray) -> np.ndarray:
        """Each member's prediction in (untransformed-back) target space: (members, n)."""
        outputs = np.empty((self.members, len(x)), dtype=np.float32)
        last = len(self.weights) - 1
        for member in range(self.members):  # 2-D products: BLAS (a stacked matmul may not be)
            h = x
            for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
                h = h @ w[member] + b[member]
                if layer < last:
                    np.maximum(h, 0.0, out=h)
            outputs[member] = h[:, 0]
        return self.target_mean + self.target_std * outputs.astype(np.float64)

    def _check_fitted(self, what: str) -> None:
        if not self.weights:
            raise RuntimeError(f"MLPEnsemblePredictor.{what} before fit (or load)")

    def member_predictions(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Every member's prediction in the transformed (log) space: (members, len(archs))."""
        self._check_fitted("member_predictions")
        if len(archs) == 0:
            return np.empty((self.members, 0))
        return self._member_outputs(self._standardise(self._features(archs)))

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
        assert self.feature_mean is not None and self.feature_std is not None
        arrays: dict[str, np.ndarray] = {
            "feature_mean": self.feature_mean.astype(np.float64),
            "feature_std": self.feature_std.astype(np.float64),
        }
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"layer{layer}_weight"] = w.astype(np.float32)
            arrays[f"layer{layer}_bias"] = b.astype(np.float32)
        self._write(
            path,
            arrays=arrays,
            params={
                "members": self.members,
                "hidden": list(self.hidden),
                "epochs": self.epochs,
                "lr": self.lr,
                "weight_decay": self.weight_decay,
                "seed": self.seed,
                "log_target": self.log_target,
                "quantile": self.quantile,
                "calibration_fraction": self.calibration_fraction,
                "spread_floor": self.spread_floor,
                "analytic_costs": list(self.analytic_costs),
                "target_mean": self.target_mean,
                "target_std": self.target_std,
                "factor": self.factor,
                "sigma_floor": self.sigma_floor,
                "calibrated": self.calibrated,
                "n_fit": self.n_fit,
                "n_calibration": self.n_calibration,
                "layers": len(self.weights),
            },
        )

    @classmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> MLPEnsemblePredictor:
        """Read ``path``; ``space`` is the :class:`SearchSpace` itself (its ``features`` are
        needed), compared by name with the file's."""
        header, arrays = cls._read(path, space, device_fingerprint)
        p = header["params"]
        predictor = cls(
            space,
            device_fingerprint,
            members=p["members"],
            hidden=p["hidden"],
            epochs=p["epochs"],
            lr=p["lr"],
            weight_decay=p["weight_decay"],
            seed=p["seed"],
            log_target=p["log_target"],
            quantile=p["quantile"],
            calibration_fraction=p["calibration_fraction"],
            spread_floor=p.get("spread_floor", 0.1),  # files before the option used 0.1
        )
        check_recorded(path, space, p["analytic_costs"], predictor.analytic_costs)
        predictor.feature_mean = np.asarray(arrays["feature_mean"], dtype=np.float64)
        predictor.feature_std = np.asarray(arrays["feature_std"], dtype=np.float64)
        predictor.weights = [np.asarray(arrays[f"layer{i}_weight"]) for i in range(p["layers"])]
        predictor.biases = [np.asarray(arrays[f"layer{i}_bias"]) for i in range(p["layers"])]
        predictor.target_mean = float(p["target_mean"])
        predictor.target_std = float(p["target_std"])
        predictor.factor = float(p["factor"])
        predictor.sigma_floor = float(p["sigma_floor"])
        predictor.calibrated = bool(p["calibrated"])
        predictor.n_fit, predictor.n_calibration = int(p["n_fit"]), int(p["n_calibration"])
        return predictor
