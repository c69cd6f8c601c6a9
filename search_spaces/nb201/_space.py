"""The NAS-Bench-201 cell space: 5 ops on the 6 edges of a 4-node cell, 15,625 cells."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from nas import (
    AdditiveSpace,
    Architecture,
    ArchitectureError,
    ArchitectureGraph,
    DerivedFeaturesSpace,
    DisconnectedSpace,
    FlopsSpace,
    Gene,
    GeneLabelledGraphSpace,
    IsomorphicSpace,
    LayerSpec,
    SupernetSpace,
)
from nas._architecture import GeneValue
from search_spaces.nb201 import _features, _layers
from search_spaces.nb201._model import EdgeSpec, build_network, network_spec
from search_spaces.nb201._ops import OPS

if TYPE_CHECKING:
    from search_spaces.nb201._supernet import NB201Supernet

NUM_NODES = 4
#: (to_node, from_node) of each edge, in the order of NB201's string |~0|+|~0|~1|+|~0|~1|~2|.
EDGES: tuple[tuple[int, int], ...] = tuple((to, src) for to in range(1, NUM_NODES) for src in range(to))
GENE_NAMES: tuple[str, ...] = tuple(f"edge_{to}_{src}" for to, src in EDGES)


def _op_graph_edges() -> tuple[tuple[int, int], ...]:
    op_node = {edge: 1 + k for k, edge in enumerate(EDGES)}
    output = len(EDGES) + 1
    edges = []
    for (to, src), node in op_node.items():
        if src == 0:
            edges.append((0, node))
        else:
            edges.extend((op_node[(src, earlier)], node) for earlier in range(src))
        if to == NUM_NODES - 1:
            edges.append((node, output))
    return tuple(sorted(edges))


#: (src, dst) node pairs of :meth:`NB201Space.graph`: the same for every cell.
_OP_GRAPH_EDGES = _op_graph_edges()


class NB201Space(
    AdditiveSpace,
    GeneLabelledGraphSpace,
    SupernetSpace,
    FlopsSpace,
    IsomorphicSpace,
    DerivedFeaturesSpace,
    DisconnectedSpace,
):
    """NAS-Bench-201's topology space, with the published macro network around the cell.

    Every op costs the same on every edge and the macro fixes each cell's shape, so costs add up
    over genes (:class:`~nas.AdditiveSpace`); the graph is the cell's fixed wiring with an op
    per gene (:class:`~nas.GeneLabelledGraphSpace`).

    Canonical strings are NAS-Bench-201's own, e.g.
    ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``.
    The benchmark tables use ``channels=16, cells_per_stage=5`` and 32x32 inputs.
    """

    name = "nb201"
    input_shape = (3, 32, 32)

    def __init__(self, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5) -> None:
        if num_classes < 1 or channels < 1 or cells_per_stage < 1:
            raise ValueError(
                f"NB201Space needs positive sizes, got num_classes={num_classes}, "
                f"channels={channels}, cells_per_stage={cells_per_stage}"
            )
        self.num_classes = num_classes
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self._genes = tuple(Gene(name, OPS) for name in GENE_NAMES)

    def genes(self) -> tuple[Gene, ...]:
        return self._genes

    def format(self, genes: Mapping[str, GeneValue]) -> str:
        nodes = []
        for to in range(1, NUM_NODES):
            tokens = "|".join(f"{genes[f'edge_{to}_{src}']}~{src}" for src in range(to))
            nodes.append(f"|{tokens}|")
        return "+".join(nodes)

    def parse_genes(self, string: str) -> dict[str, GeneValue]:
        return parse_cell(string)

    def build(self, arch: Architecture, seed: int = 0) -> nn.Module:
        """The published network for ``arch``; its weights are drawn from ``seed`` only."""
        if arch.space != self.name:
            raise ArchitectureError(f"{self.name} cannot build a {arch.space!r} architecture")
        edges = tuple(EdgeSpec(to, src, str(arch[f"edge_{to}_{src}"])) for to, src in EDGES)
        spec = network_spec(edges, self.num_classes, self.channels, self.cells_per_stage)
        return build_network(spec, seed)

    def layers(self, arch: Architecture) -> tuple[LayerSpec, ...]:
        """``arch``'s network as lookup-table layers: stem; per cell its six edge ops (NB201's
        string order) and ``cell_sum`` (the node additions); reductions; head. See
        :mod:`search_spaces.nb201._layers` for the key formats."""
        if arch.space != self.name:
            raise ArchitectureError(f"{self.name} cannot list the layers of a {arch.space!r} architecture")
        ops = tuple(str(arch[name]) for name in GENE_NAMES)
        return _layers.network_layers(ops, self.channels, self.cells_per_stage, self.input_shape[1], self.num_classes)

    def build_layer(self, layer: LayerSpec, seed: int = 0) -> nn.Module:
        """The module of one layer key (any NB201 key, whatever this space's sizes); its weights
        are drawn from ``seed`` only."""
        return _layers.build_layer(layer, seed)

    def distinct_layers(self) -> tuple[LayerSpec, ...]:
        """Every layer key some network of this space has, once each: what a lookup table holds."""
        return _layers.distinct_layers(self.channels, self.input_shape[1], self.num_classes)

    def layer_kind(self, key: str) -> str:
        return _layers.parse_layer_key(key).kind

    def flops(self, arch: Architecture) -> int:
        """FLOPs of ``arch`` at batch 1, exactly as ``nas.objectives.Flops`` counts them on the
        built network (2 x the multiply-accumulates of convolutions and the classifier; BN,
        pooling, activations and additions are free), from the macro alone without building it.

        Per C-channel cell on an HxW map: ``nor_conv_3x3`` 9C^2 HW and ``nor_conv_1x1`` C^2 HW
        MACs per edge, the other ops none. A reduction C->2C from HxW: a 3x3 stride-2 conv
        (9 x C x 2C at H/2 x W/2), a 3x3 conv 2C->2C and the shortcut's 1x1 conv C->2C after
        its 2x2 average pool, both at H/2 x W/2. Plus the 3x3 stem (3->C at HxW) and the
        linear classifier (4C x classes).
        """
        if arch.space != self.name:
            raise ArchitectureError(f"{self.name} cannot count the FLOPs of a {arch.space!r} architecture")
        kernel_area = {"nor_conv_1x1": 1, "nor_conv_3x3": 9}
        cell_area = sum(kernel_area.get(str(arch[name]), 0) for name in GENE_NAMES)
        size = self.input_shape[1]
        channels = self.channels
        macs = 3 * 9 * channels * size * size  # stem
        for stage in range(3):
            if stage > 0:
                out_size = (size - 1) // 2 + 1  # 3x3 conv, stride 2, padding 1
                wide = 2 * channels
                macs += (9 * channels * wide + 9 * wide * wide + channels * wide) * out_size**2
                size, channels = out_size, wide
            macs += self.cells_per_stage * cell_area * channels * channels * size * size
        macs += channels * self.num_classes  # classifier (channels is now 4C)
        return 2 * macs

    FEATURES_VERSION = _features.VERSION

    def derived_features(self, gene_indices: np.ndarray) -> np.ndarray:
        """Live structure and isomorphism-class columns (:data:`_features.FEATURE_NAMES`); see
        :mod:`search_spaces.nb201._features` for why and what they bought on the shared table."""
        return _features.features(gene_indices)

    def isomorphism_classes_of(self, gene_indices: np.ndarray) -> np.ndarray:
        """NB201's isomorphism class (0..6465) of each cell: equal ids compute the same function."""
        return _features.isomorphism_class(gene_indices)

    def disconnected_of(self, gene_indices: np.ndarray) -> np.ndarray:
        """Cells whose output node no path of non-``none`` edges reaches (:func:`is_disconnected`)."""
        return _features.disconnected(gene_indices)

    def graph(self, arch: Architecture) -> ArchitectureGraph:
        """The cell as BRP-NAS's op-on-node DAG: node 0 ``input``, nodes 1-6 the six edge ops in
        NB201's string order, node 7 ``output``. Op ``(to, src)`` reads cell node ``src``: the
        input when ``src`` is 0, else every op into ``src``; ops into cell node 3 feed ``output``.
        ``none`` ops stay nodes: the published networks compute them (see the tables' README).
        No node attributes: every cell of a network has the same wiring and sizes."""
        if arch.space != self.name:
            raise ArchitectureError(f"{self.name} cannot draw the graph of a {arch.space!r} architecture")
        labels = ("input", *(str(arch[name]) for name in GENE_NAMES), "output")
        return ArchitectureGraph(labels=labels, edges=_OP_GRAPH_EDGES)

    def graph_labels(self) -> tuple[str, ...]:
        return ("input", *OPS, "output")

    def supernet(self, seed: int = 0) -> NB201Supernet:
        """All five ops on every edge with shared weights, drawn from ``seed`` only."""
        from search_spaces.nb201._supernet import NB201Supernet  # it imports this module

        return NB201Supernet(self, seed=seed)

    def smallest(self) -> Architecture:
        """Every edge ``none``: no op has FLOPs or parameters, only stem, reductions and head."""
        return self.architecture({name: "none" for name in GENE_NAMES})

    def largest(self) -> Architecture:
        """Every edge ``nor_conv_3x3``: the op with the most FLOPs (9C^2 MACs per pixel against
        C^2 for the 1x1 conv and none for pooling, skip and none) and the most parameters."""
        return self.architecture({name: "nor_conv_3x3" for name in GENE_NAMES})

    def __repr__(self) -> str:
        return (
            f"NB201Space(num_classes={self.num_classes}, channels={self.channels}, "
            f"cells_per_stage={self.cells_per_stage})"
        )


def parse_cell(string: Any) -> dict[str, GeneValue]:
    """Genes of an NB201 string; errors name the bad token, its 1-based position and the rule."""
    if not isinstance(string, str):
        raise ArchitectureError(f"an NB201 cell must be a string, got {type(string).__name__}")
    if not string:
        raise ArchitectureError("an NB201 cell string is empty; expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2|")
    groups = string.split("+")
    if len(groups) != NUM_NODES - 1:
        raise ArchitectureError(
            f"{string!r} has {len(groups)} node(s) separated by '+'; an NB201 cell has {NUM_NODES - 1}"
        )
    genes: dict[str, GeneValue] = {}
    position = 0
    for to, group in enumerate(groups, start=1):
        if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
            raise ArchitectureError(f"node {to} {group!r} of {string!r} must start and end with '|'")
        tokens = group[1:-1].split("|")
        if len(tokens) != to:
            raise ArchitectureError(
                f"node {to} {group!r} of {string!r} has {len(tokens)} edge(s); node {to} takes "
                f"exactly {to}, from node(s) {_sources(to)}"
            )
        for src, token in enumerate(tokens):
            position += 1
            genes[f"edge_{to}_{src}"] = _parse_token(token, position, to, src, string)
    return genes


def _parse_token(token: str, position: int, to: int, src: int, string: str) -> str:
    where = f"token {position} {token!r} (node {to}) of {string!r}"
    op, tilde, index = token.partition("~")
    if not tilde:
        raise ArchitectureError(f"{where} is not of the form op~input")
    if op not in OPS:
        raise ArchitectureError(f"{where} has unknown op {op!r}; allowed ops: {', '.join(OPS)}")
    if index != str(src):
        raise ArchitectureError(
            f"{where} has input {index!r}; expected ~{src} (node {to} reads node(s) {_sources(to)}, in that order)"
        )
    return op


def _sources(to: int) -> str:
    return ", ".join(str(src) for src in range(to))


def is_disconnected(arch: Architecture) -> bool:
    """Whether no path of non-``none`` edges leads from the input (node 0) to the output (node 3).

    Such cells output zeros; they are valid architectures (341 of the 15,625), but a cell's
    accuracy is then chance and several latency tables hold near-zero values for them.
    """
    reached = {0}
    for to, src in EDGES:  # edges come in topological order of their target node
        if src in reached and arch[f"edge_{to}_{src}"] != "none":
            reached.add(to)
    return NUM_NODES - 1 not in reached
