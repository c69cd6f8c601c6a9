"""A space's genes as numbers: choice indices, one-hot columns and value-count groups.

:class:`GeneEncoding` is built from a space's name and genes alone (as Optuna's
``_SearchSpaceTransform`` is built from distributions), so everything a predictor or a sampler
turns architectures into is derived in one place and identically for every space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from nas._architecture import ArchitectureError

if TYPE_CHECKING:
    from nas._architecture import Architecture, GeneValue
    from nas._space import Gene

#: Most choices a gene may have for its indices to travel as one byte in ``Architecture.choice_codes``.
MAX_BYTE_CHOICES = 256


class GeneEncoding:
    """Choice indices, one-hot columns and value counts of one space's genes.

    Two encodings are equal when they have the same space name and the same genes with the same
    choices in the same order: architectures made by one space then encode correctly and fast
    with the other. An architecture carries the encoding that made it (``Architecture.layout``)
    and its choice indices as bytes, so turning a batch into an index matrix is one join when the
    encoding is this one (an ``is`` test) or an equal one (compared once per distinct encoding).
    """

    def __init__(self, space: str, genes: Sequence[Gene]) -> None:
        self.space = space
        self.genes: tuple[Gene, ...] = tuple(genes)
        self._key = (space, tuple((g.name, g.choices) for g in self.genes))
        self._hash = hash(self._key)
        self._index: list[dict[GeneValue, int]] = [{value: k for k, value in enumerate(g.choices)} for g in self.genes]
        #: Each gene's first one-hot column, and the total width last.
        self.offsets: np.ndarray = np.cumsum([0] + [len(g.choices) for g in self.genes])
        #: Whether every gene's index fits a byte (then architectures carry their choice codes).
        self.fits_bytes = all(len(g.choices) <= MAX_BYTE_CHOICES for g in self.genes)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, GeneEncoding):
            return NotImplemented
        return self._hash == other._hash and self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"GeneEncoding({self.space!r}, {len(self.genes)} genes, width {self.width})"

    @property
    def width(self) -> int:
        """Columns of the one-hot encoding: the sum of the genes' choice counts."""
        return int(self.offsets[-1])

    def codes(self, genes: Mapping[str, GeneValue]) -> bytes:
        """Validated genes' choice indices, one byte per gene (empty when they do not fit a byte)."""
        if not self.fits_bytes:
            return b""
        return bytes(lookup[genes[g.name]] for lookup, g in zip(self._index, self.genes))

    @property
    def layout(self) -> GeneEncoding | None:
        """What an architecture records as the layout its choice codes index into."""
        return self if self.fits_bytes else None

    def indices(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Each architecture's choice index per gene, shape (len(archs), genes), int64: the
        vectorisable form every feature is computed from."""
        if self.fits_bytes and self._made_here(archs):
            codes = np.frombuffer(b"".join(arch.choice_codes for arch in archs), dtype=np.uint8)
            return codes.reshape(len(archs), len(self.genes)).astype(np.int64)
        foreign = {arch.space for arch in archs} - {self.space}
        if foreign:
            raise ArchitectureError(f"{self.space} cannot encode a {sorted(foreign)[0]!r} architecture")
        lookups = self._index
        # one list comprehension: the per-architecture Python work bounds batch prediction speed
        rows = [[lookup[value] for lookup, (_, value) in zip(lookups, arch.genes)] for arch in archs]
        return np.array(rows, dtype=np.int64).reshape(len(archs), len(lookups))

    def _made_here(self, archs: Sequence[Architecture]) -> bool:
        """Whether every architecture's choice codes index into this encoding (or an equal one)."""
        if all(arch.layout is self for arch in archs):
            return True
        others = {id(arch.layout): arch.layout for arch in archs}
        return all(layout == self for layout in others.values())

    def one_hot(self, indices: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One-hot genes of an index matrix, float32, shape (n, :attr:`width`); written into the
        first columns of ``out`` (zeros, C-contiguous) when given."""
        n = len(indices)
        if out is None:
            out = np.zeros((n, self.width), dtype=np.float32)
        # one flat scatter: faster than 2-D fancy indexing on batches of 1e5 rows
        out.reshape(-1)[(np.arange(n)[:, None] * out.shape[1] + (self.offsets[:-1] + indices)).ravel()] = 1.0
        return out

    def encode(self, archs: Sequence[Architecture]) -> np.ndarray:
        """One-hot genes of ``archs``, float32, shape (len(archs), :attr:`width`)."""
        return self.one_hot(self.indices(archs))

    def sum_per_choice(self, indices: np.ndarray, costs: np.ndarray) -> np.ndarray:
        """``one_hot(indices) @ costs`` as a gather: each gene's chosen cost, summed over genes
        (``costs`` has one row per one-hot column)."""
        return costs[self.offsets[:-1] + indices].sum(axis=1)

    def value_groups(self) -> dict[tuple[GeneValue, ...], list[str]]:
        """Genes grouped by their tuple of choices, in first-seen order: the groups whose values
        :meth:`counts` counts (NB201's and FBNet's ops, OFA's kernel sizes and expand ratios)."""
        groups: dict[tuple[GeneValue, ...], list[str]] = {}
        for gene in self.genes:
            groups.setdefault(gene.choices, []).append(gene.name)
        return groups

    @property
    def count_width(self) -> int:
        """Columns of :meth:`counts`: the distinct (group, value) pairs."""
        return self._count_columns[1]

    def count_names(self) -> list[str]:
        """Names of :meth:`counts`' columns, ``<first gene of the group>~<value>``."""
        return [f"{genes[0]}~{value}" for choices, genes in self.value_groups().items() for value in choices]

    def counts(self, indices: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """How often each value of each group occurs per row, among the genes ``active`` marks
        (bool, the shape of ``indices``; every gene when ``None``); float32."""
        columns, width = self._count_columns
        cells = np.arange(len(indices))[:, None] * width + columns[self.offsets[:-1] + indices]
        chosen = cells.ravel() if active is None else cells[active]
        counts = np.bincount(chosen, minlength=len(indices) * width)
        return counts.reshape(len(indices), width).astype(np.float32)

    @cached_property
    def _count_columns(self) -> tuple[np.ndarray, int]:
        """Per one-hot column, its :meth:`counts` column; and how many there are."""
        groups = self.value_groups()
        column = {key: k for k, key in enumerate((choices, v) for choices in groups for v in choices)}
        return np.array([column[(g.choices, v)] for g in self.genes for v in g.choices]), len(column)
