"""FBNetSpace and FBNetSupernet: the contract, the tables' strings, HW-NAS-Bench's macro, shared weights."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas import Architecture, ArchitectureError, SearchSpace
from nas.export import assert_parity, export_onnx
from nas.testing import SearchSpaceContract, SupernetContract
from search_spaces.fbnet import CIFAR100, IMAGENET, FBNetMacro, FBNetSpace, FBNetSupernet, LayerShape
from search_spaces.fbnet._blocks import (
    BLOCKS,
    FBNetLayer,
    FBNetNetwork,
    layer_flops,
    make_block,
    network_spec,
)

OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
GENES = tuple(f"layer_{i}" for i in range(22))
# HW-NAS-Bench's macro as the tables' README states it: (in, out, CIFAR stride, ImageNet stride).
README_LAYERS = (
    [(16, 16, 1, 1), (16, 24, 1, 2)]
    + [(24, 24, 1, 1)] * 3
    + [(24, 32, 2, 2)]
    + [(32, 32, 1, 1)] * 3
    + [(32, 64, 2, 2)]
    + [(64, 64, 1, 1)] * 3
    + [(64, 112, 1, 1)]
    + [(112, 112, 1, 1)] * 3
    + [(112, 184, 2, 2)]
    + [(184, 184, 1, 1)] * 3
    + [(184, 352, 1, 1)]
)
#: Fewest-FLOPs network (skip, except where a g2 block beats skip's full 1x1 conv) and most.
SMALLEST = "|".join(["skip"] * 13 + ["k3_e1_g2"] + ["skip"] * 7 + ["k3_e1_g2"])
LARGEST = "|".join(["k5_e6"] * 22)
TABLE_FIRST = (
    "k5_e6|skip|k3_e1_g2|skip|k5_e1|skip|skip|skip|k5_e6|k5_e1|k3_e1_g2|k5_e1|k5_e6|k3_e6|k3_e3|"
    "k5_e6|k3_e6|k3_e3|k5_e1|k3_e3|k5_e1|k5_e1_g2"
)


def uniform(op: str) -> str:
    return "|".join([op] * 22)


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: torch.nn.Module, example: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example)
    return counter.get_total_flops()


class TestFBNetContract(SearchSpaceContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return FBNetSpace()


class TestFBNetSupernetContract(SupernetContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return FBNetSpace()


@pytest.fixture(scope="module")
def space() -> FBNetSpace:
    return FBNetSpace()


@pytest.fixture(scope="module")
def table_strings(data_dir: Path) -> list[str]:
    with open(data_dir / "fbnet" / "archs.csv", newline="") as f:
        return [row["arch"] for row in csv.DictReader(f)]


# --- genes and strings -------------------------------------------------------------------------


def test_genes_are_22_layers_of_nine_blocks_in_help_order(space: FBNetSpace) -> None:
    assert [g.name for g in space.genes()] == list(GENES)
    assert all(g.choices == OPS for g in space.genes())
    assert space.size() == 9**22
    arch = space.parse(TABLE_FIRST)
    assert arch["layer_0"] == "k5_e6" and arch["layer_2"] == "k3_e1_g2" and arch["layer_21"] == "k5_e1_g2"


def test_every_table_string_round_trips(space: FBNetSpace, table_strings: list[str]) -> None:
    assert len(table_strings) == 5_000
    assert table_strings[0] == TABLE_FIRST
    assert [space.parse(s).string for s in table_strings] == table_strings


@pytest.mark.parametrize(
    ("string", "message"),
    [
        (
            TABLE_FIRST.replace("k5_e1|skip|skip", "k7_e6|skip|skip", 1),
            r"token 5 of 22 \(layer_4\) 'k7_e6' .*not an FBNet block; allowed blocks: k3_e1, "
            r"k3_e1_g2, k3_e3, k3_e6, k5_e1, k5_e1_g2, k5_e3, k5_e6, skip",
        ),
        (uniform("skip").replace("skip", "Skip", 1), r"token 1 of 22 \(layer_0\) 'Skip'"),
        (uniform("skip") + " ", r"token 22 of 22 \(layer_21\) 'skip '"),
        (
            uniform("skip").replace("|", "||", 1),
            r"has 23 layer\(s\) separated by '\|'; an FBNet architecture has 22",
        ),
        ("|".join(["skip"] * 21), r"has 21 layer\(s\).*has 22"),
        (uniform("skip").replace("|", ","), r"has 1 layer\(s\)"),
        ("", r"has 1 layer\(s\)"),
    ],
)
def test_malformed_strings_name_the_bad_part(space: FBNetSpace, string: str, message: str) -> None:
    with pytest.raises(ArchitectureError, match=message):
        space.parse(string)


@pytest.mark.parametrize("value", [None, 7, OPS])
def test_non_strings_are_refused(space: FBNetSpace, value: object) -> None:
    with pytest.raises(ArchitectureError, match="must be a string"):
        space.parse(value)  # type: ignore[arg-type]


def test_build_refuses_other_spaces(space: FBNetSpace) -> None:
    foreign = Architecture(space="nb201", genes=(), string="|none~0|")
    with pytest.raises(ArchitectureError, match="nb201"):
        space.build(foreign)


# --- macro-architecture ------------------------------------------------------------------------


@pytest.mark.parametrize(("macro", "column"), [(CIFAR100, 2), (IMAGENET, 3)])
def test_macros_are_the_readme_tables(macro: FBNetMacro, column: int) -> None:
    assert [(s.in_channels, s.out_channels, s.stride) for s in macro.layers] == [
        (row[0], row[1], row[column]) for row in README_LAYERS
    ]
    assert macro.stem_channels == 16


def test_macro_variants() -> None:
    cifar, imagenet = FBNetSpace(), FBNetSpace(macro="imagenet")
    assert (cifar.input_shape, cifar.num_classes, cifar.macro.head_channels) == ((3, 32, 32), 100, 1504)
    assert (imagenet.input_shape, imagenet.num_classes, imagenet.macro.head_channels) == ((3, 224, 224), 1000, 1984)
    assert (CIFAR100.stem_stride, IMAGENET.stem_stride) == (1, 2)
    assert FBNetSpace(macro=IMAGENET).macro == IMAGENET
    ten = FBNetSpace(num_classes=10)
    assert ten.num_classes == ten.macro.num_classes == 10 and CIFAR100.num_classes == 100
    with pytest.raises(ValueError, match="unknown FBNet macro 'cifar10'; known macros: cifar100, imagenet"):
        FBNetSpace(macro="cifar10")
    with pytest.raises(ValueError, match="positive"):
        FBNetSpace(num_classes=0)
    assert repr(imagenet) == "FBNetSpace(macro='imagenet')"
    assert repr(ten) == "FBNetSpace(macro='cifar100', num_classes=10)"


def test_custom_macros_are_checked() -> None:
    layers = CIFAR100.layers
    with pytest.raises(ValueError, match="layer 1 takes 24 channels but its input has 16"):
        replace(CIFAR100, layers=(layers[0], LayerShape(24, 24, 1), *layers[2:]))
    with pytest.raises(ValueError, match="layer 21 has an odd width"):
        replace(CIFAR100, layers=(*layers[:21], LayerShape(184, 351, 1)))
    with pytest.raises(ValueError, match="layer 0 has stride 3"):
        replace(CIFAR100, layers=(LayerShape(16, 16, 3), *layers[1:]))
    with pytest.raises(ValueError, match="has 22 layers, this one 21"):
        FBNetSpace(macro=replace(CIFAR100, layers=layers[:21]))
    # A custom macro (a narrow head, smaller inputs) is a space of its own, built as declared.
    wide = FBNetSpace(macro=replace(CIFAR100, head_channels=64, resolution=16))
    model = wide.build(wide.parse(LARGEST)).eval()
    assert model(wide.example_input()).shape == (1, 100) and model.classifier.in_features == 64


def test_layer_resolutions_and_block_shapes(space: FBNetSpace) -> None:
    arch = space.parse(TABLE_FIRST)
    model = space.build(arch).eval()
    sizes: list[tuple[int, ...]] = []
    hooks = [
        block.register_forward_hook(lambda module, inputs, out: sizes.append(tuple(out.shape[1:])))
        for block in model.layers
    ]
    with torch.no_grad():
        model(space.example_input())
    for hook in hooks:
        hook.remove()
    # Stride 2 at layers 5, 9 and 17 only: 32 -> 16 -> 8 -> 4.
    expected_size = [32] * 5 + [16] * 4 + [8] * 8 + [4] * 5
    assert sizes == [(row[1], size, size) for row, size in zip(README_LAYERS, expected_size)]
    for block, op, row in zip(model.layers, TABLE_FIRST.split("|"), README_LAYERS):
        convs = [m for m in block.modules() if isinstance(m, torch.nn.Conv2d)]
        assert all(c.bias is None for c in convs)
        if op == "skip":
            kernels = [] if row[0] == row[1] else [(1, 1)]  # identity unless the shape changes
            assert [c.kernel_size for c in convs] == kernels
            continue
        kernel, expansion = int(op[1]), int(op[4])
        groups = 2 if op.endswith("_g2") else 1
        mid = row[0] * expansion
        assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.groups, c.stride[0]) for c in convs] == [
            (row[0], mid, 1, groups, 1),
            (mid, mid, kernel, mid, row[2]),
            (mid, row[1], 1, groups, 1),
        ]
        assert convs[1].padding == (kernel // 2, kernel // 2)
        assert block.residual == (row[0] == row[1] and row[2] == 1)


def test_channel_shuffle_interleaves_the_two_groups() -> None:
    block = make_block(FBNetLayer(CIFAR100.layers[0], BLOCKS["k3_e1_g2"]))
    x = torch.arange(16.0).reshape(1, 16, 1, 1)
    assert block.shuffle(x).flatten().tolist() == [i // 2 + 8 * (i % 2) for i in range(16)]


def test_imagenet_variant_gives_1000_logits_at_224() -> None:
    space = FBNetSpace(macro="imagenet")
    arch = space.sample(np.random.default_rng(4))
    model = space.build(arch).eval()
    with torch.no_grad():
        logits = model(space.example_input(batch_size=1))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


# --- sizes -------------------------------------------------------------------------------------


def hand_param_count(arch: Architecture, head: int = 1504, classes: int = 100) -> int:
    """Parameters of the README's network, counted by hand (BN contributes 2 per channel)."""
    count = 3 * 16 * 9 + 2 * 16  # stem
    for (cin, cout, _, _), op in zip(README_LAYERS, arch.string.split("|")):
        if op == "skip":
            count += 0 if cin == cout else cin * cout + 2 * cout
            continue
        kernel, expansion = int(op[1]), int(op[4])
        groups = 2 if op.endswith("_g2") else 1
        mid = cin * expansion
        count += cin // groups * mid + 2 * mid  # expand
        count += kernel * kernel * mid + 2 * mid  # depthwise
        count += mid // groups * cout + 2 * cout  # project
    return count + 352 * head + 2 * head + head * classes + classes


