"""A small graph convolutional network over ``space.graph(arch)`` (BRP-NAS's latency predictor).

Why a graph model: a latency is roughly a sum of what each op costs where it sits, and a graph
says that directly in any space (NB201's cell wiring, FBNet's and OFA's chains with each layer's
channels, stride and input size), so one model family serves every space that draws graphs.

Node features: a one-hot of the node's label over ``space.graph_labels()`` (the vocabulary is
stored in the file), then the node attributes as ``log1p`` (sizes act multiplicatively),
standardised with the training nodes' mean and standard deviation. Adjacency: BRP-NAS's GCN
propagation ``D^-1/2 (A + A^T + I) D^-1/2`` (data-flow edges taken both ways plus self-loops).
Each of ``layers`` graph convolutions is ``relu(Â H W + b)`` of width ``hidden``, with a
residual connection after the first (``H + relu(Â H W + b)``, so a node keeps its own op's
identity however much it averages with its neighbours; with 4 layers, 200 epochs on nb201
raspi4/pixel3 the Spearman was 0.940/0.943 with it and 0.934/0.944 without); the graph's
embedding is the sum of its node embeddings divided by a fixed ``node_scale`` (the most nodes of
a fitted graph), a sum pooling because costs add up over nodes and OFA graphs differ in size;
one linear layer maps it to the standardised ``log y`` (``log_target=True``).

Training: ``members`` networks (initial weights from ``torch.Generator().manual_seed(seed + i)``,
mini-batch order from ``numpy.random.default_rng([seed, i])``), trained together as one batched
computation (Adam is elementwise: exactly ``members`` independent trainings) with Adam, L2
``weight_decay``, ``epochs`` passes in mini-batches of ``batch_size`` and a cosine decay of
``lr``; dense padded adjacency tensors, so 900 graphs train in seconds on one CPU thread. No
global random state is read or changed.

Inference is numpy float32 arithmetic on the stored weights (a reloaded predictor predicts
bit-identically) over the space's :meth:`~nas.GraphSpace.graph_batch`, graphs of one wiring
together, laid out (nodes, graphs, hidden): each layer is then one product with the weights and
one with the (nodes, nodes) propagation matrix. It costs about ``members x layers x nodes x
hidden^2 x 2`` FLOPs per graph (1.2 MFLOP for FBNet's 24-node chains at the defaults), which
bounds batch throughput on a small CPU well below the analytic and tree families (see the
README's speed table).

Prediction is the members' mean in log space, back-transformed with ``exp``. Intervals are
split-conformal exactly as :mod:`latency_predictors.predictors._mlp`'s: a ``calibration_fraction``
of the rows is held out of training, and the ensemble spread (with a floor) is scaled by the
``quantile`` empirical quantile of the held-out normalised residuals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import numpy as np

from latency_predictors.predictors._baselines import check_space, check_targets, conformal_factor
from latency_predictors.predictors._format import StoredPredictor
from latency_predictors.predictors._mlp import MIN_CALIBRATION_FIT
from nas import Architecture, GraphBatch, GraphSpace, IntervalPredictor, SearchSpace

#: Graph nodes propagated per product at inference: chunks of a few thousand graphs keep the
#: (nodes, graphs, hidden) activations in cache (1,024 FBNet graphs ran 30% faster than 4,096).
CHUNK_NODES = 24_576


class GraphPredictor(StoredPredictor, IntervalPredictor):
    """An ensemble of small GCNs on ``space.graph`` with split-conformal intervals (see module)."""

    kind = "gnn"
    #: Version of the graph features (labels one-hot, log1p attributes, symmetric GCN adjacency).
    FEATURE_VERSION = 1

    def __init__(
        self,
        space: SearchSpace,
        device_fingerprint: str,
        members: int = 3,
        hidden: int = 64,
        layers: int = 3,
        epochs: int = 150,
        batch_size: int = 128,
        lr: float = 1e-2,
        weight_decay: float = 1e-5,
        seed: int = 0,
        log_target: bool = True,
        quantile: float = 0.9,
        calibration_fraction: float = 0.2,
    ) -> None:
        if int(members) < 1 or int(hidden) < 1 or int(layers) < 1 or int(batch_size) < 1:
            raise ValueError(
                f"members, hidden, layers and batch_size must be >= 1, got {members!r}, {hidden!r}, "
                f"{layers!r}, {batch_size!r}"
            )
        if int(epochs) < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs!r}")
        if not 0 < quantile < 1 or not 0 < calibration_fraction < 1:
            raise ValueError(
                f"quantile and calibration_fraction must be in (0, 1), got {quantile!r}, {calibration_fraction!r}"
            )
        if not lr > 0 or not weight_decay >= 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0, got {lr!r}, {weight_decay!r}")
        if not isinstance(space, GraphSpace):
            raise TypeError(
                f"gnn reads graphs and needs a space that draws them (a nas.GraphSpace); {space!r} does not"
            )
        self.search_space: GraphSpace = space
        self.space = space.name
        self.device_fingerprint = device_fingerprint
        self.members, self.hidden, self.layers = int(members), int(hidden), int(layers)
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.seed = int(seed)
        self.log_target = bool(log_target)
        self.quantile = float(quantile)
        self.calibration_fraction = float(calibration_fraction)
        # fitted state
        self.vocabulary: tuple[str, ...] = ()
        self.attribute_mean = np.empty(0)
        self.attribute_std = np.empty(0)
        self.node_scale = 1.0
        self.target_mean, self.target_std = 0.0, 1.0
        self.weights: list[np.ndarray] = []  # per layer (members, fan_in, fan_out) float32; last = head
        self.biases: list[np.ndarray] = []  # per layer (members, fan_out) float32
        self.factor, self.sigma_floor, self.calibrated = 1.0, 1e-6, False
        self.n_fit = self.n_calibration = 0

    # graphs to arrays

    def _graph_batch(self, archs: Sequence[Architecture]) -> GraphBatch:
        """The space's graphs of ``archs``, labels re-indexed into this predictor's vocabulary
        (the one it was fitted with, which a later version of the space might extend)."""
        check_space(self.search_space, archs)
        batch = self.search_space.graph_batch(archs)
        width = len(self.attribute_mean)
        if batch.attributes.shape[2] != width:
            raise ValueError(
                f"{self.space} graphs have {batch.attributes.shape[2]} node attributes; this predictor "
                f"was trained on {width}"
            )
        index = {label: k for k, label in enumerate(self.vocabulary)}
        space_labels = self.search_space.graph_labels()
        remap = np.array([index.get(label, -2) for label in space_labels] + [-1])  # [-1]: padding
        labels = remap[batch.labels]
        if np.any(labels == -2):
            unknown = space_labels[int(batch.labels[labels == -2][0])]
            raise ValueError(f"node label {unknown!r} is not in this predictor's vocabulary {self.vocabulary}")
        return replace(batch, labels=labels)

    def _node_features(self, labels: np.ndarray, attributes: np.ndarray) -> np.ndarray:
        """``(..., vocabulary + attributes)`` float64 node features; zero on padding nodes."""
        features = np.zeros((*labels.shape, len(self.vocabulary) + attributes.shape[-1]))
        real = labels >= 0
        features[real, labels[real]] = 1.0
        features[real, len(self.vocabulary) :] = (np.log1p(attributes[real]) - self.attribute_mean) / self.attribute_std
        return features

    def _transform(self, y: np.ndarray) -> np.ndarray:
        return np.log(y) if self.log_target else y

    def _untransform(self, t: np.ndarray) -> np.ndarray:
        return np.exp(t) if self.log_target else t

    # training

    def _train(self, batch: GraphBatch, t: np.ndarray) -> None:
        """Train all members on ``batch`` and standardised targets ``t`` (dense padded tensors:
        900 graphs fit in memory many times over)."""
        import torch

        n = len(t)
        node_features = self._node_features(batch.labels, batch.attributes)
        dims = [node_features.shape[2], *[self.hidden] * self.layers, 1]
        features = torch.from_numpy(node_features.astype(np.float32))
        adjacency = torch.from_numpy(batch.normalised_adjacency()[batch.pattern].astype(np.float32))
        mask = torch.from_numpy((batch.labels >= 0).astype(np.float32))[..., None] / self.node_scale
        targets = torch.from_numpy(t.astype(np.float32))
        weights: list[list[torch.Tensor]] = [[] for _ in dims[1:]]
        biases: list[list[torch.Tensor]] = [[] for _ in dims[1:]]
        for member in range(self.members):
            generator = torch.Generator().manual_seed(self.seed + member)
            for layer, (fan_in, fan_out) in enumerate(pairwise(dims)):
                bound = 1.0 / math.sqrt(fan_in)  # torch.nn.Linear's default initialisation
                weights[layer].append((torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound)
                biases[layer].append((torch.rand(fan_out, generator=generator) * 2 - 1) * bound)
        params_w = [torch.stack(w).requires_grad_() for w in weights]
        params_b = [torch.stack(b).requires_grad_() for b in biases]
        optimizer = torch.optim.Adam([*params_w, *params_b], lr=self.lr, weight_decay=self.weight_decay)
        steps_per_epoch = max(1, math.ceil(n / self.batch_size))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.epochs * steps_per_epoch))
        orders = [np.random.default_rng([self.seed, member]) for member in range(self.members)]
        for _ in range(self.epochs):
            permutation = torch.from_numpy(np.stack([rng.permutation(n) for rng in orders]))
            for start in range(0, n, self.batch_size):
                rows = permutation[:, start : start + self.batch_size]  # (members, B)
                h = features[rows]  # (members, B, N, F)
                a = adjacency[rows]
                for layer, (w, b) in enumerate(zip(params_w[:-1], params_b[:-1])):
                    z = torch.relu(a @ (h @ w[:, None]) + b[:, None, None])
                    h = z + h if layer else z  # residual after the first layer
                pooled = (h * mask[rows]).sum(dim=2)  # (members, B, hidden)
                out = (pooled @ params_w[-1])[..., 0] + params_b[-1]
                loss = ((out - targets[rows]) ** 2).mean(dim=1).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
        self.weights = [w.detach().numpy().astype(np.float32) for w in params_w]
        self.biases = [b.detach().numpy().astype(np.float32) for b in params_b]

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> GraphPredictor:
        y = check_targets(archs, y, positive=self.log_target)
        check_space(self.search_space, archs)
        t = self._transform(y)
        n = len(archs)
        if n >= MIN_CALIBRATION_FIT:
            order = np.random.default_rng([self.seed, 7919]).permutation(n)
            held = max(2, round(self.calibration_fraction * n))
            calibration, train = np.sort(order[:held]), np.sort(order[held:])
        else:
            calibration, train = np.empty(0, dtype=np.int64), np.arange(n)
        self.vocabulary = tuple(self.search_space.graph_labels())
        batch = self.search_space.graph_batch(archs)
        attributes = np.log1p(batch.attributes[train][batch.labels[train] >= 0])  # (real nodes, width)
        std = attributes.std(axis=0)
        self.attribute_mean, self.attribute_std = attributes.mean(axis=0), np.where(std > 0, std, 1.0)
        self.node_scale = float(batch.num_nodes.max())
        self.target_mean = float(t[train].mean())
        target_std = float(t[train].std())
        self.target_std = target_std if target_std > 0 else 1.0
        self._train(batch.subset(train), (t[train] - self.target_mean) / self.target_std)
        self.n_fit, self.n_calibration = len(train), len(calibration)
        if len(calibration):
            outputs = self._member_outputs(batch.subset(calibration))
            centre, spread = outputs.mean(axis=0), outputs.std(axis=0)
            self.sigma_floor = max(0.1 * float(np.median(spread)), 1e-6)
            sigma = np.sqrt(spread**2 + self.sigma_floor**2)
            self.factor = conformal_factor(np.abs(t[calibration] - centre) / sigma, self.quantile)
            self.calibrated = True
        else:
            from scipy.stats import norm

            self.sigma_floor, self.calibrated = 1e-6, False
            self.factor = float(norm.ppf((1 + self.quantile) / 2))
        return self

    # inference

    def _member_outputs(self, batch: GraphBatch) -> np.ndarray:
        """Each member's prediction in (untransformed-back) target space: (members, G). Graphs
        of one wiring go through together, in chunks, laid out (nodes, graphs, hidden) so that
        every layer is two float32 products: the weights over all nodes, then the (nodes, nodes)
        propagation over all graphs at once."""
        outputs = np.empty((self.members, len(batch)), dtype=np.float32)
        propagation = batch.normalised_adjacency().astype(np.float32)
        for p, n in enumerate(batch.pattern_nodes):
            graphs, chunk = np.flatnonzero(batch.pattern == p), max(1, CHUNK_NODES // int(n))
            for start in range(0, len(graphs), chunk):
                rows = graphs[start : start + chunk]
                outputs[:, rows] = self._forward(
                    batch.labels[rows, :n].T, batch.attributes[rows, :n].transpose(1, 0, 2), propagation[p, :n, :n]
                )
        return self.target_mean + self.target_std * outputs.astype(np.float64)

    def _forward(self, labels: np.ndarray, attributes: np.ndarray, propagation: np.ndarray) -> np.ndarray:
        """The members on graphs of one wiring: ``labels`` (n, g), ``attributes`` (n, g, A),
        ``propagation`` (n, n). Returns standardised outputs (members, g)."""
        n, g = labels.shape
        vocabulary = len(self.vocabulary)
        scaled = ((np.log1p(attributes) - self.attribute_mean) / self.attribute_std).astype(np.float32)
        outputs = np.empty((self.members, g), dtype=np.float32)
        for member in range(self.members):
            h = np.empty(0, dtype=np.float32)
            for layer, (w, b) in enumerate(zip(self.weights[:-1], self.biases[:-1])):
                if layer == 0:  # one-hot labels times weights is a row lookup
                    z = w[member, :vocabulary][labels] + scaled @ w[member, vocabulary:]
                else:
                    z = (h.reshape(n * g, -1) @ w[member]).reshape(n, g, -1)
                z = (propagation @ z.reshape(n, -1)).reshape(n, g, -1)
                z += b[member]
                np.maximum(z, 0.0, out=z)
                if layer:  # residual after the first layer
                    z += h
                h = z
            pooled = h.sum(axis=0) / np.float32(self.node_scale)
            outputs[member] = pooled @ self.weights[-1][member, :, 0] + self.biases[-1][member, 0]
        return outputs

    def _check_fitted(self, what: str) -> None:
        if not self.weights:
            raise RuntimeError(f"GraphPredictor.{what} before fit (or load)")

    def member_predictions(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Every member's prediction in the transformed (log) space: (members, len(archs))."""
        self._check_fitted("member_predictions")
        if len(archs) == 0:
            return np.empty((self.members, 0))
        return self._member_outputs(self._graph_batch(archs))

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        self._check_fitted("predict")
        if len(archs) == 0:
            return np.empty(0)
        return self._untransform(self.member_predictions(archs).mean(axis=0))

    def predict_interval(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)`` meant to cover the measured value with probability ``quantile``."""
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

    def _params(self) -> dict[str, object]:
        return {
            "members": self.members,
            "hidden": self.hidden,
            "layers": self.layers,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "seed": self.seed,
            "log_target": self.log_target,
            "quantile": self.quantile,
            "calibration_fraction": self.calibration_fraction,
        }

    def save(self, path: Path) -> None:
        self._check_fitted("save")
        arrays: dict[str, np.ndarray] = {
            "vocabulary": np.asarray(self.vocabulary, dtype=str),
            "attribute_mean": self.attribute_mean.astype(np.float64),
            "attribute_std": self.attribute_std.astype(np.float64),
        }
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"layer{layer}_weight"] = w.astype(np.float32)
            arrays[f"layer{layer}_bias"] = b.astype(np.float32)
        fitted = {
            "node_scale": self.node_scale,
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "factor": self.factor,
            "sigma_floor": self.sigma_floor,
            "calibrated": self.calibrated,
            "n_fit": self.n_fit,
            "n_calibration": self.n_calibration,
        }
        self._write(path, arrays=arrays, params={**self._params(), **fitted})

    @classmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> GraphPredictor:
        """Read ``path``; ``space`` is the :class:`SearchSpace` itself (its graphs are needed),
        compared by name with the file's."""
        header, arrays = cls._read(path, space, device_fingerprint)
        p = header["params"]
        names = (
            "members",
            "hidden",
            "layers",
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "seed",
            "log_target",
            "quantile",
            "calibration_fraction",
        )
        predictor = cls(space, device_fingerprint, **{name: p[name] for name in names})
        predictor.vocabulary = tuple(str(label) for label in arrays["vocabulary"])
        predictor.attribute_mean = np.asarray(arrays["attribute_mean"], dtype=np.float64)
        predictor.attribute_std = np.asarray(arrays["attribute_std"], dtype=np.float64)
        predictor.weights = [np.asarray(arrays[f"layer{i}_weight"]) for i in range(predictor.layers + 1)]
        predictor.biases = [np.asarray(arrays[f"layer{i}_bias"]) for i in range(predictor.layers + 1)]
        predictor.node_scale = float(p["node_scale"])
        predictor.target_mean, predictor.target_std = float(p["target_mean"]), float(p["target_std"])
        predictor.factor, predictor.sigma_floor = float(p["factor"]), float(p["sigma_floor"])
        predictor.calibrated = bool(p["calibrated"])
        predictor.n_fit, predictor.n_calibration = int(p["n_fit"]), int(p["n_calibration"])
        return predictor
