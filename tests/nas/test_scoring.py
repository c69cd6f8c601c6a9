"""nas.scoring: rows written as they come, failures kept apart, resumed without rescoring, and
refused when the objectives or their settings change."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from nas import Candidate, Objective
from nas.scoring import FAILURES_FILE, SCORES_FILE, SECONDS_FILE, ScoreFileError, read_scores, score_architectures
from tests.nas.toy import Capacity, NanFor, ToySpace


class Counting(Objective):
    """Capacity, counting its calls."""

    def __init__(self, name: str = "capacity") -> None:
        super().__init__(name)
        self.calls = 0

    def __call__(self, candidate: Candidate) -> float:
        self.calls += 1
        return Capacity("c")(candidate)


def sample(space: ToySpace, n: int) -> list:
    rng = np.random.default_rng(0)
    return list({a.string: a for a in (space.sample(rng) for _ in range(4 * n))}.values())[:n]


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_scores_csv_has_the_issue_columns_and_the_values(tmp_path: Path) -> None:
    space, archs = ToySpace(), sample(ToySpace(), 5)
    rows = score_architectures(space, archs, {"capacity": Capacity("capacity")}, tmp_path, progress=False)
    written = rows_of(tmp_path / SCORES_FILE)
    assert list(written[0]) == ["arch", "capacity", "seconds"]
    assert [r["arch"] for r in written] == [a.string for a in archs]
    for arch, row, line in zip(archs, rows, written):
        expected = Capacity("c")(Candidate(arch, space))
        assert row.values["capacity"] == expected == float(line["capacity"])
        assert float(line["seconds"]) >= 0 and row.seconds["capacity"] >= 0
    assert [r["arch"] for r in rows_of(tmp_path / SECONDS_FILE)] == [a.string for a in archs]


def test_a_failing_objective_leaves_an_empty_cell_and_a_reason(tmp_path: Path) -> None:
    space = ToySpace()
    archs = [space.parse("4-8-1-3"), space.parse("8-8-1-3")]
    rows = score_architectures(space, archs, {"broken": NanFor("broken", width=4)}, tmp_path, progress=False)
    assert rows[0].values["broken"] is None and rows[1].values["broken"] == 1.0
    assert rows_of(tmp_path / SCORES_FILE)[0]["broken"] == ""
    (failure,) = rows_of(tmp_path / FAILURES_FILE)
    assert failure["arch"] == "4-8-1-3" and failure["objective"] == "broken" and "nan" in failure["error"]


def test_a_rerun_scores_only_what_is_missing(tmp_path: Path) -> None:
    space, archs = ToySpace(), sample(ToySpace(), 6)
    first = Counting()
    score_architectures(space, archs[:4], {"capacity": first}, tmp_path, progress=False)
    second = Counting()
    rows = score_architectures(space, archs, {"capacity": second}, tmp_path, progress=False)
    assert (first.calls, second.calls) == (4, 2)
    assert [r.arch for r in rows] == [a.string for a in archs]
    assert len(read_scores(tmp_path, ["capacity"])) == 6 and len(rows_of(tmp_path / SCORES_FILE)) == 6


def test_a_row_cut_short_by_a_kill_is_scored_again(tmp_path: Path) -> None:
    space, archs = ToySpace(), sample(ToySpace(), 3)
    score_architectures(space, archs[:2], {"capacity": Counting()}, tmp_path, progress=False)
    with (tmp_path / SCORES_FILE).open("a") as handle:
        handle.write(archs[2].string + ",")  # killed mid-row
    again = Counting()
    rows = score_architectures(space, archs, {"capacity": again}, tmp_path, progress=False)
    assert again.calls == 1 and rows[2].values["capacity"] is not None
    assert set(read_scores(tmp_path, ["capacity"])) == {a.string for a in archs}


def test_other_objectives_or_settings_are_refused(tmp_path: Path) -> None:
    space, archs = ToySpace(), sample(ToySpace(), 2)
    score_architectures(space, archs, {"capacity": Capacity("capacity")}, tmp_path, progress=False)
    with pytest.raises(ScoreFileError, match="new directory"):
        score_architectures(space, archs, {"other": Capacity("other")}, tmp_path, progress=False)
    with pytest.raises(ScoreFileError, match="new directory"):
        score_architectures(space, archs, {"capacity": NanFor("capacity", 4)}, tmp_path, progress=False)


def test_a_kill_between_the_files_leaves_no_duplicate_rows(tmp_path: Path) -> None:
    space, archs = ToySpace(), sample(ToySpace(), 3)
    score_architectures(space, archs[:2], {"capacity": Counting()}, tmp_path, progress=False)
    # killed after seconds.csv and failures.csv got the third row, before scores.csv did
    with (tmp_path / SECONDS_FILE).open("a") as handle:
        handle.write(f"{archs[2].string},0.5\n")
    with (tmp_path / FAILURES_FILE).open("a") as handle:
        handle.write(f"{archs[2].string},capacity,why\n")
    score_architectures(space, archs, {"capacity": Counting()}, tmp_path, progress=False)
    assert [r["arch"] for r in rows_of(tmp_path / SECONDS_FILE)] == [a.string for a in archs]
    assert rows_of(tmp_path / FAILURES_FILE) == []


def test_a_directory_of_the_previous_writer_resumes(tmp_path: Path) -> None:
    """hwnas-score before AppendOnlyCsv wrote "\\r\\n" line ends and ended a killed row with one."""
    space, archs = ToySpace(), sample(ToySpace(), 3)
    score_architectures(space, archs[:2], {"capacity": Capacity("capacity")}, tmp_path, progress=False)
    lines = (tmp_path / SCORES_FILE).read_text().splitlines()
    (tmp_path / SCORES_FILE).write_bytes(("\r\n".join([*lines, archs[2].string + ",1.5"]) + "\r\n").encode())
    rows = score_architectures(space, archs, {"capacity": Capacity("capacity")}, tmp_path, progress=False)
    assert [r.arch for r in rows] == [a.string for a in archs]
    assert set(read_scores(tmp_path, ["capacity"])) == {a.string for a in archs}
