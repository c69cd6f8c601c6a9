"""OFASpace: the contract, the tables' JSON strings, OFA's w1.2 macro, the elastic supernet."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas import Architecture, ArchitectureError, Candidate, SearchSpace
from nas.objectives import Flops, TableMetric
from nas.testing import SearchSpaceContract, SupernetContract
from search_spaces.ofa import OFANetwork, OFASpace, OFASupernet
from search_spaces.ofa._model import macro
from search_spaces.ofa._supernet import KernelTransforms

# Row 0 of ofa/archs.csv, and its canonical form: d=[2,2,2,2,3] skips layers 2,3 of stages 0-3
# and layer 3 of stage 4, whose genes become 3.
TABLE_ROW_0 = (
    '{"ks":[7,5,5,5,7,7,5,7,5,7,3,7,5,3,7,3,5,3,5,3],"e":[6,4,4,6,6,3,4,3,3,6,3,3,3,6,3,4,6,4,3,6],'
    '"d":[2,2,2,2,3],"r":204}'
)
CANONICAL_ROW_0 = (
    '{"ks":[7,5,3,3,7,7,3,3,5,7,3,3,5,3,3,3,5,3,5,3],"e":[6,4,3,3,6,3,3,3,3,6,3,3,3,6,3,3,6,4,3,3],'
    '"d":[2,2,2,2,3],"r":204}'
)


class TestOFAContract(SearchSpaceContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return OFASpace()


class TestOFASupernetContract(SupernetContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return OFASpace()


@pytest.fixture(scope="module")
def space() -> OFASpace:
    return OFASpace()


@pytest.fixture(scope="module")
def table_strings(data_dir: Path) -> list[str]:
    with open(data_dir / "ofa" / "archs.csv", newline="") as f:
        return [row["arch"] for row in csv.DictReader(f)]


def at_resolution(space: OFASpace, arch: Architecture, r: int) -> Architecture:
    return space.architecture({**arch.params, "r": r})


# Genes and strings


def test_genes_are_kernels_expands_depths_and_resolution(space: OFASpace) -> None:
    names = [g.name for g in space.genes()]
    assert names == [f"ks_{i}" for i in range(20)] + [f"e_{i}" for i in range(20)] + [f"d_{s}" for s in range(5)] + [
        "r"
    ]
    choices = {g.name: g.choices for g in space.genes()}
    assert choices["ks_7"] == (3, 5, 7) and choices["e_19"] == (3, 4, 6) and choices["d_4"] == (2, 3, 4)
    assert choices["r"] == tuple(range(128, 225, 4)) and len(choices["r"]) == 25


def test_table_string_canonicalises_skipped_genes_to_three(space: OFASpace) -> None:
    arch = space.parse(TABLE_ROW_0)
    assert arch.string == CANONICAL_ROW_0
    assert space.parse(CANONICAL_ROW_0) == arch
    assert space.input_shape_of(arch) == (3, 204, 204)


def test_every_table_string_parses_to_a_unique_canonical_string(space: OFASpace, table_strings: list[str]) -> None:
    assert len(table_strings) == 5000
    canonical = [space.parse(s).string for s in table_strings]
    assert len(set(canonical)) == 5000
    # Active genes are kept: re-parsing the canonical string gives the same network's string.
    assert [space.parse(s).string for s in canonical[:200]] == canonical[:200]


def test_skipped_genes_do_not_change_the_architecture(space: OFASpace) -> None:
    rng = np.random.default_rng(3)
    for _ in range(10):
        arch = space.sample(rng)
        for stage in range(5):
            depth = int(arch[f"d_{stage}"])
            for j in range(depth, 4):
                i = 4 * stage + j
                changed = space.architecture({**arch.params, f"ks_{i}": 7, f"e_{i}": 6})
                assert changed == arch and changed.string == arch.string
            active = 4 * stage
            other = 7 if arch[f"ks_{active}"] != 7 else 5
            assert space.architecture({**arch.params, f"ks_{active}": other}).string != arch.string


def test_smallest_and_largest(space: OFASpace) -> None:
    small, large = space.smallest(), space.largest()
    assert small.string == '{"ks":[' + ",".join(["3"] * 20) + '],"e":[' + ",".join(["3"] * 20) + (
        '],"d":[2,2,2,2,2],"r":128}'
    )
    assert large.string == '{"ks":[' + ",".join(["7"] * 20) + '],"e":[' + ",".join(["6"] * 20) + (
        '],"d":[4,4,4,4,4],"r":224}'
    )


def test_parse_accepts_any_key_order_and_whitespace(space: OFASpace) -> None:
    document = json.loads(CANONICAL_ROW_0)
    reordered = {"r": document["r"], "d": document["d"], "e": document["e"], "ks": document["ks"]}
    spaced = json.dumps(reordered, indent=2)
    assert space.parse(spaced).string == CANONICAL_ROW_0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: {**d, "ks": d["ks"][:19]}, r'"ks" of .* is a list of 19; expected a list of 20'),
        (lambda d: {**d, "e": {**dict(enumerate(d["e"]))}}, r'"e" of .* is dict; expected a list of 20'),
        (lambda d: {**d, "ks": [*d["ks"][:4], 9, *d["ks"][5:]]}, r'"ks"\[4\] of .* is 9; allowed values: 3, 5, 7'),
        (lambda d: {**d, "e": [*d["e"][:19], 5]}, r'"e"\[19\] of .* is 5; allowed values: 3, 4, 6'),
        (lambda d: {**d, "d": [2, 2, 2, 2, 1]}, r'"d"\[4\] of .* is 1; allowed values: 2, 3, 4'),
        (lambda d: {**d, "d": [True, 2, 2, 2, 2]}, r'"d"\[0\] of .* is True'),
        (lambda d: {**d, "r": 130}, r'"r" of .* is 130; allowed values: 128, 132, \.\.\., 224 \(every 4\)'),
        (lambda d: {**d, "r": "224"}, r"\"r\" of .* is '224'"),
        (
            lambda d: {k: v for k, v in d.items() if k != "d"},
            r"missing key\(s\) \['d'\] and unknown key\(s\) \[\]",
        ),
        (lambda d: {**d, "w": 1.2}, r"unknown key\(s\) \['w'\]"),
    ],
)
def test_parse_errors_name_key_index_value_and_choices(space: OFASpace, edit, message: str) -> None:
    bad = json.dumps(edit(json.loads(CANONICAL_ROW_0)))
    with pytest.raises(ArchitectureError, match=message):
        space.parse(bad)


def test_non_json_is_rejected_with_the_expected_form(space: OFASpace) -> None:
    with pytest.raises(
        ArchitectureError, match=r"not JSON of an OFA architecture .*expected \{\"ks\":\[20 kernel sizes\]"
    ):
        space.parse("ks=3")
    with pytest.raises(ArchitectureError, match="not a JSON object"):
        space.parse("[3, 5]")


def test_table_metric_with_the_space_finds_published_rows(space: OFASpace, data_dir: Path, table_strings) -> None:
    latency = TableMetric("latency", data_dir / "ofa", "latency_ms", "v100_1", space=space)
    with open(data_dir / "ofa" / "latency_ms.csv", newline="") as f:
        expected = float(next(csv.DictReader(f))["v100_1"])
    assert latency(Candidate(space.parse(TABLE_ROW_0), space)) == expected
    oracle = latency.oracle()
    assert len(oracle) == 5000 and oracle[CANONICAL_ROW_0] == expected
    assert TABLE_ROW_0 not in oracle


# The w1.2 macro (the Note10 LUT keys spell out the same widths; see test_ofa_references)


def test_width_12_macro_matches_ofa() -> None:
    m = macro(1.2)
    assert (m.first_conv, m.first_block) == (24, 24)
    assert [s.width for s in m.stages] == [32, 48, 96, 136, 192]
    assert [s.stride for s in m.stages] == [2, 2, 2, 1, 2]
    assert [s.se for s in m.stages] == [False, True, False, True, True]
    assert (m.final_expand, m.feature_mix) == (1152, 1536)
    m10 = macro(1.0)
    assert (m10.first_conv, [s.width for s in m10.stages], m10.final_expand, m10.feature_mix) == (
        16,
        [24, 40, 80, 112, 160],
        960,
        1280,
    )


def test_build_follows_the_genes(space: OFASpace) -> None:
    arch = space.parse(CANONICAL_ROW_0)
    model = space.build(arch)
    assert isinstance(model, OFANetwork)
    assert len(model.blocks) == 1 + 11  # first block + sum(d)
    layer = model.blocks[1]  # stage 0 layer 0: 24 -> 32, k7, e6 on 24 input channels
    assert layer.expand.conv.weight.shape == (144, 24, 1, 1)
    assert layer.depthwise.conv.weight.shape == (144, 1, 7, 7) and layer.depthwise.conv.stride == (2, 2)
    assert layer.se is None and not layer.residual
    se_layer = model.blocks[3]  # stage 1 layer 0: 32 -> 48, k7, e6 with SE
    assert se_layer.se is not None and se_layer.se.reduce.weight.shape == (48, 192, 1, 1)
    assert model.head.classifier.weight.shape == (1000, 1536)


def test_build_is_deterministic_and_leaves_global_rng_alone(space: OFASpace) -> None:
    arch = space.smallest()
    state = torch.get_rng_state()
    a, b = space.build(arch, seed=5).state_dict(), space.build(arch, seed=5).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = space.build(arch, seed=6).state_dict()
    assert not torch.equal(a["head.classifier.weight"], c["head.classifier.weight"])


# The supernet


def calibrate(supernet: OFASupernet, seed: int = 1) -> OFASupernet:
    """Make eval-mode outputs depend on the path: default BN statistics let freshly initialised
    activations shrink to nothing, so every architecture would output the classifier bias."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in supernet.modules():
            if isinstance(module, KernelTransforms):
                # Away from identity, so the kernel transformation is actually exercised.
                for matrix in module.parameters():
                    matrix.add_(0.1 * torch.randn(matrix.shape, generator=generator))
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
                module.momentum = 1.0
        space = supernet.space
        arch = space.architecture({**space.largest().params, "r": 128})
        supernet.train()(space.example_input(batch_size=2, arch=arch, seed=seed), arch)
        for module in supernet.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1
    return supernet.eval()


