"""Predictor features and analytic costs of every space: the feature matrix's layout and version,
and batched costs equal to the per-network counts they stand for."""

from __future__ import annotations

import numpy as np
import pytest

from latency_predictors.predictors._analytic import ALL_COSTS, AnalyticCosts
from latency_predictors.predictors._features import (
    count_feature_names,
    feature_matrix,
    features,
    features_version,
    layer_sums,
    per_choice,
)
from nas import AdditiveSpace, Architecture, DerivedFeaturesSpace, SearchSpace
from search_spaces import FBNetSpace, NB201Space, OFASpace

SPACES = {"nb201": NB201Space, "fbnet": FBNetSpace, "ofa": OFASpace}
#: What each space gives: (features version, analytic cost names).
GIVES = {
    "nb201": (2, ("flops", "params", "memory_traffic")),
    "fbnet": (1, ("flops", "params", "memory_traffic")),
    "ofa": (1, ("flops",)),
}


@pytest.fixture(scope="module", params=sorted(SPACES))
def space(request: pytest.FixtureRequest) -> SearchSpace:
    return SPACES[request.param]()


def sampled(space: SearchSpace, n: int = 24) -> list[Architecture]:
    rng = np.random.default_rng(5)
    return [space.sample(rng) for _ in range(n)] + [space.smallest(), space.largest()]


def test_feature_matrix_is_one_hot_then_counts_then_derived_columns(space: SearchSpace) -> None:
    archs = sampled(space)
    encoding = space.encoding
    matrix = features(space, archs)
    derived = space.derived_features(encoding.indices(archs)) if isinstance(space, DerivedFeaturesSpace) else None
    width = encoding.width + len(count_feature_names(space)) + (0 if derived is None else derived.shape[1])
    assert matrix.dtype == np.float32 and matrix.shape == (len(archs), width)
    np.testing.assert_array_equal(matrix[:, : encoding.width], encoding.encode(archs))
    if derived is not None:
        np.testing.assert_array_equal(matrix[:, -derived.shape[1] :], derived)
    np.testing.assert_array_equal(matrix, np.vstack([features(space, [a]) for a in archs]))
    assert feature_matrix(space, encoding.indices([])).shape == (0, width)
    assert features_version(space) == GIVES[space.name][0]


def test_analytic_costs_equal_the_per_network_counts(space: SearchSpace) -> None:
    archs = sampled(space)
    costs = AnalyticCosts(space)
    assert costs.names == GIVES[space.name][1]
    indices = space.encoding.indices(archs)
    flops = costs.flops(archs)
    assert flops is not None and flops.dtype == np.float64
    np.testing.assert_array_equal(flops, [float(space.flops(a)) for a in archs])
    np.testing.assert_array_equal(costs.flops(archs, indices), flops)
    stats = costs.layer_sums(indices[-5:])
    if not isinstance(space, AdditiveSpace):
        assert stats is None and AnalyticCosts(space, ALL_COSTS).names == ("flops",)
        return
    assert stats is not None
    np.testing.assert_allclose(stats, [layer_sums(space, a) for a in archs[-5:]], rtol=1e-12)
    matrix = costs.matrix(archs, indices, costs.names)
    np.testing.assert_array_equal(matrix, np.column_stack([flops, costs.layer_sums(indices)[:, :2]]))
    every = AnalyticCosts(space, ALL_COSTS)
    assert every.names == ALL_COSTS
    np.testing.assert_array_equal(every.matrix(archs, indices, every.names)[:, :3], matrix)
    np.testing.assert_array_equal(
        every.matrix(archs, indices, ["activation_traffic"])[:, 0], costs.layer_sums(indices)[:, 2]
    )


def test_unknown_analytic_costs_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown analytic cost\(s\) \['power'\]"):
        AnalyticCosts(FBNetSpace(), ["flops", "power"])


def test_per_choice_costs_add_up_in_an_additive_space() -> None:
    space = FBNetSpace()
    constant, costs = per_choice(space, space.flops)
    archs = sampled(space, 8)
    expected = [float(space.flops(a)) for a in archs]
    np.testing.assert_allclose(constant + space.encoding.encode(archs).astype(np.float64) @ costs, expected, rtol=1e-12)