def test_parameter_counts_match_hand_count(space: FBNetSpace) -> None:
    rng = np.random.default_rng(5)
    archs = [space.parse(SMALLEST), space.parse(LARGEST), space.parse(uniform("k5_e1_g2"))]
    archs += [space.sample(rng) for _ in range(4)]
    for arch in archs:
        assert param_count(space.build(arch)) == hand_param_count(arch), arch.string
    assert param_count(space.build(space.parse(SMALLEST))) == 766_892
    assert param_count(space.build(space.parse(LARGEST))) == 3_749_652
    imagenet = FBNetSpace(macro="imagenet")
    arch = archs[-1]
    assert param_count(imagenet.build(arch)) == hand_param_count(arch, head=1984, classes=1000)


def test_activation_traffic_of_every_inverted_residual_is_the_hand_count(space: FBNetSpace) -> None:
    # Elements read and written per op, batch 1: the 1x1 expansion reads in*H^2 and writes m*H^2;
    # its BN, ReLU and the shuffle (an Identity without groups) each read and write m*H^2; the
    # depthwise conv reads m*H^2 and writes m*h^2 (h after the stride); its BN and ReLU 2*m*h^2
    # each; the projection reads m*h^2 and writes out*h^2; its BN 2*out*h^2. The residual addition
    # is no module, so it is not counted.
    sizes = space.macro.input_sizes()
    for op in OPS[:-1]:
        layers = space.layers(space.parse(uniform(op)))[1:23]
        stats = space.layer_stats(layers)
        for shape, size, after, stat in zip(space.macro.layers, sizes, sizes[1:], stats):
            mid = shape.in_channels * BLOCKS[op].expansion
            expected = size**2 * (shape.in_channels + 8 * mid) + after**2 * (6 * mid + 3 * shape.out_channels)
            assert stat.activation_traffic == expected, (op, shape, size)


