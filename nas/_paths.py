"""How data can flow through an architecture's graph: GRAF's path features.

Kadlecová et al. ("Surprisingly Strong Performance Prediction with Neural Graph Features", ICML
2024) showed that simple counts over a cell's input-to-output paths, restricted to subsets of
operations, predict NB201 accuracy as well as the zero-cost proxies, and better together with
them. For each subset S of node labels, a path *through S* is a source-to-sink path whose every
inner node carries a label in S (sources and sinks: nodes without inputs, without outputs); its
features are how many such paths there are and the shortest and longest one, in edges (both 0
without one). Computed for a whole :class:`~nas.GraphBatch` at once, a node at a time per wiring.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from nas._graph import GraphBatch

#: Up to this many distinct inner labels every subset is used (2^6 - 1 = 63), beyond it only
#: single labels (chains of tens of blocks, where longer subsets describe no new path).
MAX_LABELS_FOR_ALL_SUBSETS = 6


def inner_labels(batch: GraphBatch) -> tuple[int, ...]:
    """The label indices found on nodes that are neither a source nor a sink, sorted."""
    found: set[int] = set()
    for p in range(len(batch.adjacency)):
        rows = batch.pattern == p
        if not rows.any():
            continue
        inner = _inner_nodes(batch.adjacency[p], int(batch.pattern_nodes[p]))
        found.update(np.unique(batch.labels[np.ix_(rows, inner)]).tolist())
    return tuple(sorted(found))


def label_subsets(labels: Sequence[int]) -> tuple[frozenset[int], ...]:
    """Every non-empty subset of ``labels`` (at most :data:`MAX_LABELS_FOR_ALL_SUBSETS` of them),
    else each label alone; in a fixed order (by size, then by label)."""
    if len(labels) > MAX_LABELS_FOR_ALL_SUBSETS:
        return tuple(frozenset({label}) for label in labels)
    return tuple(frozenset(c) for r in range(1, len(labels) + 1) for c in itertools.combinations(labels, r))


def path_features(batch: GraphBatch, subsets: Sequence[frozenset[int]]) -> np.ndarray:
    """``(G, 3 * len(subsets))`` float32: per subset, the number of paths through it, the
    shortest and the longest (see the module)."""
    out = np.zeros((len(batch), 3 * len(subsets)), dtype=np.float32)
    for p in range(len(batch.adjacency)):
        rows = np.flatnonzero(batch.pattern == p)
        if len(rows) == 0:
            continue
        n = int(batch.pattern_nodes[p])
        adjacency = batch.adjacency[p, :n, :n]
        labels = batch.labels[rows, :n]
        for s, subset in enumerate(subsets):
            out[rows, 3 * s : 3 * s + 3] = _paths(adjacency, np.isin(labels, list(subset)))
    return out


def _paths(adjacency: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Count, shortest and longest source-to-sink path over allowed inner nodes, ``(G, 3)``."""
    sources, sinks = ~adjacency.any(axis=0), ~adjacency.any(axis=1)
    count = np.zeros(allowed.shape)
    shortest = np.full(allowed.shape, np.inf)
    longest = np.full(allowed.shape, -np.inf)
    count[:, sources], shortest[:, sources], longest[:, sources] = 1.0, 0.0, 0.0
    for v in _topological_order(adjacency):
        if sources[v]:
            continue
        inputs = np.flatnonzero(adjacency[:, v])
        passes = allowed[:, v] | sinks[v]
        count[:, v] = np.where(passes, count[:, inputs].sum(axis=1), 0.0)
        reached = count[:, v] > 0
        shortest[:, v] = np.where(reached, shortest[:, inputs].min(axis=1) + 1, np.inf)
        longest[:, v] = np.where(reached, longest[:, inputs].max(axis=1) + 1, -np.inf)
    total = count[:, sinks].sum(axis=1)
    found = total > 0
    return np.stack(
        [
            total,
            np.where(found, shortest[:, sinks].min(axis=1), 0.0),
            np.where(found, longest[:, sinks].max(axis=1), 0.0),
        ],
        axis=1,
    )


def _inner_nodes(adjacency: np.ndarray, n: int) -> np.ndarray:
    a = adjacency[:n, :n]
    return np.flatnonzero(a.any(axis=0) & a.any(axis=1))


def _topological_order(adjacency: np.ndarray) -> list[int]:
    remaining = adjacency.sum(axis=0).astype(int)
    ready = [v for v in range(len(adjacency)) if remaining[v] == 0]
    order = []
    while ready:
        v = ready.pop()
        order.append(v)
        for w in np.flatnonzero(adjacency[v]):
            remaining[w] -= 1
            if remaining[w] == 0:
                ready.append(int(w))
    if len(order) != len(adjacency):
        raise ValueError("the graph has a cycle: paths need a DAG")
    return order
