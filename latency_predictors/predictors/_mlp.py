"""An ensemble of small MLPs on the space's features, with calibrated prediction intervals.

Features (version 2) are the space's features (:mod:`._features`: one-hot genes, value counts) and the log
of the space's analytic costs (:mod:`._analytic`: FLOPs, parameters, memory traffic, those the
space gives), standardised with the training mean and standard deviation (a constant column keeps
std 1). Each of ``members`` MLPs (ReLU hidden layers ``hidden``, one linear output) is trained
full-batch with Adam (``lr``, L2 ``weight_decay``) for ``epochs`` steps on its own bootstrap
resample of the fitting rows, drawn with ``numpy.random.default_rng(seed + i)``. The members are
trained together as one batched network (``torch.bmm``) on the CPU. The default ``lr=1e-2`` beat
1e-3 and 3e-3 on nb201 raspi4 and pixel3 (900 rows: Spearman 0.964 vs 0.952, within 10% 58% vs
50%). Targets, initial weights, the calibration held out of training, prediction, intervals and
the file are the ensemble skeleton's (:mod:`._ensemble`).

Inference runs in numpy in float32, the precision the members were trained in, so a saved and
reloaded predictor predicts bit-identically; a batch and single predictions of the same
architectures agree to float32 rounding (BLAS may sum a large batch in another order). float32
took the members' products on 100,000 nb201 rows from 1.19 s to 0.48 s (2 threads) against
float64 arithmetic.

Why ``spread_floor = 1`` (it was 0.1): a score divided by a small spread is heavy-tailed, and the
90% quantile of 180 such scores swings with the draw of the calibration rows. Measured on nb201
(900 rows, seeds 0-4, titan_rtx_1 / 2080ti_1 / raspi4), coverage of the other 14,725 rows ranged
0.843-0.918 / 0.868-0.934 / 0.885-0.906 with 0.1 and 0.884-0.912 / 0.877-0.925 / 0.874-0.912 with
1, whose intervals are also 11-19% narrower (the floor keeps rows the members happen to agree
on from getting an unearned narrow interval, so the factor needs no inflating for them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latency_predictors.predictors._analytic import AnalyticCosts, check_recorded
from latency_predictors.predictors._common import check_space
from latency_predictors.predictors._ensemble import EnsemblePredictor, initial_layers
from latency_predictors.predictors._features import feature_matrix
from nas import Architecture, SearchSpace


class MLPEnsemblePredictor(EnsemblePredictor[np.ndarray]):
    """A bootstrap ensemble of MLPs on the space's features with split-conformal intervals (see module)."""

    kind = "mlp_ensemble"
    #: Version of the features: ``_features.feature_matrix``, then (2) the log analytic costs.
    FEATURE_VERSION = 2
    USES_SPACE_FEATURES = True
    FAMILY_SETTINGS = ("hidden",)

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
        if any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden widths must be >= 1, got {tuple(hidden)!r}")
        super().__init__(
            space,
            device_fingerprint,
            members=members,
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
            log_target=log_target,
            quantile=quantile,
            calibration_fraction=calibration_fraction,
            spread_floor=spread_floor,
        )
        self.hidden = tuple(int(h) for h in hidden)
        self._costs = AnalyticCosts(space)
        self.analytic_costs = self._costs.names
        # fitted state
        self.feature_mean: np.ndarray | None = None
        self.feature_std: np.ndarray | None = None

    # inputs: the feature matrix

    def _features(self, archs: Sequence[Architecture]) -> np.ndarray:
        check_space(self.search_space, archs)
        indices = self.search_space.encoding.indices(archs)
        costs = self._costs.matrix(archs, indices, self.analytic_costs)
        return np.hstack(
            [feature_matrix(self.search_space, indices), np.log1p(np.maximum(costs, 0.0)).astype(np.float32)]
        )

    def _fit_inputs(self, archs: Sequence[Architecture], train: np.ndarray) -> np.ndarray:
        features = self._features(archs)
        mean = features[train].mean(axis=0, dtype=np.float64)
        std = features[train].std(axis=0, dtype=np.float64)
        self.feature_mean = mean
        self.feature_std = np.where(std > 0, std, 1.0)
        return features

    def _inputs(self, archs: Sequence[Architecture]) -> np.ndarray:
        return self._features(archs)

    def _rows(self, inputs: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return inputs[rows]

    def _standardise(self, features: np.ndarray) -> np.ndarray:
        assert self.feature_mean is not None and self.feature_std is not None
        if features.shape[1] != len(self.feature_mean):
            raise ValueError(
                f"{self.space} features have {features.shape[1]} columns; this predictor was "
                f"trained on {len(self.feature_mean)}"
            )
        dtype = features.dtype  # float64 for training, float32 for inference
        return (features - self.feature_mean.astype(dtype)) / self.feature_std.astype(dtype)

    # the network

    def _train(self, features: np.ndarray, t: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Train all members on ``features`` standardised in float64, each on its own bootstrap
        resample of the rows."""
        import torch

        x = self._standardise(features.astype(np.float64))
        n, d = x.shape
        rows = np.stack([np.random.default_rng(self.seed + i).integers(0, n, size=n) for i in range(self.members)])
        inputs = torch.from_numpy(x[rows].astype(np.float32))  # (members, n, d)
        targets = torch.from_numpy(t[rows].astype(np.float32))[..., None]  # (members, n, 1)
        weights, biases = initial_layers([d, *self.hidden, 1], self.members, self.seed)
        params_w = [w.requires_grad_() for w in weights]
        params_b = [b.unsqueeze(1).requires_grad_() for b in biases]  # (members, 1, fan_out) for baddbmm
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
        return (
            [w.detach().numpy().astype(np.float32) for w in params_w],
            [b.detach().numpy()[:, 0, :].astype(np.float32) for b in params_b],
        )

    def _outputs(self, features: np.ndarray) -> np.ndarray:
        x = self._standardise(features)
        outputs = np.empty((self.members, len(x)), dtype=np.float32)
        last = len(self.weights) - 1
        for member in range(self.members):  # 2-D products: BLAS (a stacked matmul may not be)
            h = x
            for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
                h = h @ w[member] + b[member]
                if layer < last:
                    np.maximum(h, 0.0, out=h)
            outputs[member] = h[:, 0]
        return outputs

    # the file

    def _family_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        assert self.feature_mean is not None and self.feature_std is not None
        arrays = {
            "feature_mean": self.feature_mean.astype(np.float64),
            "feature_std": self.feature_std.astype(np.float64),
        }
        return arrays, {"analytic_costs": list(self.analytic_costs), "layers": len(self.weights)}

    def _restore_family_state(self, path: Path, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> None:
        check_recorded(path, self.search_space, params["analytic_costs"], self.analytic_costs)
        self.feature_mean = np.asarray(arrays["feature_mean"], dtype=np.float64)
        self.feature_std = np.asarray(arrays["feature_std"], dtype=np.float64)
