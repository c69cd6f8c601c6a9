"""OFA's published accuracy predictor and Note10 latency LUT, checked against specialized.csv."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nas import Architecture, Candidate, Cost, Direction, ObjectiveError
from search_spaces.ofa import Note10LatencyLUT, OFAAccuracyPredictor, OFAConfig, OFASpace
from search_spaces.ofa._model import network_spec
from search_spaces.ofa._references import lut_keys
from search_spaces.ofa._space import config_of


def config_of_json(string: str) -> OFAConfig:
    # specialized.csv holds resolutions outside OFASpace's genes (236, 240, 260...): no parse.
    d = json.loads(string)
    return OFAConfig(tuple(d["ks"]), tuple(d["e"]), tuple(d["d"]), d["r"])


@pytest.fixture(scope="module")
def specialized(data_dir: Path) -> list[dict[str, str]]:
    with open(data_dir / "ofa" / "specialized.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def predictor(data_dir: Path) -> OFAAccuracyPredictor:
    return OFAAccuracyPredictor(data_dir / "ofa" / "acc_predictor.pth")


@pytest.fixture(scope="module")
def lut(data_dir: Path) -> Note10LatencyLUT:
    return Note10LatencyLUT(data_dir / "ofa" / "note10_lut")


@pytest.fixture(scope="module")
def space() -> OFASpace:
    return OFASpace()


# Accuracy predictor


def test_predictor_agrees_with_specialized_csv_for_every_w12_row(predictor, specialized) -> None:
    rows = [r for r in specialized if r["width_mult"] == "1.2"]
    assert len(rows) == 10
    for row in rows:
        config = config_of_json(row["arch"])
        if not row["predictor_top1"]:  # the 240 and 260 nets: no resolution slot
            assert config.r >= 240
            with pytest.raises(ObjectiveError, match=f"not r={config.r}"):
                predictor.predict(config)
            continue
        assert abs(predictor.predict(config) - float(row["predictor_top1"])) <= 0.006, row["name"]


def test_predictor_csv_column_for_w10_rows_is_the_same_predictor(data_dir, specialized) -> None:
    # The column was filled with this (w1.2) predictor for every row, w1.0 ones included, and
    # below its trained resolutions too: with extrapolation allowed it reproduces all of them.
    lenient = OFAAccuracyPredictor(data_dir / "ofa" / "acc_predictor.pth", allow_extrapolation=True)
    rows = [r for r in specialized if r["width_mult"] == "1.0"]
    assert len(rows) == 24
    for row in rows:
        assert abs(lenient.predict(config_of_json(row["arch"])) - float(row["predictor_top1"])) <= 0.006


def test_predictor_as_an_objective(predictor, space, specialized) -> None:
    assert predictor.name == "accuracy" and predictor.cost is Cost.LOOKUP
    assert predictor.direction is Direction.MAXIMIZE
    row = next(r for r in specialized if r["name"].startswith("note10_lat-30ms"))
    arch = space.parse(row["arch"])
    assert abs(predictor.evaluate(Candidate(arch, space)) - float(row["predictor_top1"])) <= 0.006
    small, large = (
        predictor.evaluate(Candidate(space.architecture({**a.params, "r": 192}), space))
        for a in (space.smallest(), space.largest())
    )
    assert 60 < small < large < 90


def test_predictor_refuses_untrained_resolutions(predictor, data_dir, space) -> None:
    arch = space.architecture({**space.largest().params, "r": 156})
    with pytest.raises(ObjectiveError, match=r"160\.\.239, not r=156 \(allow_extrapolation=True"):
        predictor.evaluate(Candidate(arch, space))
    lenient = OFAAccuracyPredictor(data_dir / "ofa" / "acc_predictor.pth", allow_extrapolation=True)
    assert math.isfinite(lenient.evaluate(Candidate(arch, space)))
    too_large = config_of_json(json.dumps({"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 240}))
    with pytest.raises(ObjectiveError, match="not r=240"):
        lenient.predict(too_large)


def test_predictor_refuses_other_widths(predictor, space) -> None:
    narrow = OFASpace(width_mult=1.0)
    with pytest.raises(ObjectiveError, match="width-1.2 network; this space has width_mult=1.0"):
        predictor(Candidate(narrow.largest(), narrow))


def test_predictor_features_follow_the_readme_encoding(space) -> None:
    arch = space.parse(
        '{"ks":[7,5,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"e":[6,4,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],'
        '"d":[2,2,2,2,2],"r":176}'
    )
    x = OFAAccuracyPredictor.features(config_of(arch))
    assert x.shape == (128,) and x.sum() == 2 * 10 + 1
    assert x[2] == 1 and x[3 + 1] == 1  # layer 0 k7 at 0+2, layer 1 k5 at 3+1
    assert x[60 + 2] == 1 and x[60 + 3 + 1] == 1  # layer 0 e6, layer 1 e4
    assert x[6:12].sum() == 0 and x[66:72].sum() == 0  # layers 2 and 3 skipped by d_0 = 2
    assert x[120 + (176 - 112) // 16] == 1


# Note10 latency LUT


def test_lut_sums_ofa_note10_30ms_network_to_29_97(lut, space, specialized) -> None:
    row = next(r for r in specialized if r["name"].startswith("note10_lat-30ms"))
    arch = space.parse(row["arch"])
    assert lut.name == "latency_ms" and lut.cost is Cost.LOOKUP and lut.direction is Direction.MINIMIZE
    assert abs(lut.evaluate(Candidate(arch, space)) - 29.97) <= 0.01
    assert float(row["measured_latency_ms"]) == 30


def test_lut_for_other_w12_note10_rows(lut, specialized) -> None:
    # The 41 and 50 ms nets run at r=220, which has no table: interpolating the 208 and 224
    # tables gives 39.2 and 48.9 ms. (The 64 ms net runs at 260, beyond every table.)
    for name, measured in (("note10_lat-41ms", 41), ("note10_lat-50ms", 50)):
        config = config_of_json(next(r for r in specialized if r["name"].startswith(name))["arch"])
        assert config.r == 220
        with pytest.raises(ObjectiveError, match="no Note10 lookup table for r=220.*160, 176, 192, 208, 224"):
            lut.latency(network_spec(config, 1.2, 1000))
        low, high = (
            lut.latency(network_spec(OFAConfig(config.ks, config.e, config.d, r), 1.2, 1000)) for r in (208, 224)
        )
        interpolated = low + (high - low) * (220 - 208) / (224 - 208)
        assert abs(interpolated - measured) < 0.05 * measured, (name, interpolated)


def test_lut_refuses_other_widths_and_resolutions(lut, space) -> None:
    narrow = OFASpace(width_mult=1.0)
    with pytest.raises(ObjectiveError, match="width_mult=1.0"):
        lut(Candidate(narrow.largest(), narrow))
    with pytest.raises(ObjectiveError, match="r=128 in .*tables exist for r in 160, 176, 192, 208, 224"):
        lut(Candidate(space.smallest(), space))
    spec = network_spec(OFAConfig((3,) * 20, (3,) * 20, (2,) * 5, 160), 1.0, 1000)
    with pytest.raises(ObjectiveError, match=r"no entry 'Conv-input:160x160x3-output:80x80x16'"):
        lut.latency(spec)


def uniform(space: OFASpace, ks: int, e: int, d: int, r: int) -> Architecture:
    genes = {**{f"ks_{i}": ks for i in range(20)}, **{f"e_{i}": e for i in range(20)}}
    return space.architecture({**genes, **{f"d_{s}": d for s in range(5)}, "r": r})


@pytest.mark.parametrize("resolution", [160, 176, 192, 208, 224])
def test_every_architecture_has_lut_entries(lut, space, resolution) -> None:
    rng = np.random.default_rng(resolution)
    archs = [space.architecture({**space.sample(rng).params, "r": resolution}) for _ in range(20)]
    # Every (kernel, expand) on every layer position: together they use every entry of a table.
    archs += [uniform(space, k, e, 4, resolution) for k in (3, 5, 7) for e in (3, 4, 6)]
    archs += [uniform(space, 3, 3, 2, resolution), uniform(space, 7, 6, 4, resolution)]
    latencies = [lut(Candidate(a, space)) for a in archs]
    assert min(latencies) == latencies[-2] and max(latencies) == latencies[-1]
    used = {key for a in archs for key in lut_keys(space.spec(a))}
    assert used == set(lut.table(resolution))


def test_lut_keys_are_the_built_networks_layer_shapes(space) -> None:
    """The keys come from the spec; here they are rebuilt from the module's real tensors."""
    arch = space.parse(
        '{"ks":[3,5,7,3,7,5,3,3,5,5,5,3,7,3,3,3,5,3,7,3],"e":[3,4,6,3,6,4,3,3,4,6,3,3,3,4,6,3,6,6,3,3],'
        '"d":[4,3,2,4,2],"r":160}'
    )
    model = space.build(arch).eval()
    shapes: list[tuple[str, tuple[int, ...], tuple[int, ...], torch.nn.Module]] = []

    def record(kind: str):
        def hook(module, inputs, output) -> None:
            shapes.append((kind, tuple(inputs[0].shape), tuple(output.shape), module))

        return hook

    model.first_conv.register_forward_hook(record("Conv"))
    for block in model.blocks:
        block.register_forward_hook(record("expanded_conv"))
    model.head.final_expand.register_forward_hook(record("Conv_1"))
    model.head.feature_mix.register_forward_hook(record("Conv_2"))
    model.head.classifier.register_forward_hook(record("Logits"))
    with torch.no_grad():
        model(space.example_input(arch=arch))

    def hwc(shape: tuple[int, ...]) -> str:
        return "x".join(str(d) for d in (*shape[2:], shape[1])) if len(shape) == 4 else str(shape[1])

    keys = []
    for kind, shape_in, shape_out, module in shapes:
        key = f"{kind}-input:{hwc(shape_in)}-output:{hwc(shape_out)}"
        if kind == "expanded_conv":
            depthwise = module.depthwise.conv
            key += (
                f"-expand:{depthwise.in_channels}-kernel:{depthwise.kernel_size[0]}-stride:{depthwise.stride[0]}"
                f"-idskip:{int(module.residual)}-se:{int(module.se is not None)}"
                f"-hs:{int(isinstance(module.depthwise.act, torch.nn.Hardswish))}"
            )
        if kind == "Conv_1":
            c, h = shape_out[1], shape_out[2]
            keys.append(key)
            key = f"AvgPool2D-input:{h}x{h}x{c}-output:1x1x{c}"
        if kind == "Logits":
            key = f"Logits-input:1x1x{shape_in[1]}-output:{shape_out[1]}"
        keys.append(key)
    assert keys == lut_keys(space.spec(arch))