@pytest.fixture(scope="module")
def supernet(space: OFASpace) -> OFASupernet:
    return calibrate(space.supernet(seed=0))


def assert_invariant(supernet: OFASupernet, arch: Architecture) -> torch.Tensor:
    x = supernet.space.example_input(batch_size=1, arch=arch, seed=7)
    with torch.no_grad():
        expected = supernet(x, arch)
        actual = supernet.subnet(arch).eval()(x)
    assert (expected - actual).abs().max().item() < 1e-5, arch.string
    return expected


def low_resolution_samples(space: OFASpace, count: int, seed: int) -> list[Architecture]:
    rng = np.random.default_rng(seed)
    return [at_resolution(space, space.sample(rng), int(rng.choice([128, 144, 160]))) for _ in range(count)]


def test_supernet_and_subnet_agree(space: OFASpace, supernet: OFASupernet) -> None:
    archs = [space.smallest(), space.largest(), *low_resolution_samples(space, 6, seed=0)]
    outputs = [assert_invariant(supernet, arch) for arch in archs]
    # The invariant is not vacuous: different paths give different logits.
    assert (outputs[0] - outputs[2]).abs().max() > 1e-3


@pytest.mark.slow
def test_supernet_and_subnet_agree_broadly(space: OFASpace, supernet: OFASupernet) -> None:
    rng = np.random.default_rng(11)
    for _ in range(30):
        assert_invariant(supernet, space.sample(rng))


