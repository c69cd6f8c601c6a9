"""NB201Supernet: the supernet contract, plus cells that only NB201 has (dead edges, no path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas import Supernet
from nas.testing import SupernetContract, give_batchnorm_statistics
from search_spaces import NB201Space
from search_spaces.nb201 import NB201Supernet, is_disconnected

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def uniform(op: str) -> str:
    return f"|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|"


class TestNB201Supernet(SupernetContract):
    """The contract on a narrow, shallow configuration (the skeleton is the same; 10x cheaper)."""

    @pytest.fixture
    def space(self) -> NB201Space:
        return NB201Space(channels=8, cells_per_stage=2)


@pytest.mark.slow
class TestPublishedNB201Supernet(SupernetContract):
    """The contract on the benchmark's configuration (C=16, N=5)."""

    @pytest.fixture
    def space(self) -> NB201Space:
        return NB201Space()


@pytest.fixture(scope="module")
def space() -> NB201Space:
    # Not the default configuration: widths, cell counts and classes must come from the space.
    return NB201Space(num_classes=7, channels=4, cells_per_stage=2)


@pytest.fixture(scope="module")
def supernet(space: NB201Space) -> NB201Supernet:
    net = space.supernet()
    give_batchnorm_statistics(space, net, [space.largest(), space.parse(uniform("nor_conv_1x1"))], seed=3)
    return net.eval()


# Every op alone, cells with dead edges and cells with no path from input to output.
SPECIAL = [
    *(uniform(op) for op in OPS),
    "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|",  # node 2 is dead
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|none~0|none~1|none~2|",  # no input to out
    "|none~0|+|none~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|",  # node 1 is zero
    "|none~0|+|skip_connect~0|none~1|+|none~0|none~1|nor_conv_3x3~2|",
]


@pytest.mark.parametrize("string", SPECIAL)
def test_invariant_on_special_cells(space: NB201Space, supernet: NB201Supernet, string: str) -> None:
    arch = space.parse(string)
    x = space.example_input(batch_size=3, seed=9, arch=arch)
    with torch.no_grad():
        np.testing.assert_allclose(
            supernet(x, arch).numpy(), supernet.subnet(arch).eval()(x).numpy(), rtol=0, atol=1e-5, err_msg=string
        )


def test_disconnected_cells_give_one_output_for_every_input(space: NB201Space, supernet: NB201Supernet) -> None:
    # The cell outputs zeros, so the logits are those of the head on zero features.
    arch = space.parse(SPECIAL[6])
    assert is_disconnected(arch)
    x = space.example_input(batch_size=3, seed=1, arch=arch)
    with torch.no_grad():
        logits = supernet(x, arch)
    torch.testing.assert_close(logits, logits[:1].expand_as(logits))


def test_every_edge_holds_every_op_once(space: NB201Space, supernet: NB201Supernet) -> None:
    cells = [b for b in supernet.cells if hasattr(b, "routes")]
    assert len(cells) == 3 * space.cells_per_stage
    for cell in cells:
        assert len(cell.edges) == 6
        assert all(tuple(edge) == OPS for edge in cell.edges)
    # Separate modules: no two edges (or cells) share a convolution.
    convs = [m for m in supernet.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len({id(m.weight) for m in convs}) == len(convs)


def test_subnet_copies_the_chosen_ops_weights(space: NB201Space, supernet: NB201Supernet) -> None:
    arch = space.parse("|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|")
    subnet = supernet.subnet(arch)
    chosen = supernet.cells[0].edges[1]["nor_conv_3x3"]
    copied = subnet.cells[0].edges[1]
    assert torch.equal(copied[1].weight, chosen[1].weight)
    assert torch.equal(copied[2].running_var, chosen[2].running_var)
    assert copied[1].weight.data_ptr() != chosen[1].weight.data_ptr()


def test_smallest_and_largest(space: NB201Space) -> None:
    assert space.smallest().string == uniform("none")
    assert space.largest().string == uniform("nor_conv_3x3")
    params = [sum(p.numel() for p in space.build(space.parse(uniform(op))).parameters()) for op in OPS]
    assert params[OPS.index("none")] == min(params) and params[OPS.index("nor_conv_3x3")] == max(params)


def test_supernet_is_seeded_and_leaves_global_rng_alone(space: NB201Space) -> None:
    state = torch.random.get_rng_state()
    first, again, other = space.supernet(), space.supernet(), space.supernet(seed=1)
    assert torch.equal(state, torch.random.get_rng_state())
    assert isinstance(first, Supernet)
    weights = [m.state_dict() for m in (first, again, other)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_training_reaches_only_the_chosen_ops(space: NB201Space) -> None:
    net = space.supernet().train()
    arch = space.parse("|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|avg_pool_3x3~0|skip_connect~1|nor_conv_3x3~2|")
    x = space.example_input(batch_size=2, seed=0, arch=arch)
    net(x, arch).sum().backward()
    cell = net.cells[0]
    assert cell.edges[0]["nor_conv_1x1"][1].weight.grad is not None
    assert cell.edges[0]["nor_conv_3x3"][1].weight.grad is None
    assert cell.edges[1]["nor_conv_1x1"][1].weight.grad is None
