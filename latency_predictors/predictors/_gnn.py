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

Targets, the calibration held out of training, prediction (the members' mean in log space,
back-transformed with ``exp``), intervals and the file are the ensemble skeleton's
(:mod:`._ensemble`): a ``calibration_fraction`` of the rows is held out of training, and the
ensemble spread (with a floor of ``spread_floor`` times its median on those rows; 0.1 here, the
value the MLP used before it measured 1 better for itself) is scaled by the ``quantile``
empirical quantile of the held-out normalised residuals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from latency_predictors.predictors._common import check_space
from latency_predictors.predictors._ensemble import EnsemblePredictor, initial_layers
from nas import Architecture, GraphBatch, GraphSpace, SearchSpace

#: Graph nodes propagated per product at inference: chunks of a few thousand graphs keep the
#: (nodes, graphs, hidden) activations in cache (1,024 FBNet graphs ran 30% faster than 4,096).
CHUNK_NODES = 24_576


class GraphPredictor(EnsemblePredictor[GraphBatch]):
    """An ensemble of small GCNs on ``space.graph`` with split-conformal intervals (see module)."""

    kind = "gnn"
    #: Version of the graph features (labels one-hot, log1p attributes, symmetric GCN adjacency).
    FEATURE_VERSION = 1
    FAMILY_SETTINGS = ("hidden", "layers", "batch_size")

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
        spread_floor: float = 0.1,
    ) -> None:
        if int(hidden) < 1 or int(layers) < 1 or int(batch_size) < 1:
            raise ValueError(f"hidden, layers and batch_size must be >= 1, got {hidden!r}, {layers!r}, {batch_size!r}")
        if not isinstance(space, GraphSpace):
            raise TypeError(
                f"gnn reads graphs and needs a space that draws them (a nas.GraphSpace); {space!r} does not"
            )
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
        self.search_space: GraphSpace = space
        self.hidden, self.layers, self.batch_size = int(hidden), int(layers), int(batch_size)
        # fitted state
        self.vocabulary: tuple[str, ...] = ()
        self.attribute_mean = np.empty(0)
        self.attribute_std = np.empty(0)
        self.node_scale = 1.0

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

    def _fit_inputs(self, archs: Sequence[Architecture], train: np.ndarray) -> GraphBatch:
        check_space(self.search_space, archs)
        self.vocabulary = tuple(self.search_space.graph_labels())
        batch = self.search_space.graph_batch(archs)
        attributes = np.log1p(batch.attributes[train][batch.labels[train] >= 0])  # (real nodes, width)
        std = attributes.std(axis=0)
        self.attribute_mean, self.attribute_std = attributes.mean(axis=0), np.where(std > 0, std, 1.0)
        self.node_scale = float(batch.num_nodes.max())
        return batch

    def _inputs(self, archs: Sequence[Architecture]) -> GraphBatch:
        return self._graph_batch(archs)

    def _rows(self, inputs: GraphBatch, rows: np.ndarray) -> GraphBatch:
        return inputs.subset(rows)

    # the network

    def _train(self, batch: GraphBatch, t: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Train all members on ``batch`` and standardised targets ``t`` (dense padded tensors:
        900 graphs fit in memory many times over), each in its own order of mini-batches."""
        import torch

        n = len(t)
        node_features = self._node_features(batch.labels, batch.attributes)
        features = torch.from_numpy(node_features.astype(np.float32))
        adjacency = torch.from_numpy(batch.normalised_adjacency()[batch.pattern].astype(np.float32))
        mask = torch.from_numpy((batch.labels >= 0).astype(np.float32))[..., None] / self.node_scale
        targets = torch.from_numpy(t.astype(np.float32))
        weights, biases = initial_layers(
            [node_features.shape[2], *[self.hidden] * self.layers, 1], self.members, self.seed
        )
        params_w = [w.requires_grad_() for w in weights]
        params_b = [b.requires_grad_() for b in biases]
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
        return (
            [w.detach().numpy().astype(np.float32) for w in params_w],
            [b.detach().numpy().astype(np.float32) for b in params_b],
        )

    def _outputs(self, batch: GraphBatch) -> np.ndarray:
        """Graphs of one wiring go through together, in chunks, laid out (nodes, graphs, hidden)
        so that every layer is two float32 products: the weights over all nodes, then the
        (nodes, nodes) propagation over all graphs at once."""
        outputs = np.empty((self.members, len(batch)), dtype=np.float32)
        propagation = batch.normalised_adjacency().astype(np.float32)
        for p, n in enumerate(batch.pattern_nodes):
            graphs, chunk = np.flatnonzero(batch.pattern == p), max(1, CHUNK_NODES // int(n))
            for start in range(0, len(graphs), chunk):
                rows = graphs[start : start + chunk]
                outputs[:, rows] = self._forward(
                    batch.labels[rows, :n].T, batch.attributes[rows, :n].transpose(1, 0, 2), propagation[p, :n, :n]
                )
        return outputs

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

    # the file

    def _family_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {
            "vocabulary": np.asarray(self.vocabulary, dtype=str),
            "attribute_mean": self.attribute_mean.astype(np.float64),
            "attribute_std": self.attribute_std.astype(np.float64),
        }
        return arrays, {"node_scale": self.node_scale}

    def _restore_family_state(self, path: Path, arrays: dict[str, np.ndarray], params: dict[str, Any]) -> None:
        self.vocabulary = tuple(str(label) for label in arrays["vocabulary"])
        self.attribute_mean = np.asarray(arrays["attribute_mean"], dtype=np.float64)
        self.attribute_std = np.asarray(arrays["attribute_std"], dtype=np.float64)
        self.node_scale = float(params["node_scale"])