@pytest.mark.slow
def test_layer_flops_match_flop_counter_for_every_layer_shape() -> None:
    # Every (position shape, input size) that occurs in either macro, each with all nine blocks.
    # Meta tensors: FlopCounterMode counts shapes, so nothing is computed.
    cases = {(shape, size) for macro in (CIFAR100, IMAGENET) for shape, size in zip(macro.layers, macro.input_sizes())}
    for shape, size in sorted(cases, key=repr):
        for op, block in BLOCKS.items():
            layer = FBNetLayer(shape, block)
            with torch.device("meta"):
                module, x = make_block(layer), torch.empty(1, shape.in_channels, size, size)
            assert count_flops(module, x) == layer_flops(layer, size), (shape, size, op)


def meta_flops(space: FBNetSpace, arch: Architecture) -> int:
    """FLOPs of ``arch``'s network counted by FlopCounterMode, built and run on the meta device."""
    with torch.device("meta"):
        model = FBNetNetwork(network_spec(space.macro, space.ops(arch)))
        return count_flops(model, torch.empty(1, *space.input_shape))


def test_smallest_and_largest_by_flops(space: FBNetSpace) -> None:
    smallest, largest = space.smallest(), space.largest()
    assert (smallest.string, largest.string) == (SMALLEST, LARGEST)
    counted = {a.string: meta_flops(space, a) for a in (smallest, largest)}
    assert counted == {SMALLEST: 22_653_440, LARGEST: 321_852_160}
    assert space.flops(smallest) == counted[SMALLEST] and space.flops(largest) == counted[LARGEST]
    # Per-layer optimality, against every alternative at every layer.
    for position, gene in enumerate(GENES):
        for op in OPS:
            for extreme, better in ((smallest, int.__le__), (largest, int.__ge__)):
                other = space.architecture({**extreme.params, gene: op})
                assert better(space.flops(extreme), space.flops(other)), (position, op)
    imagenet = FBNetSpace(macro="imagenet")
    assert (imagenet.smallest().string, imagenet.largest().string) == (SMALLEST, LARGEST)


