"""The search-space interface on a space with none of the optional abilities: the contract's core
holds and every ability's checks skip."""

from __future__ import annotations

import pytest

from nas import SearchSpace
from nas.testing import SearchSpaceContract
from tests.nas.toy import ToySpace


class TestToySpaceContract(SearchSpaceContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return ToySpace()
