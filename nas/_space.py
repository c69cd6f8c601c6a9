"""The search-space interface: genes declared as data, everything else derived from them.

A space here is only what every space has: genes, canonical strings, a network per
architecture. What only some spaces can do (list lookup-table layers, draw graphs, hold a
supernet, count FLOPs...) is a separate interface in :mod:`nas._capabilities` that a space
inherits when it has the ability; callers ask ``isinstance``.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from nas._architecture import Architecture, ArchitectureError, GeneValue
from nas._encoding import GeneEncoding

if TYPE_CHECKING:
    import optuna
    from torch import nn

__all__ = ["ArchitectureError", "Gene", "SearchSpace"]


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
    a plain ``nn.Module``. Sampling, Optuna distributions, enumeration and the gene encoding
    (:attr:`encoding`) are derived here from the genes, so every space gets them identically.
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

    def normalise(self, genes: dict[str, GeneValue]) -> dict[str, GeneValue]:
        """Rewrite genes that do not change the network (e.g. of skipped layers) to one value."""
        return genes

    @property
    def networks(self) -> SearchSpace:
        """The space of the networks :meth:`network_of` gives: this one, unless candidates carry
        more than a network (a :class:`nas.DeployedSpace`'s networks are its inner space's)."""
        return self

    def network_of(self, arch: Architecture) -> Architecture:
        """The network ``arch`` names, as an architecture of the space whose tables list it:
        ``arch`` itself, except in a space that adds more to a candidate than its network
        (:class:`nas.DeployedSpace`: how it is deployed)."""
        return arch

    # Everything below derives from the methods above.

    @cached_property
    def encoding(self) -> GeneEncoding:
        """This space's genes as numbers (choice indices, one-hot columns, value counts)."""
        return GeneEncoding(self.name, self.genes())

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
        encoding = self.encoding
        return Architecture(
            space=self.name,
            genes=tuple((g.name, checked[g.name]) for g in declared),
            string=self.format(checked),
            choice_codes=encoding.codes(checked),
            layout=encoding.layout,
        )

    def from_indices(self, indices: np.ndarray) -> list[Architecture]:
        """The architecture of each row of choice indices (the inverse of ``encoding.indices``),
        validated and normalised like any genes."""
        declared = self.genes()
        return [
            self.architecture({g.name: g.choices[i] for g, i in zip(declared, row)})
            for row in np.asarray(indices).tolist()
        ]

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

    def example_input(self, batch_size: int = 1, seed: int = 0, arch: Architecture | None = None) -> Any:
        """A deterministic random input batch for ``arch`` (or the space's fixed input shape);
        no global random state is touched."""
        import torch

        shape = self.input_shape if arch is None else self.input_shape_of(arch)
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(batch_size, *shape, generator=generator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
