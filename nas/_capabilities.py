"""Optional abilities of a search space, each a small interface of its own.

A space inherits the ones it has (as Archai's ``discrete_search/api`` does) and callers ask
``isinstance(space, GraphSpace)`` instead of catching ``NotImplementedError``: a space that lacks
an ability has no method pretending to have it. Caches an ability needs (a layer's statistics, a
graph template) live on the space instance that computed them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nas._architecture import Architecture
from nas._space import SearchSpace

if TYPE_CHECKING:
    from torch import nn

    from nas._graph import ArchitectureGraph, GraphBatch
    from nas._supernet import Supernet


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a network as a lookup-table key: the same key, the same computation.

    ``key`` names the layer's configuration (op, channels, stride, resolution...), never its
    position unless the position changes the computation; ``input_shape`` is one sample's input.
    A :class:`LayeredSpace` lists a network as such layers, in order, so per-layer latencies
    measured in isolation can be summed into a network's.
    """

    key: str
    input_shape: tuple[int, ...]


@dataclass(frozen=True)
class LayerStats:
    """One built layer's parameters, memory traffic (elements of its input, output and weights),
    FLOPs (as ``nas.objectives.Flops`` counts a network's: 2 x MACs) and activation traffic
    (elements every op of the layer reads and writes: each leaf module's inputs and output, so
    the tensors inside a block count too), all at batch 1.

    Activation traffic is what a device bound by moving activations pays for (a GPU at batch 64
    runs FBNet's wide early blocks at the speed their expanded tensors stream through memory),
    and what ``traffic`` misses: an expansion-6 block's inner tensors are six times its input.
    """

    params: int
    traffic: int
    flops: int
    activation_traffic: int


def _count_moved(moved: list[int], module: Any, inputs: tuple[Any, ...], output: Any) -> None:
    """Forward hook of a leaf module: add the elements it read and wrote to ``moved[0]``."""
    import torch

    tensors = [*inputs, *(output if isinstance(output, tuple | list) else (output,))]
    moved[0] += sum(t.numel() for t in tensors if isinstance(t, torch.Tensor))


class LayeredSpace(SearchSpace):
    """A space that lists each network as lookup-table layers and builds any layer alone."""

    @abstractmethod
    def layers(self, arch: Architecture) -> tuple[LayerSpec, ...]:
        """``arch``'s network as a sequence of lookup-table layers (stem to classifier)."""

    @abstractmethod
    def distinct_layers(self) -> tuple[LayerSpec, ...]:
        """Every layer configuration this space's networks can contain, once each (what a
        lookup table must measure)."""

    @abstractmethod
    def build_layer(self, layer: LayerSpec, seed: int = 0) -> nn.Module:
        """A standalone module computing ``layer`` on an input of ``layer.input_shape``."""

    def layer_kind(self, key: str) -> str:
        """What keys a lookup table may price alike when it lacks one: ``key`` without its sizes
        (``op:nor_conv_3x3`` for NB201's ``op:nor_conv_3x3:c16:h32``). A space whose keys name
        no kinds keeps this default: each key is its own kind."""
        return key

    def layer_stats(self, layers: Sequence[LayerSpec]) -> list[LayerStats]:
        """Each layer's :class:`LayerStats`; a key this space has not seen before is built and
        run once (eval mode, batch 1, no grad, FLOPs by ``FlopCounterMode``) and remembered."""
        known = self._layer_stats
        missing = {layer.key: layer for layer in layers if layer.key not in known}
        if missing:
            import torch
            from torch.utils.flop_counter import FlopCounterMode

            with torch.no_grad():
                for key, layer in missing.items():
                    module = self.build_layer(layer).eval()
                    inputs = torch.zeros(1, *layer.input_shape)
                    moved = [0]
                    hooks = [
                        m.register_forward_hook(partial(_count_moved, moved))
                        for m in module.modules()
                        if next(m.children(), None) is None
                    ]
                    with FlopCounterMode(display=False) as counter:
                        outputs = module(inputs)
                    for hook in hooks:
                        hook.remove()
                    params = sum(p.numel() for p in module.parameters())
                    traffic = inputs.numel() + outputs.numel() + params
                    known[key] = LayerStats(params, traffic, int(counter.get_total_flops()), moved[0])
        return [known[layer.key] for layer in layers]

    @cached_property
    def _layer_stats(self) -> dict[str, LayerStats]:
        return {}