def test_flops_of_sampled_networks_match_flop_counter(space: FBNetSpace) -> None:
    rng = np.random.default_rng(6)
    for arch in [space.sample(rng) for _ in range(4)]:
        assert space.flops(arch) == meta_flops(space, arch), arch.string
    # The real network counts what the meta one counts.
    assert count_flops(space.build(arch), space.example_input()) == space.flops(arch)


def test_build_is_seeded_and_leaves_global_rng_alone(space: FBNetSpace) -> None:
    arch = space.parse(TABLE_FIRST)
    state = torch.random.get_rng_state()
    first, again, other = space.build(arch), space.build(arch), space.build(arch, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())
    weights = [m.state_dict() for m in (first, again, other)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_network_with_every_block_exports_to_onnx(space: FBNetSpace, tmp_path: Path) -> None:
    arch = space.parse("|".join(OPS[i % 9] for i in range(22)))
    model = space.build(arch).eval()
    example = space.example_input(batch_size=1)
    assert_parity(model, example, export_onnx(model, example, tmp_path / "every_block.onnx"))


# --- supernet ----------------------------------------------------------------------------------


def covering(space: FBNetSpace) -> list[Architecture]:
    """Nine architectures that together use every block at every layer."""
    return [space.parse("|".join(OPS[(i + shift) % 9] for i in range(22))) for shift in range(9)]


@pytest.fixture(scope="module")
def supernet(space: FBNetSpace) -> FBNetSupernet:
    """A supernet whose BN layers all hold non-trivial running statistics, in eval mode."""
    supernet = space.supernet()
    generator = torch.Generator().manual_seed(0)
    supernet.train()
    with torch.no_grad():
        # 16x16 inputs: a quarter of the compute, and statistics just as far from the defaults.
        for arch in covering(space):
            supernet(2.0 * torch.randn(2, 3, 16, 16, generator=generator) + 0.5, arch)
    return supernet.eval()


def invariant_archs(space: FBNetSpace) -> list[Architecture]:
    archs = [space.sample(np.random.default_rng(seed)) for seed in range(10)]
    return archs + [space.parse(s) for s in (SMALLEST, LARGEST, uniform("skip"), uniform("k3_e1_g2"))]


def test_supernet_bn_statistics_were_moved_from_their_defaults(supernet: FBNetSupernet) -> None:
    norms = [m for m in supernet.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) > 22 * 8
    assert all(int(m.num_batches_tracked) > 0 and not torch.all(m.running_var == 1) for m in norms)


def test_supernet_and_subnet_agree(space: FBNetSpace, supernet: FBNetSupernet) -> None:
    x = space.example_input(batch_size=2, seed=3)
    for arch in invariant_archs(space):
        subnet = supernet.subnet(arch)
        assert type(subnet) is FBNetNetwork and not subnet.training
        with torch.no_grad():
            difference = (supernet(x, arch) - subnet(x)).abs().max().item()
        assert difference < 1e-5, arch.string


def test_subnet_has_the_state_keys_of_a_built_network(space: FBNetSpace, supernet: FBNetSupernet) -> None:
    arch = space.parse(TABLE_FIRST)
    assert list(supernet.subnet(arch).state_dict()) == list(space.build(arch).state_dict())


def test_supernet_holds_every_block_once(space: FBNetSpace, supernet: FBNetSupernet) -> None:
    assert [list(choices) for choices in supernet.layers] == [list(OPS)] * 22
    fixed = param_count(supernet.stem) + param_count(supernet.head) + param_count(supernet.classifier)
    blocks = sum(param_count(make_block(FBNetLayer(shape, BLOCKS[op]))) for shape in CIFAR100.layers for op in OPS)
    assert param_count(supernet) == fixed + blocks


def test_training_a_subnet_leaves_the_supernet_alone(space: FBNetSpace, supernet: FBNetSupernet) -> None:
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    arch = space.parse(TABLE_FIRST)
    subnet = supernet.subnet(arch).train()
    optimiser = torch.optim.SGD(subnet.parameters(), lr=0.1)
    subnet(space.example_input(batch_size=4, seed=1)).square().mean().backward()
    optimiser.step()
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(subnet.classifier.weight, supernet.classifier.weight)
    assert all(p.grad is None for p in supernet.parameters())


def test_supernet_gradients_reach_only_the_chosen_blocks(space: FBNetSpace) -> None:
    supernet = space.supernet(seed=1).train()
    arch = space.parse(TABLE_FIRST)
    supernet(space.example_input(batch_size=2), arch).sum().backward()
    for choices, chosen in zip(supernet.layers, TABLE_FIRST.split("|")):
        for op, block in choices.items():
            grads = [p.grad is not None for p in block.parameters()]
            assert all(grads) if op == chosen else not any(grads), op


def test_supernet_refuses_other_spaces(supernet: FBNetSupernet) -> None:
    foreign = Architecture(space="nb201", genes=(), string="|none~0|")
    with pytest.raises(ValueError, match="nb201"):
        supernet(torch.zeros(1, 3, 32, 32), foreign)
    with pytest.raises(ValueError, match="nb201"):
        supernet.subnet(foreign)


def test_subnet_exports_to_onnx(space: FBNetSpace, supernet: FBNetSupernet, tmp_path: Path) -> None:
    subnet = supernet.subnet(space.sample(np.random.default_rng(11)))
    example = space.example_input(batch_size=1, seed=2)
    assert_parity(subnet, example, export_onnx(subnet, example, tmp_path / "subnet.onnx"), rtol=1e-4)