def test_subnet_is_the_built_class_with_copied_weights(space: OFASpace, supernet: OFASupernet) -> None:
    arch = low_resolution_samples(space, 1, seed=4)[0]
    subnet = supernet.subnet(arch)
    built = space.build(arch)
    assert type(subnet) is type(built)
    shapes = {k: v.shape for k, v in built.state_dict().items()}
    assert {k: v.shape for k, v in subnet.state_dict().items()} == shapes
    before = supernet.first_conv.conv.weight.clone()
    with torch.no_grad():
        subnet.first_conv.conv.weight.add_(1.0)
        subnet.blocks[1].project.conv.weight.zero_()
    assert torch.equal(supernet.first_conv.conv.weight, before)
    assert supernet.stages[0][0].block.project.conv.weight.abs().sum() > 0


def test_supernet_rejects_wrong_resolution_and_other_spaces(space: OFASpace, supernet: OFASupernet) -> None:
    arch = space.smallest()
    with pytest.raises(ValueError, match=r"r=128; resize the batch to 128x128"):
        supernet(torch.zeros(1, 3, 160, 160), arch)
    with pytest.raises(ValueError, match="cannot run a 'nb201'"):
        supernet(torch.zeros(1, 3, 128, 128), Architecture("nb201", (), "x"))


