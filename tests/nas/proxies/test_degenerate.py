"""ProxyObjective's degenerate-network check agrees with NB201's graph rule (no path from input to
output), including on the connected cells whose input signal vanishes below float32 resolution."""

from __future__ import annotations

import math

import pytest

from nas.proxies import ProxyBatch, ProxyData, output_ignores_input
from nas.training import PackagedImages
from search_spaces import NB201Space
from search_spaces.nb201 import is_disconnected

CELLS = [
    # Connected, 87-92% accurate: every path holds two or more convolutions, and in eval mode at
    # initialisation their outputs agree to float32 precision across images.
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|none~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|none~2|",
    "|none~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|nor_conv_1x1~2|",
    # Disconnected.
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|",
    "|none~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|none~2|",
    # Connected through a skip: an easy case.
    "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
]


@pytest.fixture(scope="module")
def batch() -> ProxyBatch:
    return ProxyData(PackagedImages(count=80), batch_size=16).batch((3, 32, 32), 10)


@pytest.mark.parametrize("string", CELLS)
def test_refused_exactly_when_no_path_leads_from_input_to_output(string: str, batch: ProxyBatch) -> None:
    space = NB201Space()
    arch = space.parse(string)
    model = space.build(arch, seed=0).train()
    assert output_ignores_input(model, batch) == is_disconnected(arch)
    assert model.training


@pytest.mark.parametrize("string", CELLS)
def test_the_objective_asks_the_space_and_refuses_the_same_cells(string: str, batch: ProxyBatch) -> None:
    """NB201 is a DisconnectedSpace: ProxyObjective asks it instead of the gradient check above,
    and refuses exactly the cells the graph rule calls disconnected."""
    from nas import Candidate
    from nas.proxies import ProxyError, ProxyObjective, synflow

    space = NB201Space()
    arch = space.parse(string)
    objective = ProxyObjective(synflow, data=ProxyData(PackagedImages(count=80), batch_size=16))
    if is_disconnected(arch):
        with pytest.raises(ProxyError, match="does not depend on its input"):
            objective(Candidate(arch, space))
    else:
        assert math.isfinite(objective(Candidate(arch, space)))
