"""Benchmark tables: the shared tables read back exactly, any device set works, bad files are named."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.tables import (
    METRICS,
    BenchmarkTable,
    TableFormatError,
    UnknownDeviceError,
    cached_table,
)


def space_folders(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.iterdir() if (p / "archs.csv").is_file())


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """An independent reader: the csv module, nothing else."""
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def write_table(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


ARCHS = 'index,arch,top1\n0,a,70.5\n1,"{""k"":[3,5]}",\n2,c,80\n'


def test_every_space_folder_loads_with_its_csv_headers(data_dir):
    folders = space_folders(data_dir)
    assert {f.name for f in folders} >= {"nb201", "fbnet", "ofa"}
    for folder in folders:
        table = BenchmarkTable.load(folder)
        header, rows = read_csv(folder / "archs.csv")
        assert table.accuracy_columns == tuple(header[2:])
        assert table.archs == [row[1] for row in rows]
        for metric in METRICS:
            path = folder / f"{metric}.csv"
            if not path.is_file():
                assert metric not in table.metrics()
                continue
            header, _ = read_csv(path)
            assert table.devices(metric) == tuple(header[1:])
            for device in table.devices(metric):
                assert table.column(metric, device).shape == (len(rows),)


def test_nb201_spot_values_match_the_csv(data_dir):
    table = BenchmarkTable.load(data_dir / "nb201")
    header, rows = read_csv(data_dir / "nb201" / "latency_ms.csv")
    assert table.column("latency_ms", "raspi4")[1] == 54.77739761998237
    for row_index in (0, 1, 777, len(rows) - 1):
        arch = table.archs[row_index]
        assert table.lookup(arch) == row_index
        for device, cell in zip(header[1:], rows[row_index][1:]):
            assert table.value("latency_ms", device, arch) == float(cell)
    assert table.value("cifar10_test_acc", None, table.archs[1]) == 93.66000000000001
    assert table.devices("energy_mj") == ("fpga", "pi5_litert", "pi5_onnx")
    assert table.accuracy_columns == ("cifar10_test_acc", "cifar100_test_acc", "imagenet16_120_test_acc")


def test_quoted_arch_strings_are_looked_up(data_dir):
    table = BenchmarkTable.load(data_dir / "ofa")
    _, rows = read_csv(data_dir / "ofa" / "archs.csv")
    assert table.archs[3].startswith('{"ks":')
    assert table.lookup(rows[3][1]) == 3


def test_unknown_device_lists_the_devices_and_other_metrics(data_dir):
    table = BenchmarkTable.load(data_dir / "nb201")
    with pytest.raises(UnknownDeviceError, match="no device 'jetson'.*raspi4") as error:
        table.column("latency_ms", "jetson")
    assert isinstance(error.value, ValueError)
    with pytest.raises(UnknownDeviceError, match="'raspi4' is a latency_ms device.*fpga, pi5_litert, pi5_onnx"):
        table.column("energy_mj", "raspi4")


def test_unknown_architecture_names_string_and_table(data_dir):
    table = BenchmarkTable.load(data_dir / "fbnet")
    with pytest.raises(KeyError, match=r"'skip\|nope'.*fbnet/archs.csv"):
        table.lookup("skip|nope")


def test_custom_devices_empty_cells_and_missing_energy(tmp_path):
    folder = write_table(
        tmp_path / "tiny",
        {"archs.csv": ARCHS, "latency_ms.csv": "index,my_npu,jetson_orin_8\n0,1.5,2\n1,,3\n2,4e-1,5\n"},
    )
    table = BenchmarkTable.load(folder)
    assert table.devices("latency_ms") == ("my_npu", "jetson_orin_8")
    assert table.metrics() == ("latency_ms",)
    np.testing.assert_array_equal(table.column("latency_ms", "jetson_orin_8"), [2.0, 3.0, 5.0])
    assert math.isnan(table.value("latency_ms", "my_npu", '{"k":[3,5]}'))
    assert table.value("latency_ms", "my_npu", "c") == 0.4
    assert math.isnan(table.accuracy("top1")[1])
    with pytest.raises(FileNotFoundError, match=r"tiny/energy_mj.csv not found"):
        table.devices("energy_mj")
    with pytest.raises(ValueError, match="unknown metric 'power_w'"):
        table.devices("power_w")
    with pytest.raises(ValueError, match="must be None"):
        table.value("top1", "my_npu", "a")


def test_unusable_cells_read_as_missing_with_a_warning(tmp_path, caplog):
    """A latency or energy <= 0 or infinite is corrupt: every reader sees it as missing (one
    negative raspi4 cell took a search's oracle front from 43 architectures to 1)."""
    folder = write_table(
        tmp_path / "t",
        {"archs.csv": ARCHS, "latency_ms.csv": "index,d,e\n0,-1.5,2\n1,inf,0\n2,3,4\n"},
    )
    table = BenchmarkTable.load(folder)
    with caplog.at_level("WARNING", logger="nas.tables"):
        d = table.column("latency_ms", "d")
    assert np.isnan(d[:2]).all() and d[2] == 3.0
    assert math.isnan(table.value("latency_ms", "e", '{"k":[3,5]}'))
    np.testing.assert_array_equal(table.unusable["latency_ms"]["d"], [0, 1])
    np.testing.assert_array_equal(table.unusable["latency_ms"]["e"], [1])
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "'d'" in warned and "line 2: -1.5" in warned and "line 3: inf" in warned and "'e'" in warned


def test_a_profile_column_is_its_recorded_device_and_a_published_one_its_folder(tmp_path):
    from nas import Device

    device = Device(name="cpu_x", source="live", hardware="some cpu", runtime="onnxruntime 1", threads=1)
    folder = write_table(
        tmp_path / "profile",
        {
            "archs.csv": ARCHS,
            "latency_ms.csv": "index,cpu_x,other\n0,1,1\n1,2,2\n2,3,3\n",
            "device.json": json.dumps({"device": device.to_dict()}),
        },
    )
    table = BenchmarkTable.load(folder)
    assert table.device("cpu_x") == device and table.device("cpu_x").fingerprint == device.fingerprint
    assert table.recorded_device("other") is None
    assert table.device("other") == Device(name="other", source="table:profile")


def test_columns_are_read_only(tmp_path):
    folder = write_table(tmp_path / "t", {"archs.csv": ARCHS, "latency_ms.csv": "index,d\n0,1\n1,2\n2,3\n"})
    column = BenchmarkTable.load(folder).column("latency_ms", "d")
    with pytest.raises(ValueError):
        column[0] = 0.0


def test_missing_folder_and_archs_file_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent")):
        BenchmarkTable.load(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty/archs.csv not found.*index,arch"):
        BenchmarkTable.load(tmp_path / "empty")


def test_bad_number_names_file_line_and_value(tmp_path):
    folder = write_table(tmp_path / "t", {"archs.csv": ARCHS, "latency_ms.csv": "index,d\n0,1\n1,fast\n2,3\n"})
    with pytest.raises(TableFormatError, match=r"latency_ms.csv line 3, column 'd': 'fast' is not a number"):
        BenchmarkTable.load(folder).column("latency_ms", "d")


def test_mismatched_index_names_file_line_and_value(tmp_path):
    folder = write_table(tmp_path / "t", {"archs.csv": ARCHS, "energy_mj.csv": "index,d\n0,1\n2,2\n1,3\n"})
    with pytest.raises(TableFormatError, match=r"energy_mj.csv line 3: index '2' does not match"):
        BenchmarkTable.load(folder).column("energy_mj", "d")


def test_row_count_and_cell_count_mismatches_are_named(tmp_path):
    short = write_table(tmp_path / "short", {"archs.csv": ARCHS, "latency_ms.csv": "index,d\n0,1\n1,2\n"})
    with pytest.raises(TableFormatError, match="has 2 rows but .* has 3"):
        BenchmarkTable.load(short).column("latency_ms", "d")
    ragged = write_table(tmp_path / "ragged", {"archs.csv": ARCHS, "latency_ms.csv": "index,d\n0,1\n1,2,9\n2,3\n"})
    with pytest.raises(TableFormatError, match="line 3 has 3 cells but the header has 2"):
        BenchmarkTable.load(ragged).column("latency_ms", "d")
    bad_index = write_table(tmp_path / "bad_index", {"archs.csv": "index,arch\nzero,a\n"})
    with pytest.raises(TableFormatError, match="line 2: index 'zero' is not an integer"):
        _ = BenchmarkTable.load(bad_index).archs


def test_repeated_columns_and_indices_are_refused_naming_them(tmp_path):
    """Two columns of one device, or two rows of one index: either would be read silently as the
    first one, so both are refused where the file is read."""
    columns = write_table(
        tmp_path / "columns", {"archs.csv": ARCHS, "latency_ms.csv": "index,d,d\n0,1,9\n1,2,9\n2,3,9\n"}
    )
    with pytest.raises(TableFormatError, match=r"latency_ms.csv line 1: columns \['d'\] appear more than once"):
        BenchmarkTable.load(columns).column("latency_ms", "d")
    indices = write_table(tmp_path / "indices", {"archs.csv": "index,arch\n0,a\n1,b\n1,c\n"})
    with pytest.raises(TableFormatError, match="archs.csv lines 3 and 4 both have index 1"):
        _ = BenchmarkTable.load(indices).archs


def test_a_cell_written_as_nan_is_missing_with_a_warning(tmp_path, caplog):
    folder = write_table(tmp_path / "t", {"archs.csv": ARCHS, "latency_ms.csv": "index,d\n0,1\n1,NaN\n2,\n"})
    assert np.isnan(BenchmarkTable.load(folder).column("latency_ms", "d")[1:]).all()
    assert "column 'd': 1 cell(s) written as NaN (lines 3) are read as missing" in caplog.text


def test_an_infinite_accuracy_is_read_as_missing_with_a_warning(tmp_path, caplog):
    folder = write_table(tmp_path / "t", {"archs.csv": "index,arch,top1\n0,a,70.5\n1,b,inf\n2,c,-inf\n"})
    accuracy = BenchmarkTable.load(folder).accuracy("top1")
    assert accuracy[0] == 70.5 and np.isnan(accuracy[1:]).all()
    assert "column 'top1': 2 infinite cell(s) (lines 3, 4)" in caplog.text


def test_relative_paths_use_the_working_directory_and_the_cache_shares_tables(tmp_path, monkeypatch):
    write_table(tmp_path / "rel", {"archs.csv": ARCHS, "latency_ms.csv": "index,d\n0,1\n1,2\n2,3\n"})
    monkeypatch.chdir(tmp_path)
    table = BenchmarkTable.load("rel")
    assert table.directory == tmp_path / "rel"
    assert cached_table("rel") is cached_table(tmp_path / "rel" / ".." / "rel")


def test_archs_file_without_arch_column_fails_at_load(tmp_path):
    folder = write_table(tmp_path / "t", {"archs.csv": "index,genotype\n0,a\n"})
    with pytest.raises(TableFormatError, match="archs.csv line 1: expected the columns index,arch"):
        BenchmarkTable.load(folder)


def test_canonicalise_keys_lookup_and_leaves_archs_as_published(tmp_path):
    folder = write_table(
        tmp_path / "t", {"archs.csv": "index,arch\n0,B-A\n1,c\n", "latency_ms.csv": "index,d\n0,1\n1,2\n"}
    )
    table = BenchmarkTable.load(folder, canonicalise=str.lower)
    assert table.archs == ["B-A", "c"]
    assert table.keys == ["b-a", "c"]
    assert table.lookup("b-a") == 0 and table.value("latency_ms", "d", "c") == 2.0
    with pytest.raises(KeyError, match="'B-A' is not in"):
        table.lookup("B-A")
    assert BenchmarkTable.load(folder).keys == ["B-A", "c"]  # without canonicalise: as published


def test_rows_canonicalising_to_one_string_are_named(tmp_path):
    folder = write_table(tmp_path / "t", {"archs.csv": "index,arch\n0,a\n1,X\n2,x\n"})
    with pytest.raises(TableFormatError, match=r"lines 3 and 4 hold 'X' and 'x', which both canonicalise to 'x'"):
        BenchmarkTable.load(folder, canonicalise=str.lower).lookup("a")


def test_unparsable_table_string_names_the_line(tmp_path):
    def strict(string: str) -> str:
        if not string.isalpha():
            raise ValueError(f"{string!r} is not alphabetic")
        return string

    folder = write_table(tmp_path / "t", {"archs.csv": "index,arch\n0,a\n1,b2\n"})
    with pytest.raises(TableFormatError, match=r"archs.csv line 3: arch 'b2' does not parse: 'b2' is not alphabetic"):
        _ = BenchmarkTable.load(folder, canonicalise=strict).keys


def test_cache_key_includes_canonicalise(tmp_path):
    write_table(tmp_path / "c", {"archs.csv": ARCHS})
    plain = cached_table(tmp_path / "c")
    lowered = cached_table(tmp_path / "c", str.lower)
    assert lowered is not plain and lowered is cached_table(tmp_path / "c", str.lower)
    assert lowered.canonicalise is str.lower and plain.canonicalise is None


CELLS = st.sampled_from(
    ["0", "1", "2", "-1", "1.5", "inf", "nan", "", "x", '"a,b"', "1e400", " 3 ", "index", "arch", "d"]
)


@settings(max_examples=400, deadline=None)
@given(
    archs_header=st.sampled_from(["index,arch", "index,arch,top1", "index,arch,top1,top1", "arch,index", ""]),
    archs=st.lists(st.lists(CELLS, min_size=0, max_size=4), max_size=6),
    latency_header=st.sampled_from(["index,d", "index,d,e", "index,d,d", "d,index", ""]),
    latency=st.lists(st.lists(CELLS, min_size=0, max_size=4), max_size=6),
)
def test_any_csv_content_reads_or_raises_the_projects_own_error(
    archs_header, archs, latency_header, latency, tmp_path_factory
) -> None:
    """Whatever the files hold, a table reads or raises an HwnasError naming the file."""
    from nas import HwnasError

    folder = tmp_path_factory.mktemp("fuzzed")
    (folder / "archs.csv").write_text("\n".join([archs_header, *(",".join(r) for r in archs)]))
    (folder / "latency_ms.csv").write_text("\n".join([latency_header, *(",".join(r) for r in latency)]))
    try:
        table = BenchmarkTable.load(folder)
        table.archs  # noqa: B018
        for device in table.devices("latency_ms"):
            table.column("latency_ms", device)
        for column in table.accuracy_columns:
            table.accuracy(column)
    except HwnasError as error:
        assert str(folder) in str(error)
