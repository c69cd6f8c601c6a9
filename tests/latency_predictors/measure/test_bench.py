"""Benches: a live runtime and a table column answer "measure this architecture" alike, counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from latency_predictors.measure import (
    Bench,
    LiveBench,
    MeasuredLatency,
    OnnxRuntimeCPU,
    TableBench,
    measure_into,
    open_profile,
)
from nas.tables import BenchmarkTable, UnknownDeviceError
from search_spaces import NB201Space

SPACE_RECORD = {"name": "nb201", "instance": {}}


def nb201() -> NB201Space:
    return NB201Space(num_classes=10)


def test_a_table_column_answers_by_lookup_and_counts_each_answer(data_dir: Path, tmp_path: Path) -> None:
    space = nb201()
    bench: Bench = TableBench(data_dir / "nb201", "raspi4", space)
    table = BenchmarkTable.load(data_dir / "nb201")
    archs = [space.parse(s) for s in table.archs[:5]]
    assert bench.metrics() == ("latency_ms",) and bench.device().name == "raspi4"
    with open_profile(tmp_path / "p", bench, SPACE_RECORD) as writer:
        appended, failed = measure_into(bench, space, archs[:3], writer)
        again, _ = measure_into(bench, space, archs, writer)  # only the two it lacks
    assert (appended, failed, again, bench.answers) == (3, [], 2, 5)
    profile = BenchmarkTable.load(tmp_path / "p")
    np.testing.assert_allclose(
        profile.column("latency_ms", "raspi4"), table.column("latency_ms", "raspi4")[:5], rtol=1e-5
    )
    # the profile is a table folder whose device is the column's: predictors fitted on it match it
    assert profile.device("raspi4") == bench.device()


def test_a_table_bench_reads_energy_where_the_column_has_it(data_dir: Path) -> None:
    space = nb201()
    bench = TableBench(data_dir / "nb201", "fpga", space)
    assert bench.metrics() == ("latency_ms", "energy_mj")
    reading = bench.measure(space, space.parse(BenchmarkTable.load(data_dir / "nb201").archs[1]))
    assert reading.energy_mj == pytest.approx(37.20752)


def test_an_unknown_column_is_named_with_the_known_ones(data_dir: Path) -> None:
    with pytest.raises(UnknownDeviceError, match="no device 'raspi5'.*raspi4"):
        TableBench(data_dir / "nb201", "raspi5", nb201())


def test_a_live_bench_measures_as_its_latency_objective_on_its_device(tmp_path: Path) -> None:
    space = NB201Space(num_classes=10, channels=4, cells_per_stage=1)
    latency = MeasuredLatency(runtime=OnnxRuntimeCPU(threads=1), warmup=1, repeats=3)
    bench = LiveBench(latency)
    assert bench.device() == latency.device() and bench.metrics() == ("latency_ms",)
    arch = space.sample(np.random.default_rng(0))
    with open_profile(tmp_path / "p", bench, SPACE_RECORD) as writer:
        assert measure_into(bench, space, [arch], writer) == (1, [])
    stats = BenchmarkTable.load(tmp_path / "p").column("latency_ms", bench.device().name)
    assert stats[0] > 0 and bench.answers == 1
    assert bench.settings()["repeats"] == 3
