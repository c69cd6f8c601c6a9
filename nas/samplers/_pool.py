"""The candidates a surrogate scores: every distinct network of a small space, or a large seeded
sample of a big one, with the features its models read.

One row per dedup key (an isomorphism class of NB201 is one candidate, represented by its member
with the fewest FLOPs: the same function for less compute), networks that ignore their input
left out. The prior columns a model reads besides the genes are the space's own cheap counts:
log FLOPs where the space counts them without building a network.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas._capabilities import BatchFlopsSpace, FlopsSpace, dedup_keys
from nas._space import SearchSpace
from nas.errors import MissingFileError
from nas.features import feature_matrix
from nas.samplers._base import usable
from nas.scoring import SCORES_FILE, read_scores


@dataclass(frozen=True)
class Candidates:
    """Gene rows, their dedup keys and model features, aligned; ``members`` counts the rows each
    one stands for (an isomorphism class's size), so quantiles over candidates can be taken over
    the gene vectors, as the regret's budgets are."""

    indices: np.ndarray  # (n, genes)
    keys: np.ndarray  # (n,) str
    features: np.ndarray  # (n, columns) float32
    log_flops: np.ndarray | None  # (n,), None where the space does not count FLOPs
    members: np.ndarray  # (n,) float

    @classmethod
    def of(cls, space: SearchSpace, indices: np.ndarray, priors: Priors | None = None) -> Candidates:
        """Distinct usable rows of ``indices``: per dedup key, the row with the fewest FLOPs."""
        indices = np.asarray(indices, dtype=np.int64)
        indices = indices[usable(space, indices)]
        keys = np.array(dedup_keys(space, indices), dtype=object)
        flops = _flops(space, indices)
        order = np.lexsort((np.arange(len(indices)), flops if flops is not None else np.zeros(len(indices))))
        _, first, members = np.unique(keys[order], return_index=True, return_counts=True)
        by_row = np.argsort(order[first])
        keep = order[first][by_row]
        kept_flops = None if flops is None else flops[keep]
        features, log_flops = _model_features(space, indices[keep], kept_flops, priors)
        return cls(indices[keep], keys[keep], features, log_flops, members[by_row].astype(float))

    def __len__(self) -> int:
        return len(self.indices)

    def where(self, mask: np.ndarray) -> Candidates:
        return Candidates(
            self.indices[mask],
            self.keys[mask],
            self.features[mask],
            None if self.log_flops is None else self.log_flops[mask],
            self.members[mask],
        )

    def __add__(self, other: Candidates) -> Candidates:
        return Candidates(
            np.vstack([self.indices, other.indices]),
            np.concatenate([self.keys, other.keys]),
            np.vstack([self.features, other.features]),
            None
            if self.log_flops is None or other.log_flops is None
            else np.concatenate([self.log_flops, other.log_flops]),
            np.concatenate([self.members, other.members]),
        )


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles ``q`` of ``values`` where each value counts ``weights`` times."""
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    positions = np.searchsorted(cumulative, np.asarray(q) * cumulative[-1], side="left")
    return values[order][np.minimum(positions, len(values) - 1)]


def space_rows(space: SearchSpace, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Every gene vector of ``space`` when it has at most ``limit``, else ``limit`` drawn ones."""
    if space.size() <= limit:
        archs = list(space.enumerate())
    else:
        archs = [space.sample(rng) for _ in range(limit)]
    return space.encoding.indices(archs)


def mutants(space: SearchSpace, parents: np.ndarray, per_parent: int, rng: np.random.Generator) -> np.ndarray:
    """``per_parent`` mutants of each parent row: each gene redrawn with probability 1/genes
    (at least one gene changed), normalised through the space (so inactive genes agree)."""
    genes = space.genes()
    sizes = np.array([len(g.choices) for g in genes])
    children = np.repeat(parents, per_parent, axis=0)
    if len(children) == 0:
        return children
    flip = rng.random(children.shape) < 1.0 / len(genes)
    flip[np.arange(len(children)), rng.integers(len(genes), size=len(children))] = True
    flip &= sizes[None, :] > 1
    shift = rng.integers(1, np.maximum(sizes, 2)[None, :], size=children.shape)
    children = np.where(flip, (children + shift) % sizes[None, :], children)
    return space.encoding.indices(space.from_indices(children))


@dataclass(frozen=True)
class Priors:
    """Scores known before the search, one column each: what ``hwnas-score`` wrote (scores.csv),
    e.g. zero-cost proxies computed once for a whole space. They do not depend on the device, so
    one scoring serves every device's search. An architecture without a score (a proxy's
    degenerate network, or one never scored) gets its column's lowest value."""

    names: tuple[str, ...]
    scores: dict[str, tuple[float | None, ...]]
    lowest: tuple[float, ...]  # each column's lowest score

    @classmethod
    def read(cls, directories: Sequence[str | Path]) -> Priors:
        names: list[str] = []
        scores: dict[str, list[float | None]] = {}
        for directory in directories:
            path = Path(directory) / SCORES_FILE
            if not path.is_file():
                raise MissingFileError(f"prior {directory}: no {SCORES_FILE} (write one with hwnas-score out_dir=...)")
            with path.open() as f:
                header = next(csv.reader(f))
            columns = header[1:-1]  # arch, <scores...>, seconds
            for arch, row in read_scores(Path(directory), columns).items():
                scores.setdefault(arch, [None] * len(names))
                scores[arch].extend(row.values[c] for c in columns)
            names += columns
            for values in scores.values():  # architectures this directory lacks
                values.extend([None] * (len(names) - len(values)))
        table = np.array([[np.nan if v is None else v for v in row] for row in scores.values()], dtype=float)
        table = table.reshape(len(scores), len(names))
        lowest = tuple(float(np.nanmin(c)) if np.isfinite(c).any() else 0.0 for c in table.T)
        return cls(tuple(names), {a: tuple(v) for a, v in scores.items()}, lowest)

    def columns(self, space: SearchSpace, indices: np.ndarray) -> np.ndarray:
        strings = [arch.string for arch in space.from_indices(indices)]
        empty = (None,) * len(self.names)
        out = np.array([[np.nan if v is None else v for v in self.scores.get(s, empty)] for s in strings], dtype=float)
        out = out.reshape(len(strings), len(self.names))
        return np.where(np.isnan(out), np.array(self.lowest)[None, :] - 1.0, out)


def model_features(
    space: SearchSpace, indices: np.ndarray, priors: Priors | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """What a surrogate reads of each row: the predictor features (:func:`nas.features.
    feature_matrix`), log FLOPs where the space counts them, and the priors' scores; and the log
    FLOPs alone (None without)."""
    return _model_features(space, indices, _flops(space, indices), priors)


def _model_features(
    space: SearchSpace, indices: np.ndarray, flops: np.ndarray | None, priors: Priors | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    features = feature_matrix(space, indices)
    log_flops = None if flops is None else np.log(flops + 1.0)
    extra = [] if log_flops is None else [log_flops[:, None]]
    if priors is not None and priors.names:
        extra.append(priors.columns(space, indices))
    if extra:
        features = np.hstack([features, *(e.astype(np.float32) for e in extra)])
    return features, log_flops


def _flops(space: SearchSpace, indices: np.ndarray) -> np.ndarray | None:
    if isinstance(space, BatchFlopsSpace):
        return space.batch_flops(indices)
    if isinstance(space, FlopsSpace):
        return np.array([float(space.flops(a)) for a in space.from_indices(indices)])
    return None