def test_training_forward_updates_only_the_active_slice_of_bn_statistics(space: OFASpace) -> None:
    supernet = space.supernet(seed=2).train()
    arch = space.smallest()  # e=3 on every layer: stage 0 layer 0 has 72 of its 144 middle channels
    bn = supernet.stages[0][0].block.depthwise.bn
    supernet(space.example_input(batch_size=2, arch=arch), arch)
    assert (bn.running_mean[:72] != 0).all() and (bn.running_mean[72:] == 0).all()
    assert (supernet.stages[0][2].block.depthwise.bn.running_mean == 0).all()  # skipped by depth


def test_fresh_kernel_transforms_are_identity_so_small_kernels_are_centre_crops(space: OFASpace) -> None:
    supernet = space.supernet(seed=3)
    layer = supernet.stages[2][1]
    full = layer.block.depthwise.conv.weight
    assert torch.equal(layer.weights(7, 6)["depthwise.conv.weight"], full)
    assert torch.equal(layer.weights(5, 6)["depthwise.conv.weight"], full[:, :, 1:6, 1:6])
    assert torch.equal(layer.weights(3, 4)["depthwise.conv.weight"], full[: layer.mid_of[4], :, 2:5, 2:5])


def test_kernel_transforms_chain_7_to_5_to_3(supernet: OFASupernet) -> None:
    layer = supernet.stages[1][0]
    full = layer.block.depthwise.conv.weight.detach()
    m75 = layer.kernel_transforms.matrix(7, 5).detach()
    m53 = layer.kernel_transforms.matrix(5, 3).detach()
    five = (full[:, :, 1:6, 1:6].reshape(-1, 25) @ m75.T).reshape(-1, 1, 5, 5)
    three = (five[:, :, 1:4, 1:4].reshape(-1, 9) @ m53.T).reshape(-1, 1, 3, 3)
    torch.testing.assert_close(layer.weights(5, 6)["depthwise.conv.weight"], five)
    torch.testing.assert_close(layer.weights(3, 6)["depthwise.conv.weight"], three)
    assert not torch.allclose(three, full[:, :, 2:5, 2:5])


