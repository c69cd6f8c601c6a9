"""Lookup-table layers of every space: the contract, the key formats, and the published tables'
additivity (HW-NAS-Bench's FBNet LUT columns, Once-for-All's Note10 LUT keys)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from nas import ArchitectureError, LayerSpec, SearchSpace
from nas.testing import LayerContract
from search_spaces.fbnet import FBNetSpace
from search_spaces.fbnet._layers import parse_layer_key as parse_fbnet
from search_spaces.nb201 import NB201Space
from search_spaces.nb201._layers import CellSum
from search_spaces.nb201._layers import parse_layer_key as parse_nb201
from search_spaces.ofa import OFASpace
from search_spaces.ofa._layers import parse_layer_key as parse_ofa
from search_spaces.ofa._references import lut_keys

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NOTE10_RESOLUTIONS = (160, 176, 192, 208, 224)
#: HW-NAS-Bench's FBNet columns that are sums of per-layer lookup tables.
FBNET_LUT_DEVICES = ("raspi4", "pixel3", "fpga", "eyeriss")


class TestNB201Layers(LayerContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return NB201Space()


class TestFBNetLayers(LayerContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return FBNetSpace()


class TestOFALayers(LayerContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return OFASpace()


def _sampled(space: SearchSpace, count: int = 20) -> list:
    rng = np.random.default_rng(0)
    return [space.sample(rng) for _ in range(count)]


# NB201 --------------------------------------------------------------------------------------


def test_nb201_lists_stem_edge_ops_cell_sums_reductions_head() -> None:
    space = NB201Space()
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|")
    keys = [layer.key for layer in space.layers(arch)]
    assert len(keys) == 1 + 3 * 5 * 7 + 2 + 1
    cell = ["nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_1x1", "none"]
    assert keys[:8] == ["stem:c16:h32", *(f"op:{op}:c16:h32" for op in cell), "cell_sum:c16:h32"]
    assert keys[36] == "reduction:c16-32:h32"
    assert keys[37:44] == [*(f"op:{op}:c32:h16" for op in cell), "cell_sum:c32:h16"]
    assert keys[72] == "reduction:c32-64:h16"
    assert keys[-2:] == ["cell_sum:c64:h8", "head:c64:h8:n10"]


def test_nb201_has_22_distinct_layers_covering_every_network() -> None:
    space = NB201Space()
    distinct = {layer.key: layer for layer in space.distinct_layers()}
    assert len(distinct) == 1 + len(NB201_OPS) * 3 + 3 + 2 + 1 == 22
    for arch in _sampled(space):
        assert all(distinct[layer.key] == layer for layer in space.layers(arch))
    # Other sizes give other keys: the key names the configuration.
    other = NB201Space(num_classes=100, channels=8)
    assert {layer.key for layer in other.distinct_layers()} >= {"stem:c8:h32", "head:c32:h8:n100", "op:none:c32:h8"}


def test_nb201_cell_sum_is_the_cells_three_additions() -> None:
    layer = LayerSpec("cell_sum:c16:h32", (16, 32, 32))
    module = NB201Space().build_layer(layer)
    assert isinstance(module, CellSum)
    x = torch.randn(1, 16, 32, 32)
    torch.testing.assert_close(module(x), 4 * x)  # node1 = x, node2 = x + x, node3 = x + x + 2x


def test_nb201_layer_keys_are_parsed_and_checked() -> None:
    space = NB201Space()
    with pytest.raises(ArchitectureError, match="unknown op 'sep_conv_3x3'"):
        space.build_layer(LayerSpec("op:sep_conv_3x3:c16:h32", (16, 32, 32)))
    with pytest.raises(ArchitectureError, match=r"\(16, 32, 32\)"):
        space.build_layer(LayerSpec("op:nor_conv_3x3:c16:h32", (16, 16, 16)))
    conv = space.build_layer(LayerSpec("op:nor_conv_3x3:c16:h32", (16, 32, 32)))
    assert sum(p.numel() for p in conv.parameters()) == 16 * 16 * 9 + 2 * 16


def test_layer_kinds_are_the_keys_without_their_sizes() -> None:
    assert NB201Space().layer_kind("op:nor_conv_3x3:c16:h32") == "op:nor_conv_3x3"
    assert NB201Space().layer_kind("reduction:c16-32:h32") == "reduction"
    assert FBNetSpace().layer_kind("k5_e6:c24-32:s2:h32") == "k5_e6"
    assert FBNetSpace().layer_kind("head:c352-1504:h4:n100") == "head"
    logits = "Logits-input:1x1x1536-output:1000"
    assert OFASpace().layer_kind(logits) == logits  # OFA's keys name no kinds
    with pytest.raises(ArchitectureError, match="not an FBNet layer key"):
        FBNetSpace().layer_kind("op:nor_conv_3x3:c16:h32")


@pytest.mark.parametrize("space", [NB201Space(), FBNetSpace(), OFASpace(resolutions=(224,))], ids=lambda s: s.name)
def test_layer_keys_parse_to_values_that_print_them_back(space: SearchSpace) -> None:
    parse = {"nb201": parse_nb201, "fbnet": parse_fbnet, "ofa": parse_ofa}[space.name]
    for layer in space.distinct_layers():
        key = parse(layer.key)
        assert str(key) == layer.key and key.input_shape == layer.input_shape and key.layer == layer
        assert parse(str(key)) == key  # a frozen value: equal strings, equal keys


# FBNet --------------------------------------------------------------------------------------


def test_fbnet_keys_name_the_configuration_not_the_position() -> None:
    space = FBNetSpace()
    arch = space.parse("|".join(["k3_e6"] * 22))
    keys = [layer.key for layer in space.layers(arch)]
    assert len(keys) == 24
    assert keys[0] == "stem:c3-16:s1:h32"
    assert keys[1:3] == ["k3_e6:c16-16:s1:h32", "k3_e6:c16-24:s1:h32"]
    assert keys[3] == keys[4] == keys[5] == "k3_e6:c24-24:s1:h32"
    assert keys[6] == "k3_e6:c24-32:s2:h32"
    assert keys[-2:] == ["k3_e6:c184-352:s1:h4", "head:c352-1504:h4:n100"]
    imagenet = [layer.key for layer in FBNetSpace("imagenet").layers(arch)]
    assert imagenet[:3] == ["stem:c3-16:s2:h224", "k3_e6:c16-16:s1:h112", "k3_e6:c16-24:s2:h112"]
    assert imagenet[-1] == "head:c352-1984:h7:n1000"


@pytest.mark.parametrize("macro", ["cifar100", "imagenet"])
def test_fbnet_has_110_distinct_layers_covering_every_network(macro: str) -> None:
    space = FBNetSpace(macro)
    distinct = {layer.key: layer for layer in space.distinct_layers()}
    assert len(distinct) == 12 * 9 + 2  # 12 distinct (channels, stride, size) positions x 9 blocks
    for arch in _sampled(space):
        assert all(distinct[layer.key] == layer for layer in space.layers(arch))


def test_fbnet_skip_layers_are_identity_or_a_strided_conv() -> None:
    space = FBNetSpace()
    identity = space.build_layer(LayerSpec("skip:c24-24:s1:h32", (24, 32, 32)))
    assert isinstance(identity, torch.nn.Identity)
    conv = space.build_layer(LayerSpec("skip:c24-32:s2:h32", (24, 32, 32))).eval()
    assert conv(torch.randn(1, 24, 32, 32)).shape == (1, 32, 16, 16)
    with pytest.raises(ArchitectureError, match="k7_e6"):
        space.build_layer(LayerSpec("k7_e6:c24-24:s1:h32", (24, 32, 32)))
    with pytest.raises(ArchitectureError, match="stride 3"):
        space.build_layer(LayerSpec("k3_e6:c24-24:s3:h32", (24, 32, 32)))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_fbnet_lut_columns_are_sums_over_the_layer_keys(data_dir: Path) -> None:
    """HW-NAS-Bench's raspi4/pixel3/fpga/eyeriss FBNet latencies are sums of per-layer lookup
    tables: per-key costs fitted by least squares on 4,000 networks predict the other 1,000
    exactly, so the keys are the tables' decomposition (configurations, not positions)."""
    space = FBNetSpace()
    archs = [space.parse(row["arch"]) for row in _read_csv(data_dir / "fbnet" / "archs.csv")]
    table = _read_csv(data_dir / "fbnet" / "latency_ms.csv")
    column = {layer.key: index for index, layer in enumerate(space.distinct_layers())}
    features = np.zeros((len(archs), len(column)))
    for row, arch in enumerate(archs):
        for layer in space.layers(arch):
            features[row, column[layer.key]] += 1
    order = np.random.default_rng(0).permutation(len(archs))
    train, test = order[:4000], order[4000:]
    for device in FBNET_LUT_DEVICES:
        y = np.array([float(row[device]) for row in table])
        costs, *_ = np.linalg.lstsq(features[train], y[train], rcond=None)
        error = y[test] - features[test] @ costs
        r2 = 1 - (error**2).sum() / ((y[test] - y[test].mean()) ** 2).sum()
        assert r2 > 0.999, device
        assert np.abs(error).max() < 1e-6 * np.abs(y).max(), device


