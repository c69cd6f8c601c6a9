"""Optional abilities of a space: declared by inheritance, asked with isinstance, their caches
kept per space instance (not per ``repr``)."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

from nas import (
    Architecture,
    ArchitectureGraph,
    GeneLabelledGraphSpace,
    GraphSpace,
    LayeredSpace,
    LayerSpec,
    SearchSpace,
    features_version,
    isomorphism_classes,
)
from nas.testing import GraphContract
from tests.nas.toy import ToySpace


class WideLayers(ToySpace, LayeredSpace):
    """The toy as one layer per network whose width is a constructor argument; no ``__repr__``,
    so two configurations print alike (a cache keyed by ``repr`` would mix them up)."""

    def __init__(self, width: int) -> None:
        self.width = width

    def layers(self, arch: Architecture) -> tuple[LayerSpec, ...]:
        return (LayerSpec(f"conv_{arch['kernel_0']}", (3, 8, 8)),)

    def distinct_layers(self) -> tuple[LayerSpec, ...]:
        return tuple(LayerSpec(f"conv_{k}", (3, 8, 8)) for k in (1, 3))

    def build_layer(self, layer: LayerSpec, seed: int = 0) -> nn.Module:
        kernel = int(layer.key.split("_")[1])
        return nn.Conv2d(3, self.width, kernel, padding=kernel // 2)


class ChainGraph(ToySpace, GeneLabelledGraphSpace):
    """The toy as a chain input -> one node per gene, labelled with its value -> output."""

    def graph(self, arch: Architecture) -> ArchitectureGraph:
        labels = ("input", *(str(value) for _, value in arch.genes), "output")
        return ArchitectureGraph(labels=labels, edges=tuple((k, k + 1) for k in range(len(labels) - 1)))

    def graph_labels(self) -> tuple[str, ...]:
        return ("input", "1", "3", "4", "8", "16", "32", "output")


class TestChainGraph(GraphContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return ChainGraph()


def test_layer_statistics_are_kept_per_space_instance() -> None:
    narrow, wide = WideLayers(4), WideLayers(32)
    assert repr(narrow) == repr(wide)
    layer = narrow.layers(narrow.parse("4-4-3-3"))
    (small,), (large,) = narrow.layer_stats(layer), wide.layer_stats(layer)
    assert (small.params, large.params) == (3 * 9 * 4 + 4, 3 * 9 * 32 + 32)
    assert large.flops == 8 * small.flops


def test_a_plain_space_has_no_ability() -> None:
    space = ToySpace()
    archs = [space.parse("4-8-1-3")]
    assert not isinstance(space, LayeredSpace | GraphSpace)
    assert isomorphism_classes(space, archs) is None
    assert features_version(space) == 1


def test_a_gene_labelled_graph_is_gathered_from_the_genes() -> None:
    space = ChainGraph()
    batch = space.graph_batch([space.parse("4-8-1-3"), space.parse("32-16-3-1")])
    vocabulary = space.graph_labels()
    labels = [[vocabulary[i] for i in row] for row in batch.labels]
    assert labels == [["input", "4", "8", "1", "3", "output"], ["input", "32", "16", "3", "1", "output"]]
    assert np.array_equal(batch.pattern, [0, 0])
