"""GRAF's path features, against hand counts and against an enumeration of NB201's four paths."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nas import ArchitectureGraph, GraphBatch, inner_labels, label_subsets, path_features
from search_spaces import NB201Space

VOCABULARY = ("in", "a", "b", "out")


def test_a_diamond_with_a_shortcut_counted_by_hand() -> None:
    # in -> a -> out, in -> b -> a, in -> out: paths through {a}: in-a-out and in-out (the
    # shortcut has no inner node); through {a, b} also in-b-a-out, of 3 edges
    graph = ArchitectureGraph(labels=("in", "a", "b", "out"), edges=((0, 1), (1, 3), (0, 2), (2, 1), (0, 3)))
    batch = GraphBatch.of([graph], VOCABULARY)
    assert inner_labels(batch) == (1, 2)
    subsets = label_subsets(inner_labels(batch))
    assert subsets == (frozenset({1}), frozenset({2}), frozenset({1, 2}))
    np.testing.assert_array_equal(path_features(batch, subsets), [[2, 1, 2, 1, 1, 1, 3, 1, 3]])


def test_no_path_gives_zero_length_and_a_cycle_is_refused() -> None:
    chain = GraphBatch.of([ArchitectureGraph(labels=("in", "b", "out"), edges=((0, 1), (1, 2)))], VOCABULARY)
    np.testing.assert_array_equal(path_features(chain, [frozenset({1})]), [[0, 0, 0]])
    cycle = GraphBatch.of(
        [ArchitectureGraph(labels=("in", "a", "b", "out"), edges=((0, 1), (1, 2), (2, 1), (2, 3)))], VOCABULARY
    )
    with pytest.raises(ValueError, match="cycle"):
        path_features(cycle, [frozenset({1})])


def test_nb201_paths_match_an_enumeration_of_the_cell() -> None:
    """NB201's cell has four input-to-output paths (genes 1<-0 2<-1 3<-2; 1<-0 3<-1; 2<-0 3<-2;
    3<-0); in the op-on-node graph a path of m ops has m + 1 edges."""
    space = NB201Space()
    edge_paths = (
        ("edge_1_0", "edge_2_1", "edge_3_2"),
        ("edge_1_0", "edge_3_1"),
        ("edge_2_0", "edge_3_2"),
        ("edge_3_0",),
    )
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(300)]
    batch = space.graph_batch(archs)
    labels = space.graph_labels()
    ops = [labels.index(op) for op in ("skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")]
    subsets = [frozenset(c) for r in range(1, 5) for c in itertools.combinations(ops, r)]
    got = path_features(batch, subsets)
    for row, arch in enumerate(archs):
        for s, subset in enumerate(subsets):
            names = {labels[i] for i in subset}
            through = [len(p) + 1 for p in edge_paths if all(str(arch[gene]) in names for gene in p)]
            expected = [len(through), min(through, default=0), max(through, default=0)]
            assert got[row, 3 * s : 3 * s + 3].tolist() == expected, (arch.string, sorted(names))
