"""nas.fitting: one column fitted on its drawn rows; few-shot sources and the checks around them."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from latency_predictors import FewShotPredictor, FlopsPredictor, LayerSumPredictor
from nas import TransferPredictor
from nas.fit_data import FitSplit
from nas.fitting import ParsedTable, fit_column, fit_sources, fit_split
from nas.tables import BenchmarkTable, UnknownDeviceError, cached_table
from search_spaces import FBNetSpace, NB201Space

ROWS = 2000
DEVICES = ("raspi4", "pixel3", "gold_6226", "pi5_onnx")
layer_sum = functools.partial(LayerSumPredictor, unseen="kind_mean")


@pytest.fixture(scope="module")
def small(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> ParsedTable:
    """The first ROWS rows of nb201's table, four latency columns (pi5_onnx copied per class)."""
    table = cached_table(data_dir / "nb201")
    folder = tmp_path_factory.mktemp("nb201_small")
    (folder / "archs.csv").write_text("index,arch\n" + "".join(f"{i},{table.archs[i]}\n" for i in range(ROWS)))
    columns = [table.column("latency_ms", d)[:ROWS] for d in DEVICES]
    lines = [f"{i}," + ",".join(repr(float(c[i])) for c in columns) + "\n" for i in range(ROWS)]
    (folder / "latency_ms.csv").write_text("index," + ",".join(DEVICES) + "\n" + "".join(lines))
    return ParsedTable.parse(NB201Space(), BenchmarkTable.load(folder))


def test_a_column_copied_per_class_is_fitted_on_the_architectures_measured(small: ParsedTable) -> None:
    result = fit_column(small, "latency_ms", "pi5_onnx", layer_sum, 100, seed=0)
    split, values = result.split, small.table.column("latency_ms", "pi5_onnx")
    assert split.rows_copied > 0 and not np.array_equal(split.measured_on[split.train], split.train)
    on_measured = layer_sum(small.space, "x").fit(
        [small.archs[i] for i in split.measured_on[split.train]], values[split.train]
    )
    on_rows = layer_sum(small.space, "x").fit([small.archs[i] for i in split.train], values[split.train])
    test_archs = [small.archs[i] for i in split.measured_on[split.test]]
    np.testing.assert_array_equal(result.predicted, on_measured.predict(test_archs))
    assert not np.array_equal(result.predicted, on_rows.predict(test_archs))
    np.testing.assert_array_equal(result.measured, values[split.test])
    summary = result.summary()
    assert (summary["n_train"], summary["n_test"]) == (100, ROWS - 100) and summary["predictor"] == "LayerSumPredictor"
    assert summary["rows_measured_on_class_first_row"] == split.rows_copied and "source_devices" not in summary


def test_a_split_given_is_the_split_fitted(small: ParsedTable) -> None:
    values = small.table.column("latency_ms", "raspi4")
    split = FitSplit.folds(values, small.classes, 5, seed=1)[2]
    result = fit_column(small, "latency_ms", "raspi4", FlopsPredictor, None, seed=1)
    assert len(result.split.train) == 900 and result.split.n_train_auto
    folded = fit_split(small, "latency_ms", "raspi4", FlopsPredictor, split, seed=1)
    assert folded.split is split and len(folded.predicted) == len(split.test) == ROWS // 5


