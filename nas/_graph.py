"""A space-independent graph view of an architecture, for graph-based predictors (BRP-NAS style).

Genes are a space's own vocabulary; a graph is one every space can speak: nodes carrying a label
(an op, a block choice, a fixed part of the macro such as ``"stem"``) and optional numeric
attributes (sizes that tell positions apart: channels, stride, spatial size...), joined by
directed edges in the direction data flows. A graph neural network then learns one model of
"what a node costs in its context" that any space can feed, without a per-space feature design.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class ArchitectureGraph:
    """Nodes ``0..len(labels)-1``; ``edges`` are ``(src, dst)`` pairs in data-flow direction.

    ``attributes`` is either empty (no numeric node attributes) or one tuple per node, all of
    the same width, of non-negative sizes (channels, strides, spatial sizes, flags). Predictors
    compress and standardise them; a space only promises that a column means the same thing in
    every graph it builds.
    """

    labels: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    attributes: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.labels)
        if n == 0:
            raise ValueError("an ArchitectureGraph needs at least one node")
        for src, dst in self.edges:
            if not (0 <= src < n and 0 <= dst < n) or src == dst:
                raise ValueError(f"edge ({src}, {dst}) is not between two distinct nodes of 0..{n - 1}")
        if len(set(self.edges)) != len(self.edges):
            raise ValueError("an ArchitectureGraph lists each edge once")
        if self.attributes:
            if len(self.attributes) != n:
                raise ValueError(f"{len(self.attributes)} attribute rows for {n} nodes")
            widths = {len(row) for row in self.attributes}
            if len(widths) != 1:
                raise ValueError(f"node attribute rows have different widths {sorted(widths)}")

    @property
    def num_nodes(self) -> int:
        return len(self.labels)

    @property
    def attribute_width(self) -> int:
        return len(self.attributes[0]) if self.attributes else 0

    def adjacency(self) -> np.ndarray:
        """``(num_nodes, num_nodes)`` 0/1 matrix, ``[src, dst] = 1`` for each edge."""
        matrix = np.zeros((self.num_nodes, self.num_nodes))
        for src, dst in self.edges:
            matrix[src, dst] = 1.0
        return matrix

    def attribute_matrix(self) -> np.ndarray:
        """``(num_nodes, attribute_width)`` float array (width 0 without attributes)."""
        return np.asarray(self.attributes, dtype=np.float64).reshape(self.num_nodes, self.attribute_width)


@dataclass(frozen=True, eq=False)  # arrays: compare fields with numpy, not ==
class GraphBatch:
    """Many graphs of one space as arrays, padded to the most nodes: what graph predictors read.

    ``labels`` (G, N) int64 indexes the space's :meth:`~nas.GraphSpace.graph_labels`, ``-1`` on
    padding nodes; ``attributes`` (G, N, A) float64 is zero on padding nodes (it may be a
    read-only broadcast view where every graph has the same attributes); ``adjacency`` (P, N, N)
    bool holds each distinct wiring once (``[p, src, dst]``) and ``pattern`` (G,) int64 names a
    graph's. Graphs of one pattern have the same node count, ``pattern_nodes[p]``, so a predictor
    can propagate a whole pattern's graphs with one product and no padding.
    """

    labels: np.ndarray
    attributes: np.ndarray
    adjacency: np.ndarray
    pattern: np.ndarray
    pattern_nodes: np.ndarray

    @classmethod
    def of(cls, graphs: Sequence[ArchitectureGraph], vocabulary: Sequence[str]) -> GraphBatch:
        """The batch of ``graphs``, one at a time (a space's vectorised ``graph_batch`` must
        equal this; the space contract checks it)."""
        if not graphs:
            raise ValueError("a GraphBatch needs at least one graph")
        widths = {g.attribute_width for g in graphs}
        if len(widths) != 1:
            raise ValueError(f"graphs have different attribute widths {sorted(widths)}")
        index = {label: k for k, label in enumerate(vocabulary)}
        n_max, width = max(g.num_nodes for g in graphs), widths.pop()
        labels = np.full((len(graphs), n_max), -1, dtype=np.int64)
        attributes = np.zeros((len(graphs), n_max, width))
        patterns: dict[tuple[int, tuple[tuple[int, int], ...]], int] = {}
        pattern = np.empty(len(graphs), dtype=np.int64)
        for row, graph in enumerate(graphs):
            try:
                labels[row, : graph.num_nodes] = [index[label] for label in graph.labels]
            except KeyError as error:
                raise ValueError(f"node label {error.args[0]!r} is not in the vocabulary {tuple(vocabulary)}") from None
            attributes[row, : graph.num_nodes] = graph.attribute_matrix()
            pattern[row] = patterns.setdefault((graph.num_nodes, graph.edges), len(patterns))
        adjacency = np.zeros((len(patterns), n_max, n_max), dtype=bool)
        for (_, edges), p in patterns.items():
            for src, dst in edges:
                adjacency[p, src, dst] = True
        nodes = np.array([n for n, _ in patterns], dtype=np.int64)
        return cls(labels, attributes, adjacency, pattern, nodes)

    def relabelled(self, nodes: Sequence[int], labels: np.ndarray) -> GraphBatch:
        """This one-graph batch once per row of ``labels`` (G, len(nodes)), those rows' vocabulary
        indices on ``nodes``: every graph of a space whose genes only relabel a fixed wiring
        (NB201's cell, FBNet's chain) in one gather, without drawing a graph per architecture."""
        if len(self) != 1:
            raise ValueError(f"relabelled needs a one-graph template, got {len(self)} graphs")
        batch_labels = np.repeat(self.labels, len(labels), axis=0)
        batch_labels[:, list(nodes)] = labels
        return GraphBatch(
            labels=batch_labels,
            attributes=np.broadcast_to(self.attributes, (len(labels), *self.attributes.shape[1:])),
            adjacency=self.adjacency,
            pattern=np.zeros(len(labels), dtype=np.int64),
            pattern_nodes=self.pattern_nodes,
        )

    def subset(self, rows: np.ndarray) -> GraphBatch:
        """The graphs at ``rows`` (an index array), keeping this batch's padding and patterns."""
        return replace(self, labels=self.labels[rows], attributes=self.attributes[rows], pattern=self.pattern[rows])

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_nodes(self) -> np.ndarray:
        """(G,) node count of each graph."""
        return self.pattern_nodes[self.pattern]

    def normalised_adjacency(self) -> np.ndarray:
        """(P, N, N) float64 ``D^-1/2 (A + A^T + I) D^-1/2`` of each pattern over its real nodes
        (GCN propagation along data flow both ways); rows and columns of padding are zero."""
        a = (self.adjacency | self.adjacency.transpose(0, 2, 1)).astype(np.float64)
        n_max = a.shape[1]
        real = np.arange(n_max)[None, :] < self.pattern_nodes[:, None]  # (P, N)
        a[:, np.arange(n_max), np.arange(n_max)] = real
        degree = a.sum(axis=2)
        scale = np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
        return a * scale[:, :, None] * scale[:, None, :]
