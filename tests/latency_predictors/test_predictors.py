"""Latency predictors: the pickle-free file format, the predictor contract, and accuracy on tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from latency_predictors.predictors import (
    FORMAT_VERSION,
    FlopsPredictor,
    LayerSumPredictor,
    PredictorFileError,
    UnseenLayerError,
    load_predictor_file,
    read_header,
    save_predictor,
)
from nas import Architecture, Predictor, PredictorMismatchError, SearchSpace
from nas.testing import PredictorContract, rewrite_predictor_header
from search_spaces import FBNetSpace, NB201Space
from tests.latency_predictors.helpers import DEVICE, table_rows

# The contract, on a handful of NB201 rows


class NB201Rows:
    @pytest.fixture
    def space(self) -> SearchSpace:
        return NB201Space()

    @pytest.fixture
    def archs_and_targets(self, data_dir: Path, space: SearchSpace) -> tuple[list[Architecture], np.ndarray]:
        return table_rows(data_dir, space, np.arange(0, 15625, 1250))


class TestLayerSumContract(NB201Rows, PredictorContract):
    @pytest.fixture
    def predictor_factory(self) -> Callable[[SearchSpace, str], Predictor]:
        return LayerSumPredictor


class TestFlopsContract(NB201Rows, PredictorContract):
    @pytest.fixture
    def predictor_factory(self) -> Callable[[SearchSpace, str], Predictor]:
        return FlopsPredictor


class TestLayerSumContractFBNet(PredictorContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return FBNetSpace()

    @pytest.fixture
    def predictor_factory(self) -> Callable[[SearchSpace, str], Predictor]:
        return LayerSumPredictor

    @pytest.fixture
    def archs_and_targets(self, data_dir: Path, space: SearchSpace) -> tuple[list[Architecture], np.ndarray]:
        return table_rows(data_dir, space, np.arange(0, 5000, 250))


# The file format


def test_format_round_trip_keeps_header_and_arrays(tmp_path: Path) -> None:
    path = tmp_path / "p.lut"  # any name: no suffix is added
    arrays = {"w": np.arange(6.0).reshape(2, 3), "keys": np.array(["a", "bb"])}
    assert (
        save_predictor(
            path,
            kind="k",
            space="s",
            device_fingerprint="d",
            feature_version=3,
            arrays=arrays,
            params={"x": [1, 2]},
        )
        == path
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.lut"]  # no temporary file left
    header, loaded = load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"}, feature_version=3)
    assert header["format_version"] == FORMAT_VERSION
    assert (header["kind"], header["params"], header["feature_version"]) == ("k", {"x": [1, 2]}, 3)
    np.testing.assert_array_equal(loaded["w"], arrays["w"])
    assert list(loaded["keys"]) == ["a", "bb"]
    assert read_header(path)["space"] == "s"


def test_format_refusals(tmp_path: Path) -> None:
    path = tmp_path / "p.npz"
    save_predictor(
        path,
        kind="k",
        space="s",
        device_fingerprint="d",
        feature_version=1,
        arrays={"w": np.ones(2)},
        params={},
    )
    with pytest.raises(PredictorMismatchError, match="'k'"):
        load_predictor_file(path, space="s", device_fingerprint="d", kinds={"other"})
    with pytest.raises(PredictorMismatchError, match="feature_version 1.*feature_version 2"):
        load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"}, feature_version=2)
    with pytest.raises(PredictorMismatchError, match="device d; asked for space 's', device e"):
        load_predictor_file(path, space="s", device_fingerprint="e", kinds={"k"})
    rewrite_predictor_header(path, format_version=FORMAT_VERSION + 5)
    with pytest.raises(
        PredictorFileError, match=f"format_version {FORMAT_VERSION + 5}.*format_version {FORMAT_VERSION}"
    ):
        load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"})


def test_format_refuses_object_arrays_and_pickled_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no objects"):
        save_predictor(
            tmp_path / "x.npz",
            kind="k",
            space="s",
            device_fingerprint="d",
            feature_version=1,
            arrays={"w": np.array([{"a": 1}], dtype=object)},
            params={},
        )
    pickled = tmp_path / "pickled.npz"
    with pickled.open("wb") as handle:
        np.savez(
            handle,
            __header__=np.frombuffer(b'{"format_version": 1}', dtype=np.uint8),
            w=np.array([1, "a"], dtype=object),
        )
    with pytest.raises(PredictorFileError, match="unpickling"):
        load_predictor_file(pickled, space="s", device_fingerprint="d", kinds={"k"})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(PredictorFileError):
        load_predictor_file(tmp_path / "junk.npz", space="s", device_fingerprint="d", kinds={"k"})


def test_format_loads_with_allow_pickle_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.npz"
    save_predictor(path, kind="k", space="s", device_fingerprint="d", feature_version=1, arrays={}, params={})
    calls = []
    original = np.load

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("allow_pickle"))
        return original(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"})
    assert calls == [False]


# Layer-sum specifics


def test_from_layer_table_sums_the_layers() -> None:
    space = NB201Space()
    arch = space.sample(np.random.default_rng(0))
    costs = {layer.key: 1.0 + i for i, layer in enumerate(space.distinct_layers())}
    predictor = LayerSumPredictor.from_layer_table(space, DEVICE, costs, intercept=0.5)
    expected = 0.5 + sum(costs[layer.key] for layer in space.layers(arch))
    assert predictor.predict([arch])[0] == pytest.approx(expected)


def test_unseen_keys_raise_or_take_their_kind_mean() -> None:
    space = NB201Space()
    keys = [layer.key for layer in space.distinct_layers()]
    dropped = "op:nor_conv_3x3:c32:h16"
    costs = {key: float(len(key)) for key in keys if key != dropped}
    arch = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    strict = LayerSumPredictor.from_layer_table(space, DEVICE, costs)
    with pytest.raises(UnseenLayerError, match=dropped):
        strict.predict([arch])
    lenient = LayerSumPredictor.from_layer_table(space, DEVICE, costs, unseen="kind_mean")
    same_kind = [costs[k] for k in keys if k != dropped and space.layer_kind(k) == "op:nor_conv_3x3"]
    full = LayerSumPredictor.from_layer_table(space, DEVICE, {**costs, dropped: float(np.mean(same_kind))})
    assert lenient.predict([arch])[0] == pytest.approx(full.predict([arch])[0])
    # what each can price: the strict one lacks the dropped key, the lenient one lacks nothing,
    # and a key of a kind it has never seen stays uncovered either way
    assert strict.uncovered(keys) == [dropped] and lenient.uncovered(keys) == []
    assert lenient.uncovered([*keys, "op:new_op:c16:h32"]) == ["op:new_op:c16:h32"]


def test_fit_refuses_bad_targets_and_foreign_architectures(data_dir: Path) -> None:
    space = NB201Space()
    archs, y = table_rows(data_dir, space, np.arange(5))
    with pytest.raises(ValueError, match="finite"):
        LayerSumPredictor(space, DEVICE).fit(archs, np.where(np.arange(5) == 2, np.nan, y))
    with pytest.raises(ValueError, match="> 0"):
        FlopsPredictor(space, DEVICE).fit(archs, -y)
    with pytest.raises(PredictorMismatchError, match="fbnet"):
        LayerSumPredictor(space, DEVICE).fit([FBNetSpace().sample(np.random.default_rng(0))], y[:1])


# Accuracy on the published tables


def relative_errors(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    return np.abs(predicted / measured - 1)


def test_layer_sum_recovers_fbnet_raspi4(data_dir: Path) -> None:
    """FBNet's raspi4 column is a sum of per-layer lookup tables: 900 networks pin down the costs
    of its 110 keys, and the other 4,100 are predicted almost exactly (measured: Spearman 1.0000,
    100% within 1%, largest error 3e-5)."""
    space = FBNetSpace()
    archs, y = table_rows(data_dir, space, np.arange(5000))
    predictor = LayerSumPredictor(space, DEVICE).fit(archs[:900], y[:900])
    predicted = predictor.predict(archs[900:])
    errors = relative_errors(predicted, y[900:])
    assert spearmanr(predicted, y[900:])[0] > 0.99
    assert np.mean(errors <= 0.10) >= 0.97
    assert np.max(errors) < 0.01
    assert len(predictor.keys) == len(space.distinct_layers())


def test_flops_baseline_on_fbnet_raspi4(data_dir: Path) -> None:
    """The power law of FLOPs ranks well but is no lookup table (measured: Spearman 0.930, 90.9%
    within 10%)."""
    space = FBNetSpace()
    archs, y = table_rows(data_dir, space, np.arange(5000))
    predicted = FlopsPredictor(space, DEVICE).fit(archs[:900], y[:900]).predict(archs[900:])
    assert spearmanr(predicted, y[900:])[0] > 0.9
    assert np.mean(relative_errors(predicted, y[900:]) <= 0.10) > 0.85