class AdditiveSpace(LayeredSpace):
    """A layered space whose every gene value contributes layers of its own, shaped by the macro
    alone (NB201, FBNet; not OFA, whose depths and resolution reshape other genes' layers).

    Then layer-key counts, and any cost summed over layers (FLOPs, parameters, a lookup table's
    latency), are a constant plus one term per gene value: predictors turn them into one product
    with the one-hot genes (``encoding.sum_per_choice``) instead of a layer list per network.
    """


class GraphSpace(SearchSpace):
    """A space that draws each architecture as a labelled DAG, for graph predictors."""

    @abstractmethod
    def graph(self, arch: Architecture) -> ArchitectureGraph:
        """``arch`` as a labelled DAG (ops or blocks as nodes, data flow as edges); labels come
        from :meth:`graph_labels`."""

    @abstractmethod
    def graph_labels(self) -> tuple[str, ...]:
        """Every node label :meth:`graph` can give, in a fixed order (one-hot node features)."""

    def graph_batch(self, archs: Sequence[Architecture]) -> GraphBatch:
        """:meth:`graph` of each architecture as one :class:`~nas.GraphBatch` (labels indexing
        :meth:`graph_labels`), a graph at a time; spaces override it with array code (drawing
        graphs one at a time in Python bounds how fast a graph predictor predicts a batch)."""
        from nas._graph import GraphBatch

        return GraphBatch.of([self.graph(arch) for arch in archs], self.graph_labels())


class GeneLabelledGraphSpace(GraphSpace):
    """A graph space whose :meth:`graph` is one fixed wiring, node ``1 + i`` labelled with gene
    ``i``'s value (NB201's cell, FBNet's chain): :meth:`graph_batch` is then one gather."""

    def graph_batch(self, archs: Sequence[Architecture]) -> GraphBatch:
        template, lookup = self._graph_template
        indices = self.encoding.indices(archs)
        genes = np.arange(indices.shape[1])
        return template.relabelled(range(1, 1 + len(genes)), lookup[genes[None, :], indices])

    @cached_property
    def _graph_template(self) -> tuple[GraphBatch, np.ndarray]:
        """The graph of the first choices, and each gene's choices as label indices (genes,
        most choices)."""
        from nas._graph import GraphBatch

        vocabulary, genes = self.graph_labels(), self.genes()
        lookup = np.full((len(genes), max(len(g.choices) for g in genes)), -1, dtype=np.int64)
        for row, gene in enumerate(genes):
            lookup[row, : len(gene.choices)] = [vocabulary.index(str(value)) for value in gene.choices]
        first = self.architecture({g.name: g.choices[0] for g in genes})
        return GraphBatch.of([self.graph(first)], vocabulary), lookup


class BoundedSpace(SearchSpace):
    """A space that names its least- and most-compute architectures (the sandwich rule's slices;
    also where layer coverage starts)."""

    @abstractmethod
    def smallest(self) -> Architecture:
        """The architecture with the least compute."""

    @abstractmethod
    def largest(self) -> Architecture:
        """The architecture with the most compute."""


class SupernetSpace(BoundedSpace):
    """A space with a weight-sharing supernet over all its architectures."""

    @abstractmethod
    def supernet(self, seed: int = 0) -> Supernet:
        """One module holding shared weights for every architecture of this space, drawn from
        ``seed`` alone."""


