"""Score a list of architectures with several objectives into a CSV that grows as it goes.

``scores.csv`` is ``arch,<objective>...,seconds`` (``seconds``: wall time of that row's
objectives together); ``seconds.csv`` holds each objective's own seconds per row, and
``failures.csv`` every objective that could not score an architecture (the proxies' degenerate
networks among them) with its reason: such a cell of ``scores.csv`` is empty. A rerun into the
same directory skips the architectures already written, and refuses to continue with other
objectives or other settings (``sources.json``): one file, one meaning.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from nas._appendcsv import AppendOnlyCsv, CsvFileError, read_rows, rewrite_rows
from nas._architecture import Architecture
from nas._objective import Candidate, Objective, ObjectiveError
from nas._space import SearchSpace

log = logging.getLogger("hwnas.score")

SCORES_FILE = "scores.csv"
SECONDS_FILE = "seconds.csv"
FAILURES_FILE = "failures.csv"
SOURCES_FILE = "sources.json"


class ScoreFileError(CsvFileError):
    """An output directory whose files do not match this run (other objectives or settings), or
    were changed by hand."""


@dataclass(frozen=True)
class ScoreRow:
    """One architecture's values (``None`` where its objective failed) and seconds per objective."""

    arch: str
    values: Mapping[str, float | None]
    seconds: Mapping[str, float]


def score_architectures(
    space: SearchSpace,
    archs: Sequence[Architecture],
    objectives: Mapping[str, Objective],
    out_dir: Path,
    *,
    progress: bool = True,
) -> list[ScoreRow]:
    """Every architecture's row, read back from ``out_dir`` where already scored, else computed
    and appended (each row flushed before the next starts, so a killed run loses at most one)."""
    names = list(objectives)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_sources(out_dir / SOURCES_FILE, space, objectives)
    with ExitStack() as files:
        scores = files.enter_context(
            AppendOnlyCsv(out_dir / SCORES_FILE, ["arch", *names, "seconds"], ScoreFileError, skip_short_rows=True)
        )
        scored = {row[0] for row in scores.rows}
        # seconds.csv and failures.csv are written before scores.csv: rows of an architecture a kill
        # left out of scores.csv are dropped, as it is scored again
        seconds = files.enter_context(_open_without(out_dir / SECONDS_FILE, ["arch", *names], scored))
        failures = files.enter_context(_open_without(out_dir / FAILURES_FILE, ["arch", "objective", "error"], scored))
        done = _rows(scores.rows, seconds.rows, names)
        todo = [a for a in dict.fromkeys(archs, None) if a.string not in done]
        if done:
            log.info("%d of %d architectures already scored in %s", len(archs) - len(todo), len(archs), out_dir)
        for arch in _progress(todo, progress):
            row = _score_one(Candidate(arch, space), objectives, failures)
            total = sum(row.seconds.values())
            seconds.append([arch.string, *(f"{row.seconds[n]:.6f}" for n in names)])
            scores.append([arch.string, *(_cell(row.values[n]) for n in names), f"{total:.6f}"])
            done[arch.string] = row
    return [done[a.string] for a in archs]


def read_scores(out_dir: Path, names: Sequence[str]) -> dict[str, ScoreRow]:
    """The rows of ``out_dir``'s scores.csv (and seconds.csv), by architecture string."""
    scores = read_rows(out_dir / SCORES_FILE, ["arch", *names, "seconds"], ScoreFileError, skip_short_rows=True)
    seconds = read_rows(out_dir / SECONDS_FILE, ["arch", *names], ScoreFileError, skip_short_rows=True)
    return _rows(scores, seconds, names)


def _open_without(path: Path, header: list[str], scored: set[str]) -> AppendOnlyCsv:
    """``path`` opened for appending, first rewritten without the rows of architectures not in
    ``scored`` where it has any."""
    rows = read_rows(path, header, ScoreFileError, skip_short_rows=True)
    kept = [row for row in rows if row[0] in scored]
    if len(kept) < len(rows):
        log.warning("%s: dropping %d row(s) of an architecture scored again", path, len(rows) - len(kept))
        rewrite_rows(path, header, kept)
    return AppendOnlyCsv(path, header, ScoreFileError, skip_short_rows=True)


def _rows(scores: list[list[str]], seconds: list[list[str]], names: Sequence[str]) -> dict[str, ScoreRow]:
    spent = {row[0]: {n: float(v) for n, v in zip(names, row[1:], strict=True)} for row in seconds}
    return {
        row[0]: ScoreRow(
            row[0],
            {n: (float(v) if v != "" else None) for n, v in zip(names, row[1:-1], strict=True)},
            spent.get(row[0], dict.fromkeys(names, math.nan)),
        )
        for row in scores
    }


def _score_one(candidate: Candidate, objectives: Mapping[str, Objective], failures: AppendOnlyCsv) -> ScoreRow:
    values: dict[str, float | None] = {}
    seconds: dict[str, float] = {}
    for name, objective in objectives.items():
        start = time.perf_counter()
        try:
            values[name] = objective.evaluate(candidate)
        except ObjectiveError as error:
            values[name] = None
            failures.append([candidate.arch.string, name, str(error)])
            log.debug("%s", error)
        seconds[name] = time.perf_counter() - start
    return ScoreRow(candidate.arch.string, values, seconds)


def _check_sources(path: Path, space: SearchSpace, objectives: Mapping[str, Objective]) -> None:
    sources = {"space": space.name, "objectives": {n: o.source() for n, o in objectives.items()}}
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded != sources:
            raise ScoreFileError(
                f"{path.parent} was scored with {recorded}, this run would score with {sources}: "
                "score into a new directory, or rerun with the same settings"
            )
    else:
        path.write_text(json.dumps(sources, indent=1) + "\n")


def _cell(value: float | None) -> str:
    return "" if value is None else repr(value)


def _progress(items: list[Architecture], enabled: bool):  # noqa: ANN202 - tqdm's type is private
    from tqdm.auto import tqdm

    return tqdm(items, disable=not enabled, desc="scored", unit="arch")
