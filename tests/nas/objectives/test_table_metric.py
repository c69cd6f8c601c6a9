"""TableMetric: table values by canonical string, checked at construction, missing cells fail the trial."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from nas import Architecture, Candidate, Cost, Direction, ObjectiveError
from nas.objectives._table import TableMetric
from nas.tables import UnknownDeviceError


def candidate(string: str, space: str = "nb201") -> Candidate:
    # Table metrics never build the module, so no SearchSpace is needed.
    return Candidate(Architecture(space=space, genes=(), string=string), space=None)  # type: ignore[arg-type]


def nb201_row(data_dir: Path, file: str, index: int) -> dict[str, str]:
    with (data_dir / "nb201" / file).open(newline="") as handle:
        for row in csv.DictReader(handle):
            if int(row["index"]) == index:
                return row
    raise AssertionError(f"no row {index}")


def test_latency_energy_and_accuracy_values(data_dir):
    table = data_dir / "nb201"
    arch = nb201_row(data_dir, "archs.csv", 1)["arch"]
    latency = TableMetric("latency", table, "latency_ms", "raspi4")
    energy = TableMetric("energy", table, "energy_mj", "pi5_onnx")
    accuracy = TableMetric("acc", table, "cifar10_test_acc", direction="maximize")
    assert latency.evaluate(candidate(arch)) == 54.77739761998237
    assert energy.evaluate(candidate(arch)) == float(nb201_row(data_dir, "energy_mj.csv", 1)["pi5_onnx"])
    assert accuracy.evaluate(candidate(arch)) == 93.66000000000001
    assert latency.cost is Cost.LOOKUP
    assert latency.direction is Direction.MINIMIZE and accuracy.direction is Direction.MAXIMIZE


def test_objectives_on_one_folder_share_one_table(data_dir, monkeypatch):
    monkeypatch.chdir(data_dir)
    relative = TableMetric("a", "nb201", "latency_ms", "fpga")
    absolute = TableMetric("b", data_dir / "nb201", "energy_mj", "fpga")
    assert relative.table is absolute.table


def test_bad_device_or_column_fails_at_construction(data_dir):
    table = data_dir / "nb201"
    with pytest.raises(UnknownDeviceError, match="no device 'raspi5'.*raspi4"):
        TableMetric("latency", table, "latency_ms", "raspi5")
    with pytest.raises(ValueError, match="needs a device"):
        TableMetric("latency", table, "latency_ms")
    with pytest.raises(ValueError, match="'top1' is neither.*cifar10_test_acc"):
        TableMetric("acc", table, "top1", direction="maximize")
    with pytest.raises(ValueError, match="drop device='raspi4'"):
        TableMetric("acc", table, "cifar10_test_acc", "raspi4", direction="maximize")
    with pytest.raises(ValueError, match="direction 'max'"):
        TableMetric("acc", table, "cifar10_test_acc", direction="max")
    with pytest.raises(FileNotFoundError, match="energy_mj.csv not found"):
        TableMetric("energy", data_dir / "ofa", "energy_mj", "v100_1")


def test_missing_cell_and_unknown_architecture_fail_the_trial(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "archs.csv").write_text("index,arch\n0,a\n1,b\n")
    (folder / "latency_ms.csv").write_text("index,npu\n0,1.25\n1,\n")
    latency = TableMetric("latency", folder, "latency_ms", "npu")
    assert latency(candidate("a", space="tiny")) == 1.25
    with pytest.raises(ObjectiveError, match=r"no latency_ms\[npu\] value .* for b"):
        latency.evaluate(candidate("b", space="tiny"))
    with pytest.raises(ObjectiveError, match="'zzz' is not in"):
        latency.evaluate(candidate("zzz", space="tiny"))
