"""Graph views of architectures (``GraphSpace.graph``): shapes checked against facts stated
independently of the code (the NB201 cell wiring, FBNet's 22-layer chain, OFA's depths)."""

from __future__ import annotations

import numpy as np
import pytest

from nas import ArchitectureGraph, GraphBatch, GraphSpace, SearchSpace
from search_spaces import FBNetSpace, NB201Space, OFASpace

CELL = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|"


def sampled(space: SearchSpace, n: int = 20) -> list:
    rng = np.random.default_rng(0)
    return [space.sample(rng) for _ in range(n)]


def test_nb201_is_the_op_on_node_cell() -> None:
    space = NB201Space()
    graph = space.graph(space.parse(CELL))
    # input, the six ops in string order, output; 'none' stays a node (the networks compute it)
    assert graph.labels == (
        "input",
        "nor_conv_3x3",
        "none",
        "avg_pool_3x3",
        "skip_connect",
        "nor_conv_1x1",
        "skip_connect",
        "output",
    )
    # op nodes: 1=(1<-0) 2=(2<-0) 3=(2<-1) 4=(3<-0) 5=(3<-1) 6=(3<-2); an op reading cell node j
    # takes every op into j (or the input for j=0); ops into cell node 3 feed the output
    expected = {(0, 1), (0, 2), (0, 4), (1, 3), (1, 5), (2, 6), (3, 6), (4, 7), (5, 7), (6, 7)}
    assert set(graph.edges) == expected and len(graph.edges) == 10
    assert graph.attribute_width == 0


def test_fbnet_is_a_chain_of_24_with_positions() -> None:
    space = FBNetSpace()
    for arch in sampled(space, 5):
        graph = space.graph(arch)
        assert graph.num_nodes == 24
        assert graph.labels[1:-1] == tuple(arch.string.split("|"))
        assert graph.edges == tuple((k, k + 1) for k in range(23))
    attributes = graph.attribute_matrix()
    # layer 5: 24->32 channels, stride 2, 32x32 input (CIFAR macro); layer 21: 184->352 at 4x4
    assert tuple(attributes[6]) == (24, 32, 2, 32)
    assert tuple(attributes[22]) == (184, 352, 1, 4)


def test_ofa_chain_has_the_active_layers() -> None:
    space = OFASpace()
    arch = space.parse(
        '{"ks":[7,5,5,3,3,3,3,3,3,7,3,3,5,5,3,3,5,5,3,3],"e":[3,6,6,3,4,6,3,3,6,6,3,3,'
        '3,6,3,3,3,3,3,3],"d":[3,2,2,2,2],"r":192}'
    )
    graph = space.graph(arch)
    # first conv, first block, 3+2+2+2+2 MBConv layers, final expand, head
    assert graph.num_nodes == 4 + 11
    assert graph.labels[2:5] == ("k7_e3", "k5_e6", "k5_e6") and graph.labels[5] == "k3_e4"
    assert graph.attribute_matrix()[0, 4] == 192  # the resolution is the first node's input size
    for other in sampled(space):
        assert space.graph(other).num_nodes == 4 + sum(int(other[f"d_{s}"]) for s in range(5))
    smaller = space.parse(arch.string.replace('"r":192', '"r":128'))
    assert space.graph(smaller).labels == graph.labels
    assert space.graph(smaller).attributes != graph.attributes


def test_graph_rejects_bad_edges_and_other_spaces() -> None:
    with pytest.raises(ValueError, match="distinct nodes"):
        ArchitectureGraph(labels=("a", "b"), edges=((0, 2),))
    with pytest.raises(ValueError, match="attribute rows"):
        ArchitectureGraph(labels=("a", "b"), edges=((0, 1),), attributes=((1.0,),))
    arch = FBNetSpace().sample(np.random.default_rng(0))
    with pytest.raises(ValueError):
        NB201Space().graph(arch)


def test_a_space_without_graphs_is_no_graph_space_and_gnn_refuses_it() -> None:
    from latency_predictors import GraphPredictor
    from tests.nas.toy import ToySpace

    assert all(isinstance(space, GraphSpace) for space in (NB201Space(), FBNetSpace(), OFASpace()))
    assert not isinstance(ToySpace(), GraphSpace)
    with pytest.raises(TypeError, match="ToySpace"):
        GraphPredictor(ToySpace(), "0123456789abcdef")


def test_graph_batch_pads_and_normalises_by_hand() -> None:
    chain = ArchitectureGraph(labels=("a", "b", "c"), edges=((0, 1), (1, 2)))
    pair = ArchitectureGraph(labels=("b", "a"), edges=((0, 1),))
    batch = GraphBatch.of([chain, pair, chain], vocabulary=("a", "b", "c"))
    np.testing.assert_array_equal(batch.labels, [[0, 1, 2], [1, 0, -1], [0, 1, 2]])
    np.testing.assert_array_equal(batch.pattern, [0, 1, 0])
    np.testing.assert_array_equal(batch.num_nodes, [3, 2, 3])
    # D^-1/2 (A + A^T + I) D^-1/2: chain degrees 2, 3, 2; the pair's degrees 2, 2; padding zero
    s = 1 / np.sqrt(6)
    expected = [[[1 / 2, s, 0], [s, 1 / 3, s], [0, s, 1 / 2]], [[1 / 2, 1 / 2, 0], [1 / 2, 1 / 2, 0], [0, 0, 0]]]
    np.testing.assert_allclose(batch.normalised_adjacency(), expected, rtol=1e-15)
    assert len(batch.subset(np.array([1]))) == 1 and batch.subset(np.array([1])).pattern[0] == 1
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        GraphBatch.of([ArchitectureGraph(labels=("z",), edges=())], vocabulary=("a",))
    with pytest.raises(ValueError, match="one-graph template"):
        batch.relabelled([0], np.zeros((2, 1), dtype=np.int64))
