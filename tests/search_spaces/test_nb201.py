"""NB201Space: the search-space contract, the benchmark's own strings, and the published networks."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nas import Architecture, ArchitectureError, SearchSpace
from nas.testing import SearchSpaceContract, assert_onnx_matches_torch
from search_spaces import NB201Space
from search_spaces.nb201 import is_disconnected, naslib_architecture

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
GENES = ("edge_1_0", "edge_2_0", "edge_2_1", "edge_3_0", "edge_3_1", "edge_3_2")
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def uniform(op: str) -> str:
    return f"|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|"


class TestNB201Contract(SearchSpaceContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return NB201Space()


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space()


@pytest.fixture(scope="module")
def table_strings(data_dir: Path) -> list[str]:
    with open(data_dir / "nb201" / "archs.csv", newline="") as f:
        return [row["arch"] for row in csv.DictReader(f)]


def test_genes_are_the_six_edges_in_string_order(space: NB201Space) -> None:
    assert [g.name for g in space.genes()] == list(GENES)
    assert all(g.choices == OPS for g in space.genes())
    assert space.size() == 15_625
    arch = space.parse(BEST)
    assert [arch[g] for g in GENES] == [
        "nor_conv_3x3",
        "nor_conv_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "nor_conv_3x3",
        "skip_connect",
    ]


def test_every_table_string_round_trips(space: NB201Space, table_strings: list[str]) -> None:
    assert len(table_strings) == 15_625
    assert [space.parse(s).string for s in table_strings] == table_strings


def test_enumerate_gives_exactly_the_table_strings(space: NB201Space, table_strings: list[str]) -> None:
    strings = [a.string for a in space.enumerate()]
    assert len(strings) == len(set(strings)) == 15_625
    assert set(strings) == set(table_strings)


def test_exactly_341_cells_are_disconnected(space: NB201Space) -> None:
    assert sum(is_disconnected(a) for a in space.enumerate()) == 341


@pytest.mark.parametrize(
    ("string", "disconnected"),
    [
        (uniform("none"), True),
        (uniform("skip_connect"), False),
        (BEST, False),
        # Only route to node 3 is via node 1, whose only input edge is none.
        ("|none~0|+|skip_connect~0|none~1|+|none~0|nor_conv_3x3~1|none~2|", True),
        # Through node 2 alone.
        ("|none~0|+|avg_pool_3x3~0|none~1|+|none~0|none~1|skip_connect~2|", False),
    ],
)
def test_is_disconnected(space: NB201Space, string: str, disconnected: bool) -> None:
    assert is_disconnected(space.parse(string)) is disconnected


def test_disconnected_network_ignores_its_input(space: NB201Space) -> None:
    model = space.build(space.parse(uniform("none"))).eval()
    with torch.no_grad():
        a, b = model(space.example_input(2, seed=0)), model(space.example_input(2, seed=1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("string", "message"),
    [
        (
            BEST.replace("avg_pool_3x3~1", "nor_conv_5x5~1"),
            r"token 3 'nor_conv_5x5~1' \(node 2\).*unknown op 'nor_conv_5x5'; allowed ops: none, "
            r"skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3",
        ),
        (
            "|nor_conv_3x3~2|+|none~0|none~1|+|none~0|none~1|none~2|",
            r"token 1 'nor_conv_3x3~2' \(node 1\).*input '2'; expected ~0",
        ),
        (
            "|none~0|+|none~1|none~0|+|none~0|none~1|none~2|",
            r"token 2 'none~1' \(node 2\).*input '1'; expected ~0 \(node 2 reads node\(s\) 0, 1",
        ),
        ("|none~0|+|none~0|none~1|", r"has 2 node\(s\) separated by '\+'; an NB201 cell has 3"),
        (
            "|none~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
            r"node 1 '\|none~0\|none~1\|'.*has 2 edge\(s\); node 1 takes exactly 1, from node\(s\) 0",
        ),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", r"node 1 'none~0'.*start and end with '\|'"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2", r"node 3 .*start and end with '\|'"),
        ("|none|+|none~0|none~1|+|none~0|none~1|none~2|", r"token 1 'none' \(node 1\).*op~input"),
        ("", r"empty"),
    ],
)
def test_malformed_strings_name_the_bad_part(space: NB201Space, string: str, message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        space.parse(string)


@pytest.mark.parametrize("value", [None, 42, ["|none~0|"]])
def test_non_strings_are_refused(space: NB201Space, value: object) -> None:
    with pytest.raises(ArchitectureError, match="must be a string"):
        space.parse(value)  # type: ignore[arg-type]


def hand_param_count(arch: Architecture, channels: int = 16, cells: int = 5, classes: int = 10) -> int:
    """Parameters of the published network, counted from the layer list by hand."""
    conv_kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
    count = 3 * channels * 9 + 2 * channels  # stem conv + BN
    for stage in range(3):
        width = channels * 2**stage
        if stage:
            narrow = width // 2
            count += narrow * width * 9 + 2 * width  # conv_a + BN
            count += width * width * 9 + 2 * width  # conv_b + BN
            count += narrow * width  # shortcut 1x1 conv
        kernels = [conv_kernel[arch[g]] for g in GENES if arch[g] in conv_kernel]
        per_cell = sum(k * k * width * width + 2 * width for k in kernels)
        count += cells * per_cell
    return count + 2 * 4 * channels + 4 * channels * classes + classes  # head BN + linear


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_published_parameter_counts(space: NB201Space) -> None:
    # NAS-Bench-201's range on CIFAR-10 is 0.073 M (all none) to 1.531 M (all nor_conv_3x3);
    # NASLib's table gives the latter exactly as 1.531546 M.
    assert param_count(space.build(space.parse(uniform("nor_conv_3x3")))) == 1_531_546
    assert param_count(space.build(space.parse(uniform("none")))) == 73_306


def test_parameter_counts_match_hand_count(space: NB201Space) -> None:
    rng = np.random.default_rng(3)
    for arch in [space.sample(rng) for _ in range(6)]:
        assert param_count(space.build(arch)) == hand_param_count(arch), arch.string
    wide = NB201Space(num_classes=100, channels=8, cells_per_stage=2)
    arch = wide.parse(BEST)
    assert param_count(wide.build(arch)) == hand_param_count(arch, channels=8, cells=2, classes=100)


def test_naslib_keys_map_to_the_cells_naslib_names() -> None:
    # NASLib's position 0 is edge 1->2 of its 1-based nodes (our node 0 -> 1), op 2 is nor_conv_3x3.
    arch = naslib_architecture(NB201Space(), "(2, 1, 0, 3, 4, 1)")
    assert arch.string == "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"
    for bad in ("(0, 2, 3)", "(0, 2, 3, 2, 3, 5)"):
        with pytest.raises(ArchitectureError, match="NASLib NB201 key"):
            naslib_architecture(NB201Space(), bad)


def test_parameter_counts_match_naslib_table(space: NB201Space, data_dir: Path) -> None:
    table = json.loads((data_dir / "nb201" / "zero_cost_naslib_subset.json").read_text())["cifar10"]
    for key in list(table)[:12]:
        arch = naslib_architecture(space, key)
        published_millions = table[key]["params"]["score"]
        assert param_count(space.build(arch)) / 1e6 == pytest.approx(published_millions, abs=5e-7)


def test_build_is_seeded_and_leaves_global_rng_alone(space: NB201Space) -> None:
    arch = space.parse(BEST)
    state = torch.random.get_rng_state()
    first, again, other = space.build(arch), space.build(arch), space.build(arch, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())
    weights = [m.state_dict() for m in (first, again, other)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_build_refuses_other_spaces(space: NB201Space) -> None:
    foreign = Architecture(space="fbnet", genes=(), string="skip")
    with pytest.raises(ArchitectureError, match="fbnet"):
        space.build(foreign)


def test_every_edge_is_computed_even_when_dead(space: NB201Space) -> None:
    # edge_2_1 feeds node 2, which reaches the output only through edge_3_2 = none: still built.
    arch = space.parse("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|")
    first_cell = space.build(arch).cells[0]
    kernels = sorted(m.kernel_size for m in first_cell.modules() if isinstance(m, torch.nn.Conv2d))
    assert kernels == [(1, 1), (3, 3)]


def test_cell_with_every_op_exports_to_onnx(space: NB201Space, tmp_path: Path) -> None:
    arch = space.parse("|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|")
    assert_onnx_matches_torch(space, arch, tmp_path)


def test_value_counts_are_op_counts() -> None:
    space = NB201Space()
    arch = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    encoding = space.encoding
    counts = dict(zip(encoding.count_names(), encoding.counts(encoding.indices([arch]))[0]))
    assert counts == {
        "edge_1_0~none": 0,
        "edge_1_0~skip_connect": 2,
        "edge_1_0~nor_conv_1x1": 0,
        "edge_1_0~nor_conv_3x3": 3,
        "edge_1_0~avg_pool_3x3": 1,
    }