def test_sort_channels_keeps_the_largest_function_and_ranks_channels(space: OFASpace, supernet: OFASupernet) -> None:
    sorted_net = copy.deepcopy(supernet)
    largest = at_resolution(space, space.largest(), 128)
    x = space.example_input(batch_size=1, arch=largest, seed=9)
    small = space.smallest()
    layer = supernet.stages[3][0]  # 96 -> 136 with SE: 288 of 576 middle channels at e=3
    importance = layer.block.project.conv.weight.abs().sum(dim=(0, 2, 3))
    top = torch.sort(importance, descending=True, stable=True).indices[: layer.mid_of[3]]
    unsorted_weight = supernet.subnet(small).blocks[7].project.conv.weight  # first block + 2 x 3 stages
    assert not torch.equal(unsorted_weight, layer.block.project.conv.weight[:, top])

    sorted_net.sort_channels()
    with torch.no_grad():
        torch.testing.assert_close(sorted_net(x, largest), supernet(x, largest), rtol=1e-5, atol=1e-5)
    inherited = sorted_net.subnet(small).blocks[7]
    assert torch.equal(inherited.project.conv.weight, layer.block.project.conv.weight[:, top])
    assert torch.equal(inherited.expand.conv.weight, layer.block.expand.conv.weight[top])
    assert torch.equal(inherited.depthwise.bn.running_var, layer.block.depthwise.bn.running_var[top])
    assert_invariant(sorted_net, small)


@pytest.mark.parametrize(("prefix", "mega_macs"), [("flops-389M", 389), ("flops-482M", 482)])
def test_multiply_accumulates_match_ofa_flops_nets(
    space: OFASpace, data_dir: Path, prefix: str, mega_macs: int
) -> None:
    # OFA names its nets by multiply-accumulates; Flops counts 2 per MAC. Agreement to within
    # 1 M checks every conv's width, kernel and stride at 224 px.
    with open(data_dir / "ofa" / "specialized.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["name"].startswith(prefix))
    flops = Flops(mega=True)(Candidate(space.parse(row["arch"]), space))
    assert abs(flops / 2 - mega_macs) < 1, flops


def test_resolutions_can_be_restricted_to_the_note10_tables() -> None:
    space = OFASpace(resolutions=[224, 160, 176, 192, 208])
    assert space.distributions()["r"].choices == (160, 176, 192, 208, 224)
    assert space.smallest()["r"] == 160 and space.largest()["r"] == 224
    rng = np.random.default_rng(0)
    assert {space.sample(rng)["r"] for _ in range(50)} <= {160, 176, 192, 208, 224}
    with pytest.raises(ArchitectureError, match="'r' has value 128"):
        space.parse(OFASpace().smallest().string)
    with pytest.raises(ValueError, match="not allowed: \\[130\\]"):
        OFASpace(resolutions=[130])
    assert "resolutions=[160" in repr(space) and "resolutions" not in repr(OFASpace())


def test_value_counts_ignore_layers_the_depths_skip() -> None:
    space = OFASpace()
    encoding = space.encoding
    indices = encoding.indices([space.smallest(), space.largest()])
    names = encoding.count_names()
    small, large = (dict(zip(names, row)) for row in encoding.counts(indices, space.active_mask(indices)))
    assert small["ks_0~3"] == 10 and small["e_0~3"] == 10 and small["d_0~2"] == 5  # 5 stages x 2 layers
    assert large["ks_0~7"] == 20 and large["e_0~6"] == 20 and large["d_0~4"] == 5
    assert sum(v for k, v in small.items() if k.startswith("ks_0~")) == 10


def test_active_genes_are_the_layers_each_depth_keeps(space: OFASpace) -> None:
    arch = space.architecture({**space.smallest().params, "d_0": 3, "d_2": 4})
    mask = space.active_mask(space.encoding.indices([arch]))[0]
    active = {gene.name for gene, used in zip(space.genes(), mask) if used}
    # stage 0 keeps layers 0-2, stage 1 (depth 2) layers 4-5, stage 2 layers 8-11
    kept = {0, 1, 2, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17}
    assert {int(g.split("_")[1]) for g in active if g.startswith("ks_")} == kept
    assert {int(g.split("_")[1]) for g in active if g.startswith("e_")} == kept
    assert {f"d_{s}" for s in range(5)} | {"r"} <= active
