"""The search-space interface: genes declared as data, everything else derived from them."""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nas._architecture import Architecture, GeneValue

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from nas._graph import ArchitectureGraph, GraphBatch
    from nas._supernet import Supernet


class ArchitectureError(ValueError):
    """An architecture string or gene value that the space does not accept."""


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a network as a lookup-table key: the same key, the same computation.

    ``key`` names the layer's configuration (op, channels, stride, resolution...), never its
    position unless the position changes the computation; ``input_shape`` is one sample's input.
    A space's :meth:`SearchSpace.layers` lists a network as such layers, in order, so per-layer
    latencies measured in isolation can be summed into a network's.
    """

    key: str
    input_shape: tuple[int, ...]


@dataclass(frozen=True)
class Gene:
    """One categorical decision of a space: its name and the values it may take."""

    name: str
    choices: tuple[GeneValue, ...]

    def check(self, value: Any) -> GeneValue:
        if value not in self.choices:
            raise ArchitectureError(
                f"gene {self.name!r} has value {value!r}; allowed values: " + ", ".join(repr(c) for c in self.choices)
            )
        # Return the declared choice so 3.0 and 3 normalise to the declared type.
        return self.choices[self.choices.index(value)]


class SearchSpace(ABC):
    """A family of networks described by a fixed-length vector of categorical genes.

    A subclass declares its genes (:meth:`genes`), prints and parses canonical strings, and builds
    a plain ``nn.Module``. Sampling, Optuna distributions, enumeration and one-hot features are
    derived here from the genes, so every space gets them identically.
    """

    #: The space's name, as used in architectures, tables and config files.
    name: str
    #: Shape of one input sample, (channels, height, width), for spaces whose input is fixed;
    #: spaces with a resolution gene override :meth:`input_shape_of` instead.
    input_shape: tuple[int, ...]
    #: Outputs of the classifier head.
    num_classes: int
    #: Version of :meth:`features`' columns; predictors record it and refuse another one. A space
    #: that adds or changes columns (in :meth:`derived_features`) bumps it.
    FEATURES_VERSION: ClassVar[int] = 1
    #: Whether each gene value contributes layers of its own whose shapes the macro fixes (NB201,
    #: FBNet; not OFA, whose depths and resolution reshape other genes' layers): then layer-key
    #: counts and ``flops(arch)`` are a constant plus one term per gene value, and predictors
    #: turn them into one product with :meth:`encode` (:meth:`flops_many`, ``LayerSumPredictor``).
    ADDS_UP_OVER_GENES: ClassVar[bool] = False
    #: Whether :meth:`graph` is one fixed wiring whose node ``1 + i`` is labelled with gene
    #: ``i``'s value (NB201's cell, FBNet's chain): then :meth:`graph_batch` is one gather.
    GENES_LABEL_GRAPH_NODES: ClassVar[bool] = False

    @abstractmethod
    def genes(self) -> tuple[Gene, ...]:
        """The decisions of this space, in a fixed order."""

    @abstractmethod
    def format(self, genes: Mapping[str, GeneValue]) -> str:
        """The canonical string of validated, normalised genes."""

    @abstractmethod
    def parse_genes(self, string: str) -> dict[str, GeneValue]:
        """Genes from a canonical string; raises :class:`ArchitectureError` naming the bad part."""

    @abstractmethod
    def build(self, arch: Architecture, seed: int = 0) -> nn.Module:
        """A standalone module for ``arch``, its weights drawn from ``seed`` alone (never from
        torch's global random state), so equal calls give equal modules."""

    def input_shape_of(self, arch: Architecture) -> tuple[int, ...]:
        """Shape of one input sample for ``arch`` (channels, height, width)."""
        return self.input_shape

    def layers(self, arch: Architecture) -> tuple[LayerSpec, ...]:
        """``arch``'s network as a sequence of lookup-table layers (stem to classifier)."""
        raise NotImplementedError(f"search space {self.name!r} does not list its layers")

    def distinct_layers(self) -> tuple[LayerSpec, ...]:
        """Every layer configuration this space's networks can contain, once each (what a
        lookup table must measure)."""
        raise NotImplementedError(f"search space {self.name!r} does not enumerate its layers")

    def build_layer(self, layer: LayerSpec, seed: int = 0) -> nn.Module:
        """A standalone module computing ``layer`` on an input of ``layer.input_shape``."""
        raise NotImplementedError(f"search space {self.name!r} does not build single layers")

    def supernet(self, seed: int = 0) -> Supernet:
        """One module holding shared weights for every architecture of this space, drawn from
        ``seed`` alone."""
        raise NotImplementedError(f"search space {self.name!r} has no supernet")

    def smallest(self) -> Architecture:
        """The architecture with the least compute (the sandwich rule's lower slice)."""
        raise NotImplementedError(f"search space {self.name!r} does not name its smallest architecture")

    def largest(self) -> Architecture:
        """The architecture with the most compute (the sandwich rule's upper slice)."""
        raise NotImplementedError(f"search space {self.name!r} does not name its largest architecture")

    def graph(self, arch: Architecture) -> ArchitectureGraph:
        """``arch`` as a labelled DAG (ops or blocks as nodes, data flow as edges) for graph
        predictors; labels come from :meth:`graph_labels`."""
        raise NotImplementedError(f"search space {self.name!r} does not describe its architectures as graphs")

    def graph_labels(self) -> tuple[str, ...]:
        """Every node label :meth:`graph` can give, in a fixed order (one-hot node features)."""
        raise NotImplementedError(f"search space {self.name!r} does not describe its architectures as graphs")

    def graph_batch(self, archs: Sequence[Architecture]) -> GraphBatch:
        """:meth:`graph` of each architecture as one :class:`~nas.GraphBatch` (labels indexing
        :meth:`graph_labels`): one gather with :attr:`GENES_LABEL_GRAPH_NODES`, else a graph at
        a time (spaces may override it with array code: drawing graphs one at a time in Python
        bounds how fast a graph predictor can predict a batch)."""
        from nas._graph import GraphBatch

        if not self.GENES_LABEL_GRAPH_NODES:
            return GraphBatch.of([self.graph(arch) for arch in archs], self.graph_labels())
        template, lookup = self._graph_template
        indices = self.gene_indices(archs)
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

    def isomorphism_classes(self, archs: Sequence[Architecture]) -> np.ndarray | None:
        """An integer class per architecture, equal for architectures that compute the same
        function though their genes differ (NB201's isomorphic cells); ``None`` when the space
        has no such classes beyond :meth:`normalise`. Predictors share measurements within a class."""
        return self.isomorphism_classes_of(self.gene_indices(archs))

    def isomorphism_classes_of(self, gene_indices: np.ndarray) -> np.ndarray | None:
        """:meth:`isomorphism_classes` from :meth:`gene_indices`; what a space with classes overrides."""
        return None

    def normalise(self, genes: dict[str, GeneValue]) -> dict[str, GeneValue]:
        """Rewrite genes that do not change the network (e.g. of skipped layers) to one value."""
        return genes

    # Everything below derives from the methods above.

    def architecture(self, genes: Mapping[str, Any]) -> Architecture:
        """Validate and normalise genes into an :class:`Architecture` of this space."""
        declared = self.genes()
        known = {g.name for g in declared}
        unknown = sorted(set(genes) - known)
        if unknown:
            raise ArchitectureError(f"{self.name} has no gene(s) {unknown}; its genes are {[g.name for g in declared]}")
        missing = [g.name for g in declared if g.name not in genes]
        if missing:
            raise ArchitectureError(f"{self.name} architecture is missing gene(s) {missing}")
        checked = self.normalise({g.name: g.check(genes[g.name]) for g in declared})
        layout = self._layout
        return Architecture(
            space=self.name,
            genes=tuple((g.name, checked[g.name]) for g in declared),
            string=self.format(checked),
            choice_codes=bytes(lookup[checked[g.name]] for lookup, g in zip(self._choice_index, declared))
            if layout
            else b"",
            layout=layout,
        )

    def parse(self, string: str) -> Architecture:
        """The architecture of a canonical string (or of any string naming the same network)."""
        return self.architecture(self.parse_genes(string))

    def sample(self, rng: np.random.Generator) -> Architecture:
        """One architecture drawn uniformly over the gene vectors."""
        return self.architecture({g.name: g.choices[rng.integers(len(g.choices))] for g in self.genes()})

    def distributions(self) -> dict[str, optuna.distributions.CategoricalDistribution]:
        """Optuna distributions, one categorical per gene, for ``study.ask``."""
        from optuna.distributions import CategoricalDistribution

        return {g.name: CategoricalDistribution(g.choices) for g in self.genes()}

    def size(self) -> int:
        """The number of gene vectors (normalisation can make fewer distinct networks)."""
        return math.prod(len(g.choices) for g in self.genes())

    def enumerate(self) -> Iterator[Architecture]:
        """Every gene vector's architecture, in lexicographic gene order."""
        declared = self.genes()
        for values in itertools.product(*(g.choices for g in declared)):
            yield self.architecture(dict(zip((g.name for g in declared), values)))

    def gene_indices(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Each architecture's choice index per gene, shape (len(archs), genes), int64: the
        vectorisable form every feature is computed from."""
        layout, genes = self._layout, len(self._choice_index)
        if layout is not None and all(arch.layout is layout for arch in archs):
            codes = np.frombuffer(b"".join(arch.choice_codes for arch in archs), dtype=np.uint8)
            return codes.reshape(len(archs), genes).astype(np.int64)
        foreign = {arch.space for arch in archs} - {self.name}
        if foreign:
            raise ArchitectureError(f"{self.name} cannot encode a {sorted(foreign)[0]!r} architecture")
        lookups = self._choice_index
        # one list comprehension: the per-architecture Python work bounds batch prediction speed
        rows = [[lookup[value] for lookup, (_, value) in zip(lookups, arch.genes)] for arch in archs]
        return np.array(rows, dtype=np.int64).reshape(len(archs), len(lookups))

    def encode(self, archs: Sequence[Architecture]) -> np.ndarray:
        """One-hot features, shape (len(archs), sum of choice counts), for predictors."""
        return self._one_hot(self.gene_indices(archs))

    def active_genes(self, arch: Architecture) -> tuple[str, ...]:
        """The genes that shape ``arch``'s network, in declaration order (see :meth:`active_mask`)."""
        mask = self.active_mask(self.gene_indices([arch]))[0]
        return tuple(g.name for g, active in zip(self.genes(), mask) if active)

    def active_mask(self, gene_indices: np.ndarray) -> np.ndarray:
        """Which genes shape each network, bool, the shape of ``gene_indices``: all of them,
        unless the space skips some (OFA's layers beyond a stage's depth)."""
        return np.ones(gene_indices.shape, dtype=bool)

    def flops_many(self, archs: Sequence[Architecture], gene_indices: np.ndarray | None = None) -> np.ndarray | None:
        """FLOPs of each architecture (float64), or ``None`` for a space without a ``flops(arch)``
        method. With :attr:`ADDS_UP_OVER_GENES` one product of the one-hot genes (from
        ``gene_indices`` when the caller has them) and a cost per choice derived from ``flops``
        once, so predictors can afford it on whole batches."""
        flops = getattr(self, "flops", None)
        if flops is None:
            return None
        if not self.ADDS_UP_OVER_GENES:
            return np.array([float(flops(arch)) for arch in archs], dtype=np.float64)
        indices = self.gene_indices(archs) if gene_indices is None else gene_indices
        constant, costs = self._flops_per_choice
        return constant + self._sum_per_choice(indices, costs)

    def params_and_traffic(self, arch: Architecture) -> tuple[float, float]:
        """``arch``'s parameters and memory traffic (elements its layers read and write: each
        layer's input, output and weights), summed over :meth:`layers`; each distinct layer is
        built and run once per process to count them."""
        stats = _layer_stats(self, self.layers(arch))
        return float(sum(s[0] for s in stats)), float(sum(s[1] for s in stats))

    def flops_of_layers(self, arch: Architecture) -> float:
        """``arch``'s FLOPs summed over :meth:`layers`, each distinct layer counted once per
        process: what ``nas.objectives.Flops`` counts on the built network (the layers partition
        it; the space contract checks this), without building it."""
        return float(sum(s[2] for s in _layer_stats(self, self.layers(arch))))

    def params_and_traffic_many(self, gene_indices: np.ndarray) -> np.ndarray | None:
        """:meth:`params_and_traffic` of each network, ``(n, 2)`` float64, as one product with the
        one-hot genes; ``None`` unless :attr:`ADDS_UP_OVER_GENES` (a per-network sum over layers
        would cost a predictor more than its model does)."""
        if not self.ADDS_UP_OVER_GENES:
            return None
        constant, costs = self._params_and_traffic_per_choice
        return constant + self._sum_per_choice(gene_indices, costs)

    @cached_property
    def _params_and_traffic_per_choice(self) -> tuple[np.ndarray, np.ndarray]:
        columns = [self.per_choice(lambda a, k=k: self.params_and_traffic(a)[k]) for k in (0, 1)]
        return np.array([c for c, _ in columns]), np.column_stack([costs for _, costs in columns])

    def per_choice(self, cost: Callable[[Architecture], float]) -> tuple[float, np.ndarray]:
        """``(constant, cost per one-hot column)`` of a ``cost`` that adds up over genes: each
        choice's difference from the first choices' network. Exact only with
        :attr:`ADDS_UP_OVER_GENES`; then ``cost(a) == constant + encode([a]) @ costs``."""
        genes = self.genes()
        base = {g.name: g.choices[0] for g in genes}
        constant = float(cost(self.architecture(base)))
        costs = [
            float(cost(self.architecture({**base, g.name: value}))) - constant for g in genes for value in g.choices
        ]
        return constant, np.array(costs)

    @cached_property
    def _flops_per_choice(self) -> tuple[float, np.ndarray]:
        return self.per_choice(self.flops)  # type: ignore[attr-defined]

    def count_feature_names(self) -> list[str]:
        """Names of :meth:`count_features`' columns, ``<first gene of the group>~<value>``."""
        return [f"{genes[0]}~{value}" for choices, genes in self._choice_groups().items() for value in choices]

    def count_features(self, archs: Sequence[Architecture]) -> np.ndarray:
        """How often each value occurs among the active genes that share one set of choices:
        op counts for NB201 and FBNet, kernel-size and expand-ratio counts for OFA."""
        return self._counts(self.gene_indices(archs))

    def features(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Predictor features: one-hot genes, value counts, then the space's
        :meth:`derived_features` (version :attr:`FEATURES_VERSION`); float32."""
        return self.features_of(self.gene_indices(archs))

    def features_of(self, gene_indices: np.ndarray) -> np.ndarray:
        """:meth:`features` from :meth:`gene_indices` (for callers that need the indices too)."""
        derived = self.derived_features(gene_indices)
        one_hot_width, count_width = int(self._offsets[-1]), self._count_columns[1]
        features = np.zeros((len(gene_indices), one_hot_width + count_width + derived.shape[1]), dtype=np.float32)
        # written in place, not stacked: batches of 1e5 rows are tens of MB per copy
        self._one_hot(gene_indices, out=features)
        features[:, one_hot_width : one_hot_width + count_width] = self._counts(gene_indices)
        features[:, one_hot_width + count_width :] = derived
        return features

    def derived_features(self, gene_indices: np.ndarray) -> np.ndarray:
        """Extra predictor columns a space computes from :meth:`gene_indices` (structure the
        genes imply, e.g. which ops are live); none by default."""
        return np.zeros((len(gene_indices), 0), dtype=np.float32)

    @cached_property
    def _choice_index(self) -> list[dict[GeneValue, int]]:
        return [{value: k for k, value in enumerate(g.choices)} for g in self.genes()]

    @cached_property
    def _layout(self) -> tuple[Any, ...] | None:
        """The space's name and choices, one object per distinct layout (so spaces configured
        alike share it and an ``is`` test suffices); ``None`` when a gene has over 256 choices
        (indices would not fit a byte)."""
        genes = self.genes()
        if any(len(g.choices) > 256 for g in genes):
            return None
        key = (self.name, tuple((g.name, g.choices) for g in genes))
        return _LAYOUTS.setdefault(key, key)

    @cached_property
    def _offsets(self) -> np.ndarray:
        """Each gene's first column in the one-hot encoding, and the total width last."""
        return np.cumsum([0] + [len(g.choices) for g in self.genes()])

    def _one_hot(self, indices: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One-hot genes, float32; into the first columns of ``out`` (zeros, C-contiguous) if given."""
        n = len(indices)
        if out is None:
            out = np.zeros((n, int(self._offsets[-1])), dtype=np.float32)
        # one flat scatter: faster than 2-D fancy indexing on batches of 1e5 rows
        out.reshape(-1)[(np.arange(n)[:, None] * out.shape[1] + (self._offsets[:-1] + indices)).ravel()] = 1.0
        return out

    def _sum_per_choice(self, indices: np.ndarray, costs: np.ndarray) -> np.ndarray:
        """``one_hot(indices) @ costs`` as a gather: each gene's chosen cost, summed over genes."""
        return costs[self._offsets[:-1] + indices].sum(axis=1)

    def _counts(self, indices: np.ndarray) -> np.ndarray:
        columns, width = self._count_columns
        cells = np.arange(len(indices))[:, None] * width + columns[self._offsets[:-1] + indices]
        counts = np.bincount(cells[self.active_mask(indices)], minlength=len(indices) * width)
        return counts.reshape(len(indices), width).astype(np.float32)

    @cached_property
    def _count_columns(self) -> tuple[np.ndarray, int]:
        """Per one-hot column, its :meth:`count_features` column; and how many there are."""
        groups = self._choice_groups()
        column = {key: k for k, key in enumerate((choices, v) for choices in groups for v in choices)}
        return np.array([column[(g.choices, v)] for g in self.genes() for v in g.choices]), len(column)

    def _choice_groups(self) -> dict[tuple[GeneValue, ...], list[str]]:
        groups: dict[tuple[GeneValue, ...], list[str]] = {}
        for gene in self.genes():
            groups.setdefault(gene.choices, []).append(gene.name)
        return groups

    def example_input(self, batch_size: int = 1, seed: int = 0, arch: Architecture | None = None) -> Any:
        """A deterministic random input batch for ``arch`` (or the space's fixed input shape);
        no global random state is touched."""
        import torch

        shape = self.input_shape if arch is None else self.input_shape_of(arch)
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(batch_size, *shape, generator=generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


#: Every choice layout a space has made (see ``SearchSpace._layout``), each kept once.
_LAYOUTS: dict[tuple[Any, ...], tuple[Any, ...]] = {}

#: Per space (by repr, which names its configuration): layer key -> (parameters, traffic, FLOPs).
_LAYER_STATS: dict[str, dict[str, tuple[int, int, int]]] = {}


def _layer_stats(space: SearchSpace, layers: Sequence[LayerSpec]) -> list[tuple[int, int, int]]:
    """Each layer's parameters, traffic and FLOPs; a layer key not seen before in this process is
    built and run once (eval mode, batch 1, no grad), its FLOPs counted as
    ``nas.objectives.Flops`` counts a network's (``FlopCounterMode``: 2 x MACs)."""
    known = _LAYER_STATS.setdefault(repr(space), {})
    missing = {layer.key: layer for layer in layers if layer.key not in known}
    if missing:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        with torch.no_grad():
            for key, layer in missing.items():
                module = space.build_layer(layer).eval()
                inputs = torch.zeros(1, *layer.input_shape)
                with FlopCounterMode(display=False) as counter:
                    outputs = module(inputs)
                params = sum(p.numel() for p in module.parameters())
                known[key] = (params, inputs.numel() + outputs.numel() + params, int(counter.get_total_flops()))
    return [known[layer.key] for layer in layers]
