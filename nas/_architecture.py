"""The architecture value: what a search space hands out and every other part consumes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas.errors import HwnasError

GeneValue = int | float | str


class ArchitectureError(HwnasError, ValueError):
    """An architecture string or gene value that the space does not accept."""


@dataclass(frozen=True)
class Architecture:
    """One network of one search space, as plain immutable data.

    ``genes`` holds the values Optuna's ``trial.params`` holds, already validated and normalised by
    the space, so two architectures are equal exactly when they describe the same network.
    Create architectures through :meth:`SearchSpace.architecture` or :meth:`SearchSpace.parse`,
    never directly: the space owns validation and the canonical string.
    """

    space: str
    genes: tuple[tuple[str, GeneValue], ...]
    string: str
    #: Each gene's choice index, one byte per gene, and the space's gene encoding they index
    #: into (a ``nas.GeneEncoding``): set by the space that made the architecture, so that turning
    #: a batch into an index matrix (what every predictor does first) is one join instead of a
    #: lookup per gene. Not part of the value: equality, hashing and the string ignore them.
    choice_codes: bytes = field(default=b"", compare=False, repr=False)
    layout: object = field(default=None, compare=False, repr=False)

    @property
    def params(self) -> dict[str, GeneValue]:
        """The genes as a dict, in the form ``trial.params`` and ``Study.enqueue_trial`` use."""
        return dict(self.genes)

    def __getitem__(self, gene: str) -> GeneValue:
        for name, value in self.genes:
            if name == gene:
                return value
        raise KeyError(f"{self.space} architectures have no gene {gene!r}")

    @property
    def id(self) -> str:
        """A short stable identifier, safe in file names (the canonical string often is not)."""
        return hashlib.sha1(f"{self.space}:{self.string}".encode()).hexdigest()[:12]

    def __str__(self) -> str:
        return self.string


def genes_tuple(genes: Mapping[str, Any], order: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    return tuple((name, genes[name]) for name in order)
