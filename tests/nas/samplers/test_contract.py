"""Every hwnas sampler, on every space, through nas.testing.SamplerContract."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nas import SearchSpace
from nas.samplers import MutationSampler, SurrogateSampler
from nas.testing import SamplerContract
from search_spaces import FBNetSpace, NB201Space, OFASpace

SPACES = {"nb201": NB201Space, "fbnet": FBNetSpace, "ofa": OFASpace}
SAMPLERS = {
    # Small pools and start-ups keep the contract fast; the defaults are benchmarked instead.
    "surrogate": lambda space, seed: SurrogateSampler(space, seed=seed, n_startup_trials=5, pool_size=2000),
    "mutation": lambda space, seed: MutationSampler(space, seed=seed, n_startup_trials=5),
}


class TestSamplers(SamplerContract):
    @pytest.fixture(params=sorted(SPACES))
    def space(self, request: pytest.FixtureRequest) -> SearchSpace:
        return SPACES[request.param]()

    @pytest.fixture(params=sorted(SAMPLERS))
    def make_sampler(self, request: pytest.FixtureRequest) -> Callable[[SearchSpace, int], object]:
        return SAMPLERS[request.param]
