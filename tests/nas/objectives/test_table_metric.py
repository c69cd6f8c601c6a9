"""TableMetric: table values by canonical string, checked at construction, missing cells fail the trial."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from nas import Architecture, Candidate, Cost, Device, Direction, ObjectiveError
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
    with pytest.raises(ObjectiveError, match=r"no usable latency_ms\[npu\] value for b"):
        latency.evaluate(candidate("b", space="tiny"))
    with pytest.raises(ObjectiveError, match="'zzz' is not in"):
        latency.evaluate(candidate("zzz", space="tiny"))


def test_space_canonicalises_table_strings_for_lookup_and_oracle(tmp_path):
    from tests.nas.toy import ToySpace

    folder = tmp_path / "toy"
    folder.mkdir()
    # Not canonical: zero-padded integers name the same toy networks.
    (folder / "archs.csv").write_text("index,arch,top1\n0,08-4-1-3,50\n1,16-32-3-3,60\n")
    space = ToySpace()
    accuracy = TableMetric("acc", folder, "top1", direction="maximize", space=space)
    arch = space.parse("8-4-1-3")
    assert accuracy(Candidate(arch, space)) == 50.0
    assert accuracy.oracle() == {"8-4-1-3": 50.0, "16-32-3-3": 60.0}
    assert accuracy.table.archs == ["08-4-1-3", "16-32-3-3"]
    # One loaded table per folder and space (compared by repr), another without a space.
    assert TableMetric("acc2", folder, "top1", direction="maximize", space=ToySpace()).table is accuracy.table
    plain = TableMetric("acc3", folder, "top1", direction="maximize")
    assert plain.table is not accuracy.table
    with pytest.raises(ObjectiveError, match="'8-4-1-3' is not in"):
        plain(Candidate(arch, space))
    assert "space=ToySpace()" in repr(accuracy)


def test_space_duplicates_after_canonicalising_fail_naming_both_lines(tmp_path):
    from nas.tables import TableFormatError
    from tests.nas.toy import ToySpace

    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "archs.csv").write_text("index,arch,top1\n0,8-4-1-3,50\n1,08-4-1-3,60\n")
    accuracy = TableMetric("acc", folder, "top1", direction="maximize", space=ToySpace())
    with pytest.raises(TableFormatError, match=r"lines 2 and 3 hold '8-4-1-3' and '08-4-1-3'"):
        accuracy.oracle()


def test_source_names_the_column_and_a_profiled_device(tmp_path, data_dir):
    """A published column is its name; a profile's column is named by settings, the same on
    every machine, so its source carries the fingerprint device.json records."""
    published = TableMetric("latency", data_dir / "nb201", "latency_ms", "raspi4")
    assert published.source() == "table latency_ms[raspi4]"
    sources, devices = [], []
    for machine in ("cpu a", "cpu b"):
        device = Device(name="cpu_onnxruntime_t1_b1_fp32", hardware=machine, runtime="onnxruntime 1", threads=1)
        folder = tmp_path / machine.replace(" ", "_")
        folder.mkdir()
        (folder / "archs.csv").write_text("index,arch\n0,x\n")
        (folder / "latency_ms.csv").write_text("index,cpu_onnxruntime_t1_b1_fp32\n0,1.5\n")
        (folder / "device.json").write_text(json.dumps({"device": device.to_dict()}))
        sources.append(TableMetric("latency", folder, "latency_ms", "cpu_onnxruntime_t1_b1_fp32").source())
        devices.append(device)
    assert sources == [f"table latency_ms[cpu_onnxruntime_t1_b1_fp32] device {d.fingerprint}" for d in devices]
    assert sources[0] != sources[1]
