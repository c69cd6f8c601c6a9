"""Deployment genes: how a network is run, searched beside the network itself.

Latency and energy belong to a network *as deployed*: the runtime, its graph optimisations, the
precision, the threads and the batch change them as much as the architecture does. A
:class:`DeployedSpace` makes the deployment part of the candidate: its genes are the network's
space's genes followed by the deployment's (:class:`DeploymentGenes`, declared as data in
``configs/deployment/``), and its canonical string is ``<network string>@<deployment string>``,
e.g. ``|nor_conv_3x3~0|+...|@runtime=onnxruntime,graph_optimization=all,precision=int8,threads=2,
batch_size=1``. So storages, resume, de-duplication and the Pareto files carry the deployment
with no change: a candidate is one :class:`~nas.Architecture` of one space, as before.

The first deployment gene decides which of the others apply (``takes``): onnxruntime reads a
graph-optimisation level and a precision, PyTorch eager reads neither. A gene the chosen value does
not take is normalised to its first choice and left out of the string, as a skipped layer's genes
are, so one deployment has one string.
"""

from __future__ import annotations

import functools
import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nas._architecture import Architecture, ArchitectureError, GeneValue
from nas._capabilities import (
    AdditiveSpace,
    BatchFlopsSpace,
    DisconnectedSpace,
    FlopsSpace,
    IsomorphicSpace,
    LayeredSpace,
    LayerSpec,
    LayerStats,
)
from nas._objective import Candidate, ObjectiveError
from nas._space import Gene, SearchSpace
from nas.errors import HwnasError

if TYPE_CHECKING:
    from torch import nn

#: Between the network's string and the deployment's (no space's strings contain it).
SEPARATOR = "@"


class DeploymentError(HwnasError, ValueError):
    """A deployment declaration that does not hold together (a gene without choices, a ``takes``
    entry naming an unknown runtime or gene, a gene named like a network gene)."""


@dataclass(frozen=True)
class Deployment:
    """How one network is deployed: the values of the genes its runtime takes, in declared order
    (the first is the runtime gene's)."""

    settings: tuple[tuple[str, GeneValue], ...]

    @property
    def params(self) -> dict[str, GeneValue]:
        return dict(self.settings)

    def __getitem__(self, gene: str) -> GeneValue:
        return self.params[gene]

    def get(self, gene: str, default: GeneValue | None = None) -> GeneValue | None:
        return self.params.get(gene, default)

    @property
    def string(self) -> str:
        return ",".join(f"{name}={value}" for name, value in self.settings)

    def __str__(self) -> str:
        return self.string


class Deployments(ABC):
    """The deployments a :class:`DeployedSpace` offers, as genes beside the network's: which gene
    values make which :class:`Deployment`, and how its string is read back."""

    genes: tuple[Gene, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.genes)

    @abstractmethod
    def normalise(self, values: Mapping[str, GeneValue]) -> dict[str, GeneValue]:
        """The gene values with those that change nothing set to their first choice."""

    @abstractmethod
    def deployment(self, values: Mapping[str, GeneValue]) -> Deployment:
        """The deployment normalised gene values make."""

    @abstractmethod
    def values_of(self, deployment: Deployment) -> dict[str, GeneValue]:
        """The (normalised) gene values that make ``deployment``."""

    @abstractmethod
    def parse(self, string: str) -> dict[str, GeneValue]:
        """The gene values of a deployment string (``name=value,...``), or an
        :class:`ArchitectureError` naming what is wrong with it."""

    @abstractmethod
    def every(self) -> tuple[Deployment, ...]:
        """Every distinct deployment offered, in declared order."""

    def of(self, string: str) -> Deployment:
        """The deployment a string names (:meth:`parse`'s values as a :class:`Deployment`)."""
        return self.deployment(self.parse(string))