# OFA ----------------------------------------------------------------------------------------


def test_ofa_layer_keys_are_its_note10_lut_keys() -> None:
    space = OFASpace()
    for arch in _sampled(space, 5):
        layers = space.layers(arch)
        assert [layer.key for layer in layers] == lut_keys(space.spec(arch))
        r = int(arch["r"])
        assert layers[0].input_shape == (3, r, r)
        assert layers[-1].key.endswith("-output:1000")


def test_ofa_distinct_layers_are_exactly_the_note10_tables(data_dir: Path) -> None:
    yaml = pytest.importorskip("yaml")
    table_keys: set[str] = set()
    for r in NOTE10_RESOLUTIONS:
        with (data_dir / "ofa" / "note10_lut" / f"{r}_lookup_table.yaml").open() as handle:
            table_keys |= set(yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    distinct = {layer.key for layer in OFASpace(resolutions=NOTE10_RESOLUTIONS).distinct_layers()}
    assert distinct == table_keys
    assert len(distinct) == 450


def test_ofa_distinct_layer_counts() -> None:
    # 96 per resolution: first conv, first block, 5 stages x (first, later) x 3 kernels x 3
    # expand ratios, 4 head layers; resolutions share head and late-stage keys.
    assert len(OFASpace(resolutions=(224,)).distinct_layers()) == 96
    space = OFASpace()
    distinct = {layer.key: layer for layer in space.distinct_layers()}
    assert len(distinct) == 1257
    for arch in _sampled(space):
        assert all(distinct[layer.key] == layer for layer in space.layers(arch))


def test_ofa_layer_keys_are_parsed_and_checked() -> None:
    space = OFASpace()
    first_block = "expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0"
    module = space.build_layer(LayerSpec(first_block, (24, 112, 112)))
    assert module.expand is None and module.se is None and module.residual
    se_layer = "expanded_conv-input:56x56x32-output:28x28x48-expand:192-kernel:5-stride:2-idskip:0-se:1-hs:0"
    module = space.build_layer(LayerSpec(se_layer, (32, 56, 56))).eval()
    assert module.se is not None and not module.residual
    assert module(torch.randn(1, 32, 56, 56)).shape == (1, 48, 28, 28)
    with pytest.raises(ArchitectureError, match="idskip"):
        space.build_layer(LayerSpec(se_layer.replace("idskip:0", "idskip:1"), (32, 56, 56)))
    with pytest.raises(ArchitectureError, match="output size"):
        space.build_layer(LayerSpec(se_layer.replace("28x28x48", "27x27x48"), (32, 56, 56)))
