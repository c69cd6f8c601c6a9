"""NB201 predictor features beyond one-hot genes: what a cell computes, and its isomorphism class.

Why these columns (measured on the shared nb201 table, 900 training rows, LightGBM):

* **Structure** — which nodes carry a signal (a node whose every input is ``none`` or dead is
  zero), how many non-``none`` inputs each node sums, which edges are *live* (carry a signal that
  reaches the output) and the op counts over live edges. Runtimes that drop dead work (ONNX
  Runtime, LiteRT) make latency depend on live ops, not all ops: pi5_onnx within +/-10% went from
  58% to 68% with these columns.
* **Isomorphism class** — NAS-Bench-201 calls two cells isomorphic when NB201's own
  ``to_unique_str(consider_zero=True)`` gives the same string (``none`` edges and edges from zero
  nodes dropped, ``skip_connect`` merged into its input, a node's inputs sorted): 15,625 cells
  fall into 6,466 classes. HW-NAS-Bench-360 (the tables' pi5_* and pixel6a columns) measured one
  member per class and copied its value to the others, so those values are a property of the
  class, and of the one member measured. The class's mean one-hot genes and op counts (its
  expected composition) and its size let a model learn that; pi5_onnx within +/-10% rose from
  68% to 86% with them (Spearman 0.929 -> 0.971).

Every column is computed with numpy from the ``(n, 6)`` matrix of op indices (the space's gene
order: edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2; ops in ``OPS`` order), so a batch of 100,000
cells costs milliseconds. The class table covers all 15,625 cells and is built once per process.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from search_spaces.nb201._ops import OPS

#: (to, src) of each gene, the same order as the space's genes.
EDGES: tuple[tuple[int, int], ...] = tuple((to, src) for to in range(1, 4) for src in range(to))
NONE = OPS.index("none")
SKIP = OPS.index("skip_connect")
#: Bumped whenever a column changes: predictors record it and refuse another version.
VERSION = 2

FEATURE_NAMES: tuple[str, ...] = (
    *(f"alive_node_{j}" for j in (1, 2, 3)),
    *(f"inputs_node_{j}" for j in (1, 2, 3)),
    *(f"live_edge_{to}_{src}" for to, src in EDGES),
    *(f"live_count~{op}" for op in OPS),
    "additions",
    *(f"class_mean_edge_{to}_{src}~{op}" for to, src in EDGES for op in OPS),
    *(f"class_mean_count~{op}" for op in OPS),
    "class_size",
)


def structure(ops: np.ndarray) -> np.ndarray:
    """Alive nodes (3), non-``none`` inputs per node (3), live edges (6), live op counts (5) and
    the number of additions, for an ``(n, 6)`` op-index matrix; float32 ``(n, 18)``."""
    n = len(ops)
    nonzero = ops != NONE
    alive = np.zeros((n, 4), dtype=bool)
    alive[:, 0] = True
    for e, (to, src) in enumerate(EDGES):  # EDGES is in topological order of `to`
        alive[:, to] |= alive[:, src] & nonzero[:, e]
    reaches = np.zeros((n, 4), dtype=bool)
    reaches[:, 3] = True
    for e, (to, src) in sorted(enumerate(EDGES), key=lambda item: -item[1][1]):
        reaches[:, src] |= reaches[:, to] & nonzero[:, e]
    live = np.stack([nonzero[:, e] & alive[:, src] & reaches[:, to] for e, (to, src) in enumerate(EDGES)], 1)
    inputs = np.stack([nonzero[:, [e for e, (to, _) in enumerate(EDGES) if to == j]].sum(1) for j in (1, 2, 3)], 1)
    live_counts = np.stack([((ops == op) & live).sum(1) for op in range(len(OPS))], 1)
    additions = np.clip(inputs - 1, 0, None).sum(1, keepdims=True)
    return np.hstack([alive[:, 1:], inputs, live, live_counts, additions]).astype(np.float32)


def disconnected(ops: np.ndarray) -> np.ndarray:
    """Whether no path of non-``none`` edges reaches the output node, per row of ``ops``."""
    return structure(ops)[:, 2] == 0  # alive_node_3


def unique_string(ops: tuple[int, ...]) -> str:
    """NB201's ``to_unique_str(consider_zero=True)`` of one cell: equal strings, isomorphic cells."""
    nodes = {0: "0"}
    for j in (1, 2, 3):
        terms = []
        for e, (to, src) in enumerate(EDGES):
            if to != j:
                continue
            if ops[e] == NONE or nodes[src] == "#":
                terms.append("#")
            elif ops[e] == SKIP:
                terms.append(nodes[src])
            else:
                terms.append(f"({nodes[src]})@{OPS[ops[e]]}")
        nodes[j] = "+".join(sorted(terms))
    return nodes[3]


def flat_index(ops: np.ndarray) -> np.ndarray:
    """Each cell's row in :func:`_class_table` (its ops read as a base-5 number)."""
    return ops @ (len(OPS) ** np.arange(len(EDGES) - 1, -1, -1))


@functools.cache
def _class_table() -> tuple[np.ndarray, np.ndarray]:
    """(class id per flat index, per-class features: mean one-hot, mean counts, size)."""
    cells = np.array(list(itertools.product(range(len(OPS)), repeat=len(EDGES))))
    _, class_of = np.unique([unique_string(tuple(c)) for c in cells], return_inverse=True)
    onehot = np.zeros((len(cells), len(EDGES) * len(OPS)))
    onehot[np.arange(len(cells))[:, None], np.arange(len(EDGES)) * len(OPS) + cells] = 1.0
    counts = np.stack([(cells == op).sum(1) for op in range(len(OPS))], 1)
    members = np.hstack([onehot, counts])
    sizes = np.bincount(class_of)
    means = np.zeros((len(sizes), members.shape[1]))
    np.add.at(means, class_of, members)
    means /= sizes[:, None]
    return class_of, np.hstack([means, sizes[:, None]]).astype(np.float32)


def isomorphism_class(ops: np.ndarray) -> np.ndarray:
    """The isomorphism class id (0..6465) of each row of an ``(n, 6)`` op-index matrix."""
    return _class_table()[0][flat_index(ops)]


def class_features(ops: np.ndarray) -> np.ndarray:
    """Mean one-hot genes (30), mean op counts (5) and size (1) of each cell's class."""
    class_of, table = _class_table()
    return table[class_of[flat_index(ops)]]


def features(ops: np.ndarray) -> np.ndarray:
    """:data:`FEATURE_NAMES` columns for an ``(n, 6)`` op-index matrix."""
    return np.hstack([structure(ops), class_features(ops)])