class DeploymentGenes(Deployments):
    """The deployment decisions of a search, as data: ``genes`` maps each gene to its choices
    (the first gene selects the runtime), ``takes`` maps each value of the first gene to the other
    genes that runtime reads (all of them when it is not listed)."""

    def __init__(
        self, genes: Mapping[str, Sequence[GeneValue]], takes: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        if not genes:
            raise DeploymentError("deployment genes must name at least one gene (the runtime)")
        self.genes = tuple(Gene(str(name), tuple(choices)) for name, choices in genes.items())
        for gene in self.genes:
            if not gene.choices:
                raise DeploymentError(f"deployment gene {gene.name!r} has no choices")
        self.selector = self.genes[0]
        others = [g.name for g in self.genes[1:]]
        takes = dict(takes or {})
        unknown_values = sorted(set(takes) - {str(c) for c in self.selector.choices})
        if unknown_values:
            raise DeploymentError(
                f"deployment takes names {unknown_values}, which are not choices of the {self.selector.name!r} "
                f"gene ({list(self.selector.choices)}): add them to its choices or drop their entries "
                f"(on the command line: ~deployment.deployment.takes.{unknown_values[0]})"
            )
        self.takes: dict[GeneValue, tuple[str, ...]] = {}
        for value in self.selector.choices:
            taken = [str(g) for g in takes.get(str(value), others)]
            unknown = sorted(set(taken) - set(others))
            if unknown:
                raise DeploymentError(
                    f"deployment takes.{value} names unknown gene(s) {unknown}; the genes are {others}"
                )
            self.takes[value] = tuple(g for g in others if g in taken)

    def normalise(self, values: Mapping[str, GeneValue]) -> dict[str, GeneValue]:
        """Genes the runtime does not take set to their first choice."""
        taken = self.takes[values[self.selector.name]]
        return {g.name: values[g.name] if g is self.selector or g.name in taken else g.choices[0] for g in self.genes}

    def deployment(self, values: Mapping[str, GeneValue]) -> Deployment:
        selected = values[self.selector.name]
        names = (self.selector.name, *self.takes[selected])
        return Deployment(tuple((name, values[name]) for name in names))

    def parse(self, string: str) -> dict[str, GeneValue]:
        """Gene values of a deployment string (``name=value,...``); the genes its runtime does not
        take are at their first choice. Values are matched to the declared choices as text."""
        values: dict[str, GeneValue] = {}
        for part in string.split(","):
            name, equals, text = part.partition("=")
            gene = next((g for g in self.genes if g.name == name.strip()), None)
            if not equals or gene is None:
                raise ArchitectureError(
                    f"deployment {string!r}: {part!r} is not <gene>=<value> of a deployment gene "
                    f"({', '.join(self.names)})"
                )
            match = [c for c in gene.choices if str(c) == text.strip()]
            if not match:
                raise ArchitectureError(
                    f"deployment gene {gene.name!r} has value {text.strip()!r}; allowed values: "
                    + ", ".join(repr(c) for c in gene.choices)
                )
            values[gene.name] = match[0]
        if self.selector.name not in values:
            raise ArchitectureError(f"deployment {string!r} names no {self.selector.name!r}")
        defaults = {g.name: g.choices[0] for g in self.genes}
        return self.normalise({**defaults, **values})

    def values_of(self, deployment: Deployment) -> dict[str, GeneValue]:
        defaults = {g.name: g.choices[0] for g in self.genes}
        return self.normalise({**defaults, **deployment.params})

    def every(self) -> tuple[Deployment, ...]:
        """Every distinct deployment, in the order of the genes' choices (first gene slowest)."""
        combos = itertools.product(*(g.choices for g in self.genes))
        return tuple(dict.fromkeys(self.deployment(self.normalise(dict(zip(self.names, c)))) for c in combos))

    def __repr__(self) -> str:
        genes = {g.name: list(g.choices) for g in self.genes}
        return f"DeploymentGenes({genes}, takes={ {k: list(v) for k, v in self.takes.items()} })"


class DeploymentList(Deployments):
    """Only the deployments listed, each a string of the genes ``genes`` and ``takes`` declare
    (:class:`DeploymentGenes`): one gene, ``deployment``, whose choices are their strings, so a
    sampler proposes no other. What a search on a deployed profile's predictors offers: the
    deployments the profile measured (``deployment=profiled``). Candidates are written as with
    the genes themselves, ``<network>@runtime=...``."""

    GENE = "deployment"

    def __init__(
        self,
        genes: Mapping[str, Sequence[GeneValue]],
        deployments: Sequence[str],
        takes: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.declared = DeploymentGenes(genes, takes)
        listed: dict[str, Deployment] = {}
        for string in deployments:
            try:
                deployment = self.declared.of(str(string))
            except ArchitectureError as error:
                raise DeploymentError(f"listed deployment {string!r}: {error}") from None
            listed.setdefault(deployment.string, deployment)
        if not listed:
            raise DeploymentError("a deployment list needs at least one deployment")
        self._listed = listed
        self.genes = (Gene(self.GENE, tuple(listed)),)

    def normalise(self, values: Mapping[str, GeneValue]) -> dict[str, GeneValue]:
        return {self.GENE: values[self.GENE]}

    def deployment(self, values: Mapping[str, GeneValue]) -> Deployment:
        return self._listed[str(values[self.GENE])]

    def values_of(self, deployment: Deployment) -> dict[str, GeneValue]:
        return {self.GENE: deployment.string}

    def parse(self, string: str) -> dict[str, GeneValue]:
        deployment = self.declared.of(string)
        if deployment.string not in self._listed:
            raise ArchitectureError(
                f"deployment {string!r} is not one of the {len(self._listed)} listed: " + "; ".join(self._listed)
            )
        return {self.GENE: deployment.string}

    def every(self) -> tuple[Deployment, ...]:
        return tuple(self._listed.values())

    def __repr__(self) -> str:
        return f"DeploymentList({self.declared!r}, {list(self._listed)})"


class DeployedSpace(SearchSpace):
    """``space``'s networks, each with a deployment: the candidate a deployment search hands out.

    Builds exactly ``space``'s network (a deployment changes how it runs, not what it computes);
    :meth:`network_of` and :meth:`deployment_of` split a candidate into the two. Where ``space``
    knows isomorphic or disconnected networks (NB201), so does this space (the object is then of a
    subclass that has those abilities): a search measures one network of a class per deployment,
    and never a network whose output ignores its input.
    """

    def __new__(cls, space: SearchSpace | None = None, *args: Any, **kwargs: Any) -> DeployedSpace:
        if cls is DeployedSpace and space is not None:
            cls = _with_abilities(space)
        return super().__new__(cls)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt through __new__, which picks the class with the network space's abilities.
        return (DeployedSpace, (self.space, self.deployment, self._suffix))

    def __init__(self, space: SearchSpace, deployment: Deployments, name: str = "deployed") -> None:
        clash = sorted({g.name for g in space.genes()} & set(deployment.names))
        if clash:
            raise DeploymentError(f"deployment gene(s) {clash} have the names of {space.name} genes; rename them")
        self.space = space
        self.deployment = deployment
        self.name = f"{space.name}{SEPARATOR}{name}"
        self._suffix = name
        self.num_classes = space.num_classes
        self.input_shape = space.input_shape
        self._network_genes = tuple(g.name for g in space.genes())

    def genes(self) -> tuple[Gene, ...]:
        return (*self.space.genes(), *self.deployment.genes)

    def _split(self, genes: Mapping[str, GeneValue]) -> tuple[dict[str, GeneValue], dict[str, GeneValue]]:
        network = {name: genes[name] for name in self._network_genes}
        return network, {name: genes[name] for name in self.deployment.names}

    def format(self, genes: Mapping[str, GeneValue]) -> str:
        network, deployment = self._split(genes)
        return f"{self.space.format(network)}{SEPARATOR}{self.deployment.deployment(deployment).string}"

    def parse_genes(self, string: str) -> dict[str, GeneValue]:
        network, separator, deployment = str(string).rpartition(SEPARATOR)
        if not separator:
            raise ArchitectureError(
                f"{string!r} names no deployment: a {self.name} candidate is <{self.space.name} string>"
                f"{SEPARATOR}<deployment>, e.g. <network>{SEPARATOR}{self._example_deployment()}"
            )
        return {**self.space.parse_genes(network), **self.deployment.parse(deployment)}

    def _example_deployment(self) -> str:
        return self.deployment.every()[0].string

    def normalise(self, genes: dict[str, GeneValue]) -> dict[str, GeneValue]:
        network, deployment = self._split(genes)
        return {**self.space.normalise(network), **self.deployment.normalise(deployment)}

    @property
    def networks(self) -> SearchSpace:
        return self.space

    def declared(self) -> DeployedSpace:
        """The same networks under every deployment its genes declare: this space, or for a
        :class:`DeploymentList` the space of the genes it lists from (whose strings are the same)."""
        if not isinstance(self.deployment, DeploymentList):
            return self
        return DeployedSpace(self.space, self.deployment.declared, self._suffix)

    def network_of(self, arch: Architecture) -> Architecture:
        """The network of a candidate, an architecture of :attr:`space`."""
        return self.space.architecture({name: arch[name] for name in self._network_genes})

    def deployment_of(self, arch: Architecture) -> Deployment:
        """How the candidate's network is deployed."""
        return self.deployment.deployment({name: arch[name] for name in self.deployment.names})

    def deploy(self, network: Architecture, deployment: Deployment) -> Architecture:
        """The candidate that is ``network`` (of :attr:`space`) run as ``deployment``."""
        return self.architecture({**network.params, **self.deployment.values_of(deployment)})

    def build(self, arch: Architecture, seed: int = 0) -> nn.Module:
        return self.space.build(self.network_of(arch), seed=seed)

    def input_shape_of(self, arch: Architecture) -> tuple[int, ...]:
        return self.space.input_shape_of(self.network_of(arch))

    def example_input(self, batch_size: int = 1, seed: int = 0, arch: Architecture | None = None) -> Any:
        network = None if arch is None else self.network_of(arch)
        return self.space.example_input(batch_size, seed=seed, arch=network)

    def __repr__(self) -> str:
        return f"DeployedSpace({self.space!r}, {self.deployment!r}, name={self._suffix!r})"


def deployed(candidate: Candidate, objective: str) -> tuple[DeployedSpace, Deployment]:
    """A candidate's deployed space and deployment, for an objective that needs them; an
    :class:`ObjectiveError` naming ``objective`` when the candidate has no deployment."""
    space = candidate.space
    if not isinstance(space, DeployedSpace):
        raise ObjectiveError(
            f"objective {objective!r} needs deployed candidates; {space.name} has no deployment genes "
            "(search with deployment=<option>, e.g. deployment=cpu_stack)"
        )
    return space, space.deployment_of(candidate.arch)


class _Isomorphic(DeployedSpace, IsomorphicSpace):
    def isomorphism_classes_of(self, gene_indices: np.ndarray) -> np.ndarray:
        # One class per (network class, deployment): the deployment's choice indices in mixed radix.
        indices = np.asarray(gene_indices)
        n = len(self._network_genes)
        network = self.space.isomorphism_classes_of(indices[:, :n]).astype(np.int64)  # type: ignore[attr-defined]
        deployment = np.zeros(len(indices), dtype=np.int64)
        for column, gene in enumerate(self.deployment.genes):
            deployment = deployment * len(gene.choices) + indices[:, n + column]
        combos = math.prod(len(g.choices) for g in self.deployment.genes)
        return network * combos + deployment


class _Disconnected(DeployedSpace, DisconnectedSpace):
    def disconnected_of(self, gene_indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(gene_indices)
        return self.space.disconnected_of(indices[:, : len(self._network_genes)])  # type: ignore[attr-defined]


class _Flops(DeployedSpace, FlopsSpace):
    def flops(self, arch: Architecture) -> int:
        return self.space.flops(self.network_of(arch))  # type: ignore[attr-defined]


class _BatchFlops(_Flops, BatchFlopsSpace):
    def batch_flops(self, gene_indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(gene_indices)
        return self.space.batch_flops(indices[:, : len(self._network_genes)])  # type: ignore[attr-defined]


class _Layered(DeployedSpace, LayeredSpace):
    # The network's layers: a deployment runs them, it adds none (so an additive network space
    # stays additive, each deployment gene value adding nothing).
    def layers(self, arch: Architecture) -> tuple[LayerSpec, ...]:
        return self.space.layers(self.network_of(arch))  # type: ignore[attr-defined]

    def distinct_layers(self) -> tuple[LayerSpec, ...]:
        return self.space.distinct_layers()  # type: ignore[attr-defined]

    def build_layer(self, layer: LayerSpec, seed: int = 0) -> nn.Module:
        return self.space.build_layer(layer, seed=seed)  # type: ignore[attr-defined]

    def layer_kind(self, key: str) -> str:
        return self.space.layer_kind(key)  # type: ignore[attr-defined]

    def layer_stats(self, layers: Sequence[LayerSpec]) -> list[LayerStats]:
        return self.space.layer_stats(layers)  # type: ignore[attr-defined]


class _Additive(_Layered, AdditiveSpace):
    pass


#: Per ability family, the network space's ability and the deployed space's class that keeps it
#: (the first that the network space has).
_FAMILIES: tuple[tuple[tuple[type[SearchSpace], type[DeployedSpace]], ...], ...] = (
    ((IsomorphicSpace, _Isomorphic),),
    ((DisconnectedSpace, _Disconnected),),
    ((BatchFlopsSpace, _BatchFlops), (FlopsSpace, _Flops)),
    ((AdditiveSpace, _Additive), (LayeredSpace, _Layered)),
)


def _with_abilities(space: SearchSpace) -> type[DeployedSpace]:
    """The deployed space class that has every ability of ``space`` a deployment keeps."""
    kept = []
    for family in _FAMILIES:
        kept += [deployed_class for ability, deployed_class in family if isinstance(space, ability)][:1]
    return _composed(tuple(kept))


@functools.cache
def _composed(bases: tuple[type[DeployedSpace], ...]) -> type[DeployedSpace]:
    if not bases:
        return DeployedSpace
    if len(bases) == 1:
        return bases[0]
    return type("DeployedSpace" + "".join(b.__name__ for b in bases), bases, {"__module__": __name__})
