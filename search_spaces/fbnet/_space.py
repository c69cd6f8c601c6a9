"""The FBNet space: one of nine blocks at each of 22 layers of a fixed macro-architecture."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from torch import nn

from nas import (
    AdditiveSpace,
    Architecture,
    ArchitectureError,
    ArchitectureGraph,
    FlopsSpace,
    Gene,
    GeneLabelledGraphSpace,
    LayerSpec,
    SupernetSpace,
)
from nas._architecture import GeneValue
from search_spaces._init import materialise
from search_spaces.fbnet import _layers
from search_spaces.fbnet._blocks import (
    BLOCKS,
    MACROS,
    OPS,
    FBNetLayer,
    FBNetMacro,
    FBNetNetwork,
    layer_flops,
    network_flops,
    network_spec,
)

if TYPE_CHECKING:
    from search_spaces.fbnet._supernet import FBNetSupernet

NUM_LAYERS = 22
GENE_NAMES: tuple[str, ...] = tuple(f"layer_{i}" for i in range(NUM_LAYERS))
SEPARATOR = "|"


class FBNetSpace(AdditiveSpace, GeneLabelledGraphSpace, SupernetSpace, FlopsSpace):
    """FBNet's layer-wise space (9^22 networks) in HW-NAS-Bench's macro-architecture.

    Canonical strings are the benchmark tables' own: the 22 block names joined by ``|``, e.g.
    ``k5_e6|skip|k3_e1_g2|...``. ``macro`` is a :class:`FBNetMacro` or a name from ``MACROS``
    (``"cifar100"``, the tables' variant, or ``"imagenet"``); ``num_classes`` overrides the
    macro's head width. Both variants share the name ``fbnet``: an architecture is the same list
    of blocks whichever skeleton it is built into.

    Each layer's input size and channels are fixed by the macro, so a block costs the same
    wherever the other layers' blocks change (:class:`~nas.AdditiveSpace`); the graph is a chain
    with a block per gene (:class:`~nas.GeneLabelledGraphSpace`).
    """

    name = "fbnet"

    def __init__(self, macro: str | FBNetMacro = "cifar100", num_classes: int | None = None) -> None:
        if isinstance(macro, str):
            if macro not in MACROS:
                raise ValueError(f"unknown FBNet macro {macro!r}; known macros: {', '.join(MACROS)}")
            macro = MACROS[macro]
        if len(macro.layers) != NUM_LAYERS:
            raise ValueError(f"an FBNet macro has {NUM_LAYERS} layers, this one {len(macro.layers)}")
        if num_classes is not None:
            macro = replace(macro, num_classes=num_classes)  # replace re-runs the macro's checks
        self.macro = macro
        self.num_classes = macro.num_classes
        self.input_shape = (3, macro.resolution, macro.resolution)
        self._genes = tuple(Gene(name, OPS) for name in GENE_NAMES)

    def genes(self) -> tuple[Gene, ...]:
        return self._genes

    def format(self, genes: Mapping[str, GeneValue]) -> str:
        return SEPARATOR.join(str(genes[name]) for name in GENE_NAMES)

    def parse_genes(self, string: str) -> dict[str, GeneValue]:
        return parse_blocks(string)

    def ops(self, arch: Architecture) -> tuple[str, ...]:
        """The block name at each layer of ``arch``."""
        if arch.space != self.name:
            raise ArchitectureError(f"{arch.string!r} is a {arch.space!r} architecture, not an {self.name} one")
        params = arch.params
        return tuple(str(params[name]) for name in GENE_NAMES)

    def build(self, arch: Architecture, seed: int = 0) -> nn.Module:
        """The network for ``arch`` in this space's macro; its weights are drawn from ``seed`` only."""
        spec = network_spec(self.macro, self.ops(arch))
        return materialise(lambda: FBNetNetwork(spec), seed)

    def layers(self, arch: Architecture) -> tuple[LayerSpec, ...]:
        """``arch``'s network as lookup-table layers: stem, its 22 blocks, head, each keyed by its
        configuration (block, channels, stride, input size); see :mod:`search_spaces.fbnet._layers`."""
        return self._layer_table.network(self.ops(arch))

    def build_layer(self, layer: LayerSpec, seed: int = 0) -> nn.Module:
        """The module of one layer key (any FBNet key); its weights are drawn from ``seed`` only."""
        return _layers.build_layer(layer, seed)

    def distinct_layers(self) -> tuple[LayerSpec, ...]:
        """Every layer key some network of this space has, once each: what a lookup table holds."""
        return self._layer_table.distinct()

    @cached_property
    def _layer_table(self) -> _layers.LayerTable:
        return _layers.LayerTable.of(self.macro)

    def layer_kind(self, key: str) -> str:
        return _layers.parse_layer_key(key).kind

    def graph(self, arch: Architecture) -> ArchitectureGraph:
        """A chain: ``stem``, the 22 layers labelled by their block, ``head``. Each node has the
        attributes (in channels, out channels, stride, input size): the same block costs very
        different amounts at different positions, and a chain alone hides where a node sits."""
        ops = self.ops(arch)
        macro = self.macro
        sizes = macro.input_sizes()
        attributes = [(3.0, float(macro.stem_channels), float(macro.stem_stride), float(macro.resolution))]
        attributes.extend(
            (float(shape.in_channels), float(shape.out_channels), float(shape.stride), float(size))
            for shape, size in zip(macro.layers, sizes)
        )
        attributes.append((float(macro.last_channels), float(macro.head_channels), 1.0, float(sizes[-1])))
        labels = ("stem", *ops, "head")
        return ArchitectureGraph(
            labels=labels,
            edges=tuple((k, k + 1) for k in range(len(labels) - 1)),
            attributes=tuple(attributes),
        )

    def graph_labels(self) -> tuple[str, ...]:
        return ("stem", *OPS, "head")

    def supernet(self, seed: int = 0) -> FBNetSupernet:
        from search_spaces.fbnet._supernet import FBNetSupernet

        return FBNetSupernet(self, seed=seed)

    def flops(self, arch: Architecture) -> int:
        """FLOPs of ``arch`` at batch 1 (convolutions and the classifier, as ``nas.objectives.Flops``
        counts them), from the macro alone without building anything."""
        return network_flops(network_spec(self.macro, self.ops(arch)))

    def smallest(self) -> Architecture:
        """The fewest-FLOPs block at every layer: FLOPs add up over layers (each layer's input
        size is fixed by the macro), so this is the fewest-FLOPs network.

        With both macros that is ``skip`` (an identity, or one 1x1 conv where the shape changes)
        except at layers 13 (64->112) and 21 (184->352): there, at stride 1, ``k3_e1_g2``'s two
        half-width grouped 1x1 convs plus a 3x3 depthwise cost less than skip's full 1x1 conv
        (6,208 against 7,168 multiply-accumulates per pixel at layer 13).
        """
        return self._per_layer(min)

    def largest(self) -> Architecture:
        """The most-FLOPs block at every layer: ``k5_e6`` everywhere, with both macros."""
        return self._per_layer(max)

    def _per_layer(self, pick: Callable[..., str]) -> Architecture:
        genes = {}
        for name, shape, size in zip(GENE_NAMES, self.macro.layers, self.macro.input_sizes()):
            cost = {op: layer_flops(FBNetLayer(shape, BLOCKS[op]), size) for op in OPS}
            # min/max return the first of equal costs, so ties go to the earlier op of OPS.
            genes[name] = pick(OPS, key=cost.__getitem__)
        return self.architecture(genes)

    def __repr__(self) -> str:
        for name, known in MACROS.items():
            if replace(known, num_classes=self.num_classes) == self.macro:
                extra = "" if known.num_classes == self.num_classes else f", num_classes={self.num_classes}"
                return f"FBNetSpace(macro={name!r}{extra})"
        return f"FBNetSpace(macro={self.macro!r})"


def parse_blocks(string: Any) -> dict[str, GeneValue]:
    """Genes of an FBNet string; errors name the bad token, its position and the allowed blocks."""
    if not isinstance(string, str):
        raise ArchitectureError(f"an FBNet architecture must be a string, got {type(string).__name__}")
    tokens = string.split(SEPARATOR)
    if len(tokens) != NUM_LAYERS:
        raise ArchitectureError(
            f"{string!r} has {len(tokens)} layer(s) separated by {SEPARATOR!r}; an FBNet architecture has {NUM_LAYERS}"
        )
    genes: dict[str, GeneValue] = {}
    for position, (name, token) in enumerate(zip(GENE_NAMES, tokens)):
        if token not in BLOCKS:
            raise ArchitectureError(
                f"token {position + 1} of {NUM_LAYERS} ({name}) {token!r} of {string!r} is not an "
                f"FBNet block; allowed blocks: {', '.join(OPS)}"
            )
        genes[name] = token
    return genes