class FlopsSpace(SearchSpace):
    """A space that counts a network's FLOPs from its genes, without building it."""

    @abstractmethod
    def flops(self, arch: Architecture) -> int:
        """FLOPs of ``arch`` at batch 1, exactly as ``nas.objectives.Flops`` counts them on the
        built network (2 x the multiply-accumulates of convolutions and linear layers)."""


class BatchFlopsSpace(FlopsSpace):
    """A FLOPs space that also counts a whole batch with array code (OFA: one gather)."""

    @abstractmethod
    def batch_flops(self, gene_indices: np.ndarray) -> np.ndarray:
        """:meth:`flops` of each row of ``encoding.indices(archs)``, float64."""


class IsomorphicSpace(SearchSpace):
    """A space whose different gene vectors can compute the same function beyond what
    :meth:`normalise` merges (NB201's isomorphic cells); predictors share measurements within a
    class."""

    @abstractmethod
    def isomorphism_classes_of(self, gene_indices: np.ndarray) -> np.ndarray:
        """An integer class per row of ``encoding.indices(archs)``, equal for architectures that
        compute the same function."""


class DisconnectedSpace(SearchSpace):
    """A space some of whose networks have no path from input to output, so their output ignores
    the input (NB201's 341 cells whose every path meets a ``none`` edge): valid, chance accuracy,
    never worth a search's evaluation."""

    @abstractmethod
    def disconnected_of(self, gene_indices: np.ndarray) -> np.ndarray:
        """Whether each row of ``encoding.indices(archs)`` is such a network, bool."""


class ConditionalSpace(SearchSpace):
    """A space some of whose genes shape a network only for some values of other genes (OFA's
    kernel and expand genes beyond a stage's depth)."""

    @abstractmethod
    def active_mask(self, gene_indices: np.ndarray) -> np.ndarray:
        """Which genes shape each network, bool, the shape of ``gene_indices``."""


class DerivedFeaturesSpace(SearchSpace):
    """A space that adds predictor columns of its own, computed from the genes (structure they
    imply, e.g. which of NB201's ops are live), after the one-hot genes and value counts."""

    #: Version of the space's predictor features; predictors record it and refuse another one, so
    #: a space that adds or changes columns bumps it (above :data:`PLAIN_FEATURES_VERSION`).
    FEATURES_VERSION: ClassVar[int]

    @abstractmethod
    def derived_features(self, gene_indices: np.ndarray) -> np.ndarray:
        """Extra predictor columns for each row of ``encoding.indices(archs)``, float32."""


#: The features version of a space without derived columns (one-hot genes, then value counts).
PLAIN_FEATURES_VERSION = 1


def features_version(space: SearchSpace) -> int:
    """The version of ``space``'s predictor features, which predictor files record."""
    return space.FEATURES_VERSION if isinstance(space, DerivedFeaturesSpace) else PLAIN_FEATURES_VERSION


def isomorphism_classes(space: SearchSpace, archs: Sequence[Architecture]) -> np.ndarray | None:
    """Each architecture's isomorphism class, or ``None`` when ``space`` has no such classes."""
    if not isinstance(space, IsomorphicSpace):
        return None
    return space.isomorphism_classes_of(space.encoding.indices(archs))


def dedup_keys(space: SearchSpace, gene_indices: np.ndarray) -> list[str]:
    """What makes two gene vectors one network for a search: their isomorphism class where the
    space has them (``class:<id>``), else their canonical gene vector (``genes:<i>.<j>...``)."""
    if isinstance(space, IsomorphicSpace):
        return [f"class:{c}" for c in space.isomorphism_classes_of(gene_indices)]
    return ["genes:" + ".".join(map(str, row)) for row in np.asarray(gene_indices).tolist()]


def dedup_key(space: SearchSpace, arch: Architecture) -> str:
    """:func:`dedup_keys` of one architecture."""
    return dedup_keys(space, space.encoding.indices([arch]))[0]
