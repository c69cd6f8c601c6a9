"""The search-space interface: genes declared as data, everything else derived from them."""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nas._architecture import Architecture, GeneValue

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from nas._graph import ArchitectureGraph
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
                f"gene {self.name!r} has value {value!r}; allowed values: "
                + ", ".join(repr(c) for c in self.choices)
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
            raise ArchitectureError(
                f"{self.name} has no gene(s) {unknown}; its genes are {[g.name for g in declared]}"
            )
        missing = [g.name for g in declared if g.name not in genes]
        if missing:
            raise ArchitectureError(f"{self.name} architecture is missing gene(s) {missing}")
        checked = self.normalise({g.name: g.check(genes[g.name]) for g in declared})
        return Architecture(
            space=self.name,
            genes=tuple((g.name, checked[g.name]) for g in declared),
            string=self.format(checked),
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

    def encode(self, archs: Sequence[Architecture]) -> np.ndarray:
        """One-hot features, shape (len(archs), sum of choice counts), for predictors."""
        declared = self.genes()
        offsets = np.cumsum([0] + [len(g.choices) for g in declared])
        features = np.zeros((len(archs), offsets[-1]), dtype=np.float32)
        for row, arch in enumerate(archs):
            for g, offset in zip(declared, offsets):
                features[row, offset + g.choices.index(arch[g.name])] = 1.0
        return features

    def active_genes(self, arch: Architecture) -> tuple[str, ...]:
        """The genes that shape ``arch``'s network: all of them, unless the space skips some
        (OFA's layers beyond a stage's depth)."""
        return tuple(g.name for g in self.genes())

    def count_feature_names(self) -> list[str]:
        """Names of :meth:`count_features`' columns, ``<first gene of the group>~<value>``."""
        return [f"{genes[0]}~{value}" for choices, genes in self._choice_groups().items() for value in choices]

    def count_features(self, archs: Sequence[Architecture]) -> np.ndarray:
        """How often each value occurs among the active genes that share one set of choices:
        op counts for NB201 and FBNet, kernel-size and expand-ratio counts for OFA."""
        groups = self._choice_groups()
        column = {}
        for choices in groups:
            for value in choices:
                column[(choices, value)] = len(column)
        group_of = {name: choices for choices, genes in groups.items() for name in genes}
        features = np.zeros((len(archs), len(column)), dtype=np.float32)
        for row, arch in enumerate(archs):
            for name in self.active_genes(arch):
                features[row, column[(group_of[name], arch[name])]] += 1.0
        return features

    def features(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Predictor features every space provides: one-hot genes, then value counts."""
        return np.hstack([self.encode(archs), self.count_features(archs)])

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
