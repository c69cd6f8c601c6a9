"""Measured profiles: the table format, resuming, crash repair, refusal of another device's files."""

from __future__ import annotations

import csv
import functools
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from latency_predictors.measure import (
    LAYERS_FILE,
    DriftMonitor,
    LatencyStats,
    LayerProfileWriter,
    OnnxRuntimeCPU,
    ProfileCorruptError,
    ProfileMismatchError,
    ProfileWriter,
    TorchEagerCPU,
    all_layers,
    covering_architectures,
    distinct_layers,
    measure_latency_ms,
    profile_architectures,
    profile_layers,
)
from nas import DEVICE_FILE, Architecture, Device, LayeredSpace, LayerSpec
from nas.tables import BenchmarkTable
from search_spaces import NB201Space
from tests.nas.toy import ToySpace

DEVICE = Device(name="cpu_test_t1_b1_fp32", hardware="test cpu", runtime="onnxruntime x", threads=1)
SPACE = {"name": "toy", "instance": {"_target_": "tests.nas.toy.ToySpace"}}
SETTINGS = {"warmup": 1, "repeats": 3, "batch_size": 1, "precision": "fp32"}
MEASURE = functools.partial(measure_latency_ms, warmup=1, repeats=3)


def stats(median_ms: float) -> LatencyStats:
    return LatencyStats(median_ms=median_ms, iqr_ms=0.1, min_ms=median_ms - 0.05, mean_ms=median_ms, repeats=3)


def writer(directory: Path, **changes: object) -> ProfileWriter:
    arguments = {"space": SPACE, "settings": SETTINGS, "host": {"cpu": "test cpu"}} | changes
    device = arguments.pop("device", DEVICE)
    return ProfileWriter(directory, device, **arguments)


