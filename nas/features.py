"""Predictor features of a space: one-hot genes, value counts, then the space's own columns.

The feature matrix of a batch is the one-hot genes, the value counts of the genes each network
uses (op counts for NB201 and FBNet, kernel-size and expand-ratio counts for OFA), then the
space's own derived columns when it has them (:class:`nas.DerivedFeaturesSpace`, e.g. NB201's
live structure and isomorphism classes). All of it is computed from the gene index matrix
(``space.encoding.indices(archs)``), so a batch of 100,000 networks costs milliseconds; its
version (:func:`nas.features_version`) is recorded in predictor files, which a space computing
other columns refuses. Latency and accuracy predictors read it, and so do the search's
surrogate models (:mod:`nas.samplers`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nas._architecture import Architecture
from nas._capabilities import ConditionalSpace, DerivedFeaturesSpace
from nas._space import SearchSpace

__all__ = ["count_feature_names", "count_features", "feature_matrix", "features"]


def count_features(space: SearchSpace, gene_indices: np.ndarray) -> np.ndarray:
    """How often each value occurs among the active genes that share one set of choices, float32
    (columns :func:`count_feature_names`)."""
    active = space.active_mask(gene_indices) if isinstance(space, ConditionalSpace) else None
    return space.encoding.counts(gene_indices, active)


def count_feature_names(space: SearchSpace) -> list[str]:
    """Names of :func:`count_features`' columns, ``<first gene of the group>~<value>``."""
    return space.encoding.count_names()


def feature_matrix(space: SearchSpace, gene_indices: np.ndarray) -> np.ndarray:
    """Predictor features of a gene index matrix: one-hot genes, value counts, then the space's
    derived columns; float32 (see the module)."""
    encoding = space.encoding
    derived = space.derived_features(gene_indices) if isinstance(space, DerivedFeaturesSpace) else None
    one_hot_width, count_width = encoding.width, encoding.count_width
    derived_width = 0 if derived is None else derived.shape[1]
    matrix = np.zeros((len(gene_indices), one_hot_width + count_width + derived_width), dtype=np.float32)
    # written in place, not stacked: batches of 1e5 rows are tens of MB per copy
    encoding.one_hot(gene_indices, out=matrix)
    matrix[:, one_hot_width : one_hot_width + count_width] = count_features(space, gene_indices)
    if derived is not None:
        matrix[:, one_hot_width + count_width :] = derived
    return matrix


def features(space: SearchSpace, archs: Sequence[Architecture]) -> np.ndarray:
    """:func:`feature_matrix` of ``archs``."""
    return feature_matrix(space, space.encoding.indices(archs))
