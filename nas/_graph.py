"""A space-independent graph view of an architecture, for graph-based predictors (BRP-NAS style).

Genes are a space's own vocabulary; a graph is one every space can speak: nodes carrying a label
(an op, a block choice, a fixed part of the macro such as ``"stem"``) and optional numeric
attributes (sizes that tell positions apart: channels, stride, spatial size...), joined by
directed edges in the direction data flows. A graph neural network then learns one model of
"what a node costs in its context" that any space can feed, without a per-space feature design.
"""

from __future__ import annotations

from dataclasses import dataclass

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