def read(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_profile_is_a_benchmark_table_with_empty_energy_cells(tmp_path: Path) -> None:
    with writer(tmp_path) as w:
        w.append("4-8-1-3", stats(1.5))
        w.append("8-8-3-3", stats(2.25))
    table = BenchmarkTable.load(tmp_path)
    assert table.archs == ["4-8-1-3", "8-8-3-3"]
    assert table.devices("latency_ms") == (DEVICE.name,)
    np.testing.assert_allclose(table.column("latency_ms", DEVICE.name), [1.5, 2.25])
    assert np.isnan(table.column("energy_mj", DEVICE.name)).all()
    assert read(tmp_path / "energy_mj.csv")[1:] == [["0", ""], ["1", ""]]  # empty, never 0
    spreads = read(tmp_path / "spreads.csv")
    assert spreads[0] == ["index", "latency_iqr_ms", "latency_min_ms", "repeats", "outliers", "stable"]
    assert spreads[1][:4] == ["0", "0.1", "1.45", "3"]
    manifest = json.loads((tmp_path / "device.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["device"] == DEVICE.to_dict()
    assert manifest["energy_meter"].startswith("none: ")
    assert manifest["settings"] == SETTINGS and manifest["host"] == {"cpu": "test cpu"}
    assert manifest["started"] <= manifest["updated"]


def test_energy_is_written_when_measured(tmp_path: Path) -> None:
    with writer(tmp_path, energy_meter={"name": "rapl"}) as w:
        w.append("4-8-1-3", stats(1.5), energy_mj=3.25)
    assert BenchmarkTable.load(tmp_path).value("energy_mj", DEVICE.name, "4-8-1-3") == 3.25


def test_reopening_resumes_and_keeps_the_start_time(tmp_path: Path) -> None:
    with writer(tmp_path) as w:
        w.append("4-8-1-3", stats(1.0))
    started = json.loads((tmp_path / "device.json").read_text())["started"]
    with writer(tmp_path) as w:
        assert w.measured() == ["4-8-1-3"] and "4-8-1-3" in w
        with pytest.raises(ValueError, match="already row 0"):
            w.append("4-8-1-3", stats(1.0))
        w.append("8-8-3-3", stats(2.0))
    assert BenchmarkTable.load(tmp_path).archs == ["4-8-1-3", "8-8-3-3"]
    assert json.loads((tmp_path / "device.json").read_text())["started"] == started


def test_stability_counts_wide_spreads_and_unconverged_medians_of_every_row(tmp_path: Path) -> None:
    def row(median_ms: float, iqr_ms: float, stable: bool | None) -> LatencyStats:
        return LatencyStats(
            median_ms=median_ms,
            iqr_ms=iqr_ms,
            min_ms=median_ms / 2,
            mean_ms=median_ms,
            repeats=40,
            outliers=2,
            stable=stable,
        )

    with writer(tmp_path) as w:
        w.append("a", row(1.0, 0.1, True))
        w.append("b", row(1.0, 0.6, True))  # spread wide, yet the median converged
        w.append("c", row(2.0, 1.0, False))  # IQR exactly half the median: not above it
    with writer(tmp_path) as w:  # resumed: the earlier rows are read back from the files
        w.append("d", row(4.0, 3.5, None))  # a fixed-count method reports no convergence
        recorded = w.latency_stats()
        default, strict = w.stability(), w.stability(0.05)
    assert [(s.median_ms, s.iqr_ms, s.repeats, s.outliers, s.stable) for s in recorded] == [
        (1.0, 0.1, 40, 2, True),
        (1.0, 0.6, 40, 2, True),
        (2.0, 1.0, 40, 2, False),
        (4.0, 3.5, 40, 2, None),
    ]
    assert (default.rows, default.unstable, default.not_converged) == (4, (1, 3), (2,))
    assert strict.unstable == (0, 1, 2, 3) and strict.to_dict()["unstable_rows"] == 4
    assert default.to_dict() == {
        "rows": 4,
        "unstable_iqr_ratio": 0.5,
        "unstable_rows": 2,
        "unstable_indices": [1, 3],
        "not_converged_rows": 1,
        "not_converged_indices": [2],
    }


def test_torn_last_line_and_rows_beyond_archs_are_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with writer(tmp_path) as w:
        w.append("4-8-1-3", stats(1.0))
    # Killed while writing the second row: latency written whole, archs.csv torn mid-line.
    with (tmp_path / "latency_ms.csv").open("a") as f:
        f.write("1,2.0\n")
    with (tmp_path / "archs.csv").open("a") as f:
        f.write("1,8-8-")
    with caplog.at_level(logging.WARNING, logger="hwnas.profile"), writer(tmp_path) as w:
        assert w.measured() == ["4-8-1-3"]
        w.append("8-8-3-3", stats(2.5))
    assert "torn last line" in caplog.text and "beyond archs.csv" in caplog.text
    table = BenchmarkTable.load(tmp_path)
    assert table.archs == ["4-8-1-3", "8-8-3-3"]
    np.testing.assert_allclose(table.column("latency_ms", DEVICE.name), [1.0, 2.5])


def test_another_device_or_settings_is_refused_naming_both_fingerprints(tmp_path: Path) -> None:
    with writer(tmp_path) as w:
        w.append("4-8-1-3", stats(1.0))
        first = w.fingerprint
    other = Device(name="cpu_test_t2_b1_fp32", hardware="test cpu", runtime="onnxruntime x", threads=2)
    for changes in (
        {"device": other},
        {"settings": SETTINGS | {"repeats": 50}},
        {"space": {"name": "toy", "instance": {"channels": 4}}},
    ):
        with pytest.raises(ProfileMismatchError, match=first) as error:
            writer(tmp_path, **changes)
        assert str(error.value).count("fingerprint") == 2
    assert writer(tmp_path, host={"cpu": "rebooted"}).measured() == ["4-8-1-3"]  # host is not compared


def test_hand_edited_files_are_refused(tmp_path: Path) -> None:
    with writer(tmp_path) as w:
        w.append("4-8-1-3", stats(1.0))
    (tmp_path / "latency_ms.csv").write_text("index,cpu_test_t1_b1_fp32\n")  # fewer rows than archs.csv
    with pytest.raises(ProfileCorruptError, match="latency_ms.csv has 0 rows"):
        writer(tmp_path)
    # a row repeated by hand (or by two writers before they were locked out): refused, not read twice
    with writer(tmp_path / "twice") as w:
        w.append("4-8-1-3", stats(1.0))
        w.append("8-8-3-3", stats(2.0))
    archs = tmp_path / "twice" / "archs.csv"
    archs.write_text(archs.read_text().replace("1,8-8-3-3", "0,8-8-3-3"))
    with pytest.raises(ProfileCorruptError, match="archs.csv line 3: index '0' where 1 belongs"):
        writer(tmp_path / "twice")


def test_drop_tail_removes_only_the_last_rows(tmp_path: Path) -> None:
    with writer(tmp_path) as w:
        for i, arch in enumerate(("4-4-1-1", "4-8-1-1", "8-8-1-1")):
            w.append(arch, stats(float(i + 1)))
        with pytest.raises(ValueError, match="not the last rows"):
            w.drop_tail(["4-4-1-1"])
        w.drop_tail(["4-8-1-1", "8-8-1-1"])
        w.append("8-8-3-3", stats(9.0))
    table = BenchmarkTable.load(tmp_path)
    assert table.archs == ["4-4-1-1", "8-8-3-3"]
    np.testing.assert_allclose(table.column("latency_ms", DEVICE.name), [1.0, 9.0])


def test_a_profile_written_before_device_owned_its_file_is_resumed_as_it_was(tmp_path: Path) -> None:
    existing = Path(__file__).parents[2] / "nas" / "data" / "nb201_profile" / DEVICE_FILE
    shutil.copy(existing, tmp_path / DEVICE_FILE)
    record = json.loads(existing.read_text())
    device = Device.read(tmp_path)
    arguments = {k: record[k] for k in ("space", "settings", "host", "energy_meter")}
    with ProfileWriter(tmp_path, device, **arguments) as w:  # the same fingerprint: no mismatch
        assert w.fingerprint == record["fingerprint"]
    rewritten = json.loads((tmp_path / DEVICE_FILE).read_text())
    assert rewritten["started"] == record["started"] and rewritten["updated"] != record["updated"]
    assert (tmp_path / DEVICE_FILE).read_text().replace(rewritten["updated"], record["updated"]) == existing.read_text()


def test_profile_architectures_measures_real_networks_and_redoes_drifted_rows(tmp_path: Path) -> None:
    space = NB201Space(channels=4, cells_per_stage=1)
    archs = [space.sample(np.random.default_rng(seed)) for seed in range(3)]
    # The reference's medians in turn: the baseline, then a check after each row; the one after
    # row 1 drifted and came back (a transient), so row 1 is measured again before row 2.
    medians_ms = iter([10.0, 10.0, 13.0, 10.0, 10.0, 10.0])
    monitor = DriftMonitor(lambda: None, every=1, settle_checks=1, settle_s=0.0, measure=lambda run: next(medians_ms))
    with writer(tmp_path, space={"name": "nb201"}) as w:
        run = profile_architectures(space, archs, OnnxRuntimeCPU(threads=1), w, measure=MEASURE, drift_monitor=monitor)
    assert run.measured == 3 and run.failed == () and run.archs_per_minute > 0
    checks = [(r.drifted, r.redo) for r in monitor.reports]
    assert checks == [(False, ()), (True, (archs[1].string,)), (False, ()), (False, ())]
    table = BenchmarkTable.load(tmp_path)
    assert table.archs == [a.string for a in archs]
    assert (table.column("latency_ms", DEVICE.name) > 0).all()
    with writer(tmp_path, space={"name": "nb201"}) as w:  # everything is there: nothing measured
        again = profile_architectures(space, archs, OnnxRuntimeCPU(threads=1), w, measure=MEASURE)
    assert (again.measured, again.skipped) == (0, 3)


class LayeredToy(ToySpace, LayeredSpace):
    """ToySpace listing its networks as three lookup-table layers."""

    def distinct_layers(self) -> tuple[LayerSpec, ...]:
        return tuple({layer.key: layer for arch in self.enumerate() for layer in self.layers(arch)}.values())

    def layers(self, arch: Architecture) -> tuple[LayerSpec, ...]:
        w0, w1, k0, k1 = (arch[g.name] for g in self.genes())
        return (
            LayerSpec(f"conv_3_{w0}_k{k0}", (3, 8, 8)),
            LayerSpec(f"conv_{w0}_{w1}_k{k1}", (w0, 8, 8)),
            LayerSpec(f"head_{w1}", (w1, 8, 8)),
        )

    def build_layer(self, layer: LayerSpec, seed: int = 0) -> nn.Module:
        kind, *sizes = layer.key.split("_")
        with torch.random.fork_rng():  # deterministic weights, global RNG left as it was
            torch.manual_seed(seed)
            if kind == "head":
                return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(int(sizes[0]), 10))
            cin, cout, k = int(sizes[0]), int(sizes[1]), int(sizes[2][1:])
            return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.ReLU())


def test_distinct_layers_are_deduplicated_in_first_seen_order() -> None:
    space = LayeredToy()
    archs = [space.parse("4-8-1-3"), space.parse("4-16-1-3")]
    assert [layer.key for layer in distinct_layers(space, archs)] == [
        "conv_3_4_k1",
        "conv_4_8_k3",
        "head_8",
        "conv_4_16_k3",
        "head_16",
    ]


def test_all_layers_covers_every_layer_of_the_space() -> None:
    space = LayeredToy()
    everything = {layer.key for layer in distinct_layers(space, space.enumerate())}
    found = all_layers(space, np.random.default_rng(0), patience=100)
    assert {layer.key for layer in found} == everything  # 8 + 32 + 4 keys
    assert len(found) == len(everything)
    # Per-gene coverage alone (uniform architectures) already shows every value of every gene.
    covering = covering_architectures(space)
    assert {a["width_0"] for a in covering} == {4, 8, 16, 32}


def test_layer_profile_measures_resumes_and_drops_a_torn_line(tmp_path: Path) -> None:
    space = LayeredToy()
    layers = distinct_layers(space, [space.parse("4-8-1-3"), space.parse("8-8-3-3")])
    with LayerProfileWriter(tmp_path, DEVICE, space=SPACE, settings=SETTINGS) as w:
        run = profile_layers(space, layers[:3], TorchEagerCPU(threads=1), w, measure=MEASURE)
    assert run.measured == 3
    rows = read(tmp_path / LAYERS_FILE)
    assert rows[0] == ["key", "input_shape", "latency_ms", "iqr_ms", "repeats"]
    assert rows[1][:2] == ["conv_3_4_k1", "3x8x8"] and float(rows[1][2]) > 0
    with (tmp_path / LAYERS_FILE).open("a") as f:
        f.write("conv_3_8_k3,3x8")  # killed mid-row
    with LayerProfileWriter(tmp_path, DEVICE, space=SPACE, settings=SETTINGS) as w:
        again = profile_layers(space, layers, TorchEagerCPU(threads=1), w, measure=MEASURE)
        assert (again.measured, again.skipped) == (len(layers) - 3, 3)
        assert [r["key"] for r in w.rows()] == [layer.key for layer in layers]
    with pytest.raises(ProfileMismatchError):
        LayerProfileWriter(tmp_path, DEVICE, space=SPACE, settings=SETTINGS | {"repeats": 9})
