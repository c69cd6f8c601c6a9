"""What feature-based predictors read of a space: the feature matrix (defined in
:mod:`nas.features`, which the search's surrogates read too) and sums over layers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nas import Architecture, LayeredSpace, SearchSpace, features_version
from nas.features import count_feature_names, count_features, feature_matrix, features

__all__ = [
    "count_feature_names",
    "count_features",
    "feature_matrix",
    "features",
    "features_version",
    "flops_of_layers",
    "layer_sums",
    "per_choice",
]


def per_choice(space: SearchSpace, cost: Callable[[Architecture], float]) -> tuple[float, np.ndarray]:
    """``(constant, cost per one-hot column)`` of a ``cost`` that adds up over genes: each
    choice's difference from the first choices' network. Exact in a :class:`nas.AdditiveSpace`;
    then ``cost(a) == constant + space.encoding.encode([a]) @ costs``."""
    genes = space.genes()
    base = {g.name: g.choices[0] for g in genes}
    constant = float(cost(space.architecture(base)))
    costs = [float(cost(space.architecture({**base, g.name: value}))) - constant for g in genes for value in g.choices]
    return constant, np.array(costs)


def layer_sums(space: LayeredSpace, arch: Architecture) -> tuple[float, float, float]:
    """``arch``'s parameters, memory traffic and activation traffic (:class:`nas.LayerStats`),
    each summed over its layers."""
    stats = space.layer_stats(space.layers(arch))
    return (
        float(sum(s.params for s in stats)),
        float(sum(s.traffic for s in stats)),
        float(sum(s.activation_traffic for s in stats)),
    )


def flops_of_layers(space: LayeredSpace, arch: Architecture) -> float:
    """``arch``'s FLOPs summed over its layers, each built once per space: what
    ``nas.objectives.Flops`` counts on the built network (the layers partition it; the space
    contract checks this), without building it."""
    return float(sum(s.flops for s in space.layer_stats(space.layers(arch))))
