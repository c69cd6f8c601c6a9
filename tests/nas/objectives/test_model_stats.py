"""Params and Flops on NB201 networks, against hand counts and NAS-Bench-201's published numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas import Architecture, Candidate, Cost, Direction
from nas.objectives import Flops, Params
from search_spaces import NB201Space

GENES = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")


def uniform(op: str) -> str:
    return f"|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|"


def hand_macs(arch: Architecture, channels: int = 16, cells: int = 5, classes: int = 10) -> int:
    """Multiply-accumulates of every conv and linear layer, from NB201's layer list by hand.

    A conv does Cin x Cout x k x k MACs per output pixel; resolution is 32, 16, 8 per stage.
    """
    kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
    macs = 3 * channels * 9 * 32 * 32  # stem
    for stage in range(3):
        width, pixels = channels * 2**stage, (32 // 2**stage) ** 2
        if stage:
            narrow = width // 2
            macs += narrow * width * 9 * pixels  # conv_a, stride 2: output at this stage's size
            macs += width * width * 9 * pixels  # conv_b
            macs += narrow * width * pixels  # shortcut 1x1 conv after the 2x2 pool
        per_cell = sum(kernel[arch[g]] ** 2 * width * width * pixels for g in GENES if arch[g] in kernel)
        macs += cells * per_cell
    return macs + 4 * channels * classes  # classifier


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space()


def test_directions_and_costs() -> None:
    for objective in (Params(), Flops()):
        assert objective.direction is Direction.MINIMIZE and objective.cost is Cost.STATIC
    assert (Params().name, Flops().name, Flops(name="f").name) == ("params", "flops", "f")


def test_params_counts_every_parameter(space: NB201Space) -> None:
    candidate = Candidate(space.parse(uniform("nor_conv_3x3")), space)
    assert Params()(candidate) == 1_531_546.0
    assert Params(mega=True)(candidate) == pytest.approx(1.531546)
    assert Params().evaluate(candidate) == sum(p.numel() for p in candidate.model.parameters())


def test_flops_equal_twice_the_hand_counted_macs(space: NB201Space) -> None:
    rng = np.random.default_rng(11)
    archs = [space.parse(uniform(op)) for op in ("none", "nor_conv_1x1", "nor_conv_3x3")]
    archs += [space.sample(rng) for _ in range(4)]
    for arch in archs:
        assert Flops()(Candidate(arch, space)) == 2 * hand_macs(arch), arch.string


def test_flops_follow_space_sizes() -> None:
    small = NB201Space(num_classes=100, channels=8, cells_per_stage=2)
    arch = small.parse(uniform("nor_conv_3x3"))
    assert Flops()(Candidate(arch, small)) == 2 * hand_macs(arch, channels=8, cells=2, classes=100)


def test_flops_match_nas_bench_201_published_range(space: NB201Space) -> None:
    # NAS-Bench-201 reports its "FLOPs" (multiply-accumulates) on CIFAR-10 as 7.78 M to 220.11 M.
    lowest = Flops(mega=True)(Candidate(space.parse(uniform("none")), space))
    highest = Flops(mega=True)(Candidate(space.parse(uniform("nor_conv_3x3")), space))
    assert lowest / 2 == pytest.approx(7.78, abs=0.005)
    assert highest / 2 == pytest.approx(220.11, abs=0.01)
    assert highest == 440.23936


def test_flops_leave_the_shared_model_unchanged(space: NB201Space) -> None:
    candidate = Candidate(space.parse(uniform("nor_conv_3x3")), space)
    before = {k: v.clone() for k, v in candidate.model.state_dict().items()}
    Flops()(candidate)
    after = candidate.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not candidate.model.training


@pytest.mark.parametrize("space_name", ["nb201", "fbnet", "ofa"])
def test_counts_come_from_the_genes_without_building_the_network(space_name: str) -> None:
    from nas.objectives import count_flops
    from search_spaces import FBNetSpace, OFASpace

    space = {"nb201": NB201Space, "fbnet": FBNetSpace, "ofa": OFASpace}[space_name]()
    arch = space.sample(np.random.default_rng(3))
    candidate = Candidate(arch, space)
    params, flops = Params()(candidate), Flops()(candidate)
    assert "model" not in vars(candidate)  # neither count built the shared network
    model = space.build(arch).eval()
    assert params == sum(p.numel() for p in model.parameters())
    assert flops == count_flops(model, space.example_input(1, arch=arch))


def test_a_space_without_layers_is_counted_on_its_built_network() -> None:
    from tests.nas.toy import ToySpace

    space = ToySpace()
    candidate = Candidate(space.parse("8-16-3-1"), space)
    # conv 3->8 3x3, conv 8->16 1x1, linear 16->10, each with bias; FLOPs on an 8x8 input.
    assert Params()(candidate) == (3 * 8 * 9 + 8) + (8 * 16 + 16) + (16 * 10 + 10)
    assert Flops()(candidate) == 2 * (3 * 8 * 9 * 64 + 8 * 16 * 64 + 16 * 10)
