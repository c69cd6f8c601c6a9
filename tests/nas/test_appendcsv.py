"""The row file every long job writes as it goes: torn lines repaired on open, never on read."""

from pathlib import Path

import pytest

from nas import AppendOnlyCsv, CsvFileError
from nas._appendcsv import read_rows


class KindError(CsvFileError):
    pass


def test_rows_survive_reopening_and_a_torn_line_is_cut_on_open_only(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    with AppendOnlyCsv(path, ["a", "b"]) as rows:
        rows.append(["1", "x,y"])  # a comma inside a cell is quoted, not a new column
    with path.open("a") as handle:
        handle.write("2,")  # killed mid-row
    before = path.read_bytes()
    assert read_rows(path, ["a", "b"]) == [["1", "x,y"]]
    assert path.read_bytes() == before  # reading writes nothing
    with AppendOnlyCsv(path, ["a", "b"]) as rows:
        assert rows.rows == [["1", "x,y"]]
        rows.append(["2", "z"])
    assert read_rows(path, ["a", "b"]) == [["1", "x,y"], ["2", "z"]]


def test_another_header_or_a_short_row_is_refused_with_the_callers_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(KindError, match=r"line 1 is 'a,b'; this run writes 'a,c'"):
        AppendOnlyCsv(path, ["a", "c"], error=KindError)
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(KindError, match="line 3 has 1 cells"):
        read_rows(path, ["a", "b"], KindError)
    assert read_rows(tmp_path / "absent.csv", ["a"]) == []


def test_a_second_writer_is_refused_while_the_first_is_open(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    with AppendOnlyCsv(path, ["a"]):
        with pytest.raises(KindError, match="being written by another run"):
            AppendOnlyCsv(path, ["a"], error=KindError)
        assert read_rows(path, ["a"]) == []  # readers are not writers
    with AppendOnlyCsv(path, ["a"]) as rows:  # closed: free again
        rows.append(["1"])