def test_few_shot_sources_see_only_the_pool_and_leave_one_device_out(small: ParsedTable) -> None:
    assert isinstance(FewShotPredictor(small.space, "x"), TransferPredictor)
    columns = {d: ("latency_ms", d) for d in ("pixel3", "gold_6226", "pi5_onnx")}
    sources = fit_sources(small, columns, layer_sum, 300, seed=0)
    assert list(sources.predictors) == ["pixel3", "gold_6226", "pi5_onnx"] and len(sources.pool.rows) == 300
    assert sources.predictors["pixel3"].device_fingerprint == small.fingerprint("pixel3")
    result = fit_column(small, "latency_ms", "raspi4", FewShotPredictor, 10, seed=0, sources=sources)
    used = np.concatenate([result.split.train, result.split.test])
    assert not set(used) & set(sources.pool.seen) and len(result.split.train) == 10
    assert result.summary()["source_devices"] == ["pixel3", "gold_6226", "pi5_onnx"]
    assert result.summary()["n_source"] == 300 and result.summary()["source_metric"] == "latency_ms"
    fewer = sources.without_device("pi5_onnx")
    assert list(fewer.predictors) == ["pixel3", "gold_6226"] and list(fewer.pool.sources) == ["pixel3", "gold_6226"]
    assert set(fewer.pool.seen) < set(sources.pool.seen)  # pi5_onnx's pool rows were measured elsewhere too


def test_sources_and_predictor_must_fit_together(small: ParsedTable) -> None:
    sources = fit_sources(small, {d: ("latency_ms", d) for d in ("pixel3", "raspi4")}, layer_sum, 300, seed=0)
    with pytest.raises(ValueError, match="need a predictor that adapts them.*FlopsPredictor is not one"):
        fit_column(small, "latency_ms", "gold_6226", FlopsPredictor, 10, seed=0, sources=sources)
    with pytest.raises(ValueError, match="FewShotPredictor adapts fitted predictors.*source_devices"):
        fit_column(small, "latency_ms", "gold_6226", FewShotPredictor, 10, seed=0)
    with pytest.raises(ValueError, match="source device 'raspi4' is the target device"):
        fit_column(small, "latency_ms", "raspi4", FewShotPredictor, 10, seed=0, sources=sources)
    with pytest.raises(UnknownDeviceError, match="raspi5.*raspi4"):
        fit_sources(small, {"raspi5": ("latency_ms", "raspi5")}, layer_sum, 300, seed=0)
    with pytest.raises(ValueError, match=f"n_source={ROWS} must be between 1 and {ROWS - 1}"):
        fit_sources(small, {"pixel3": ("latency_ms", "pixel3")}, layer_sum, ROWS, seed=0)


def test_sources_from_another_table_leave_out_the_target_rows_holding_their_architectures(
    small: ParsedTable, data_dir: Path, tmp_path: Path
) -> None:
    # a "profile" of 1,000 rows, half of them architectures of `small` (rows 1000-1999), in another order
    table = cached_table(data_dir / "nb201")
    rows = np.random.default_rng(3).permutation(np.arange(1000, 3000))[:1000]
    (tmp_path / "archs.csv").write_text("index,arch\n" + "".join(f"{i},{table.archs[r]}\n" for i, r in enumerate(rows)))
    values = table.column("latency_ms", "raspi4")[rows] * 1.7
    (tmp_path / "latency_ms.csv").write_text(
        "index,here\n" + "".join(f"{i},{float(v)!r}\n" for i, v in enumerate(values))
    )
    profile = ParsedTable.parse(NB201Space(), BenchmarkTable.load(tmp_path))
    sources = fit_sources(small, {d: ("latency_ms", d) for d in ("pixel3", "pi5_onnx")}, layer_sum, 300, seed=0)
    seen = {small.archs[i].string for i in sources.pool.seen}
    expected = [i for i, arch in enumerate(profile.archs) if arch.string in seen]
    assert expected and sources.seen_rows(profile).tolist() == expected
    result = fit_column(profile, "latency_ms", "here", FewShotPredictor, 10, seed=0, sources=sources)
    used = np.concatenate([result.split.train, result.split.test])
    assert sorted(used.tolist()) == sorted(set(range(1000)) - set(expected))
    summary = result.summary()
    assert summary["source_table_dir"] == str(small.table.directory.resolve()) and summary["spearman"] > 0.9
    fbnet = ParsedTable.parse(FBNetSpace(), cached_table(data_dir / "fbnet"))
    with pytest.raises(ValueError, match="sources must be of one space"):
        sources.seen_rows(fbnet)
