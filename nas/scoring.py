"""Score a list of architectures with several objectives into a CSV that grows as it goes.

``scores.csv`` is ``arch,<objective>...,seconds`` (``seconds``: wall time of that row's
objectives together); ``seconds.csv`` holds each objective's own seconds per row, and
``failures.csv`` every objective that could not score an architecture (the proxies' degenerate
networks among them) with its reason: such a cell of ``scores.csv`` is empty. A rerun into the
same directory skips the architectures already written, and refuses to continue with other
objectives or other settings (``sources.json``): one file, one meaning.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nas._architecture import Architecture
from nas._objective import Candidate, Objective, ObjectiveError
from nas._space import SearchSpace

log = logging.getLogger("hwnas.score")

SCORES_FILE = "scores.csv"
SECONDS_FILE = "seconds.csv"
FAILURES_FILE = "failures.csv"
SOURCES_FILE = "sources.json"


class ScoreFileError(RuntimeError):
    """An output directory whose files do not match this run (other objectives or settings)."""


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
    done = read_scores(out_dir, names)
    todo = [a for a in dict.fromkeys(archs, None) if a.string not in done]
    if done:
        log.info("%d of %d architectures already scored in %s", len(archs) - len(todo), len(archs), out_dir)
    with (
        _appender(out_dir / SCORES_FILE, ["arch", *names, "seconds"]) as scores,
        _appender(out_dir / SECONDS_FILE, ["arch", *names]) as seconds,
        _appender(out_dir / FAILURES_FILE, ["arch", "objective", "error"]) as failures,
    ):
        for arch in _progress(todo, progress):
            row = _score_one(Candidate(arch, space), objectives, failures)
            total = sum(row.seconds.values())
            scores.writerow([arch.string, *(_cell(row.values[n]) for n in names), f"{total:.6f}"])
            seconds.writerow([arch.string, *(f"{row.seconds[n]:.6f}" for n in names)])
            for handle in (scores, seconds, failures):
                handle.flush()
            done[arch.string] = row
    return [done[a.string] for a in archs]


def read_scores(out_dir: Path, names: Sequence[str]) -> dict[str, ScoreRow]:
    """The rows of ``out_dir``'s scores.csv (and seconds.csv), by architecture string."""
    path = out_dir / SCORES_FILE
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != ["arch", *names, "seconds"]:
            raise ScoreFileError(
                f"{path} has columns {reader.fieldnames}, this run writes {['arch', *names, 'seconds']}: "
                "score into a new directory, or rerun with the same objectives"
            )
        # A row cut short by a kill (missing cells) counts as not scored: it is scored again.
        values = {
            r["arch"]: {n: (float(r[n]) if r[n] != "" else None) for n in names}
            for r in reader
            if r["seconds"] not in (None, "")
        }
    seconds: dict[str, dict[str, float]] = {}
    if (out_dir / SECONDS_FILE).is_file():
        with (out_dir / SECONDS_FILE).open(newline="") as handle:
            rows = csv.DictReader(handle)
            seconds = {r["arch"]: {n: float(r[n]) for n in names} for r in rows if None not in r.values()}
    return {a: ScoreRow(a, v, seconds.get(a, {n: math.nan for n in names})) for a, v in values.items()}


def _score_one(candidate: Candidate, objectives: Mapping[str, Objective], failures: _appender) -> ScoreRow:
    values: dict[str, float | None] = {}
    seconds: dict[str, float] = {}
    for name, objective in objectives.items():
        start = time.perf_counter()
        try:
            values[name] = objective.evaluate(candidate)
        except ObjectiveError as error:
            values[name] = None
            failures.writerow([candidate.arch.string, name, str(error)])
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


class _appender:
    """A csv writer appending to ``path``, writing ``header`` first when the file is new."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path, self.header = path, header

    def __enter__(self) -> _appender:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        cut = not new and not _ends_with_newline(self.path)
        self.handle = self.path.open("a", newline="")
        self.writer = csv.writer(self.handle)
        if new:
            self.writer.writerow(self.header)
        elif cut:  # a row cut short by a kill stays a line of its own (read_scores skips it)
            self.handle.write("\r\n")
        return self

    def writerow(self, row: list[str]) -> None:
        self.writer.writerow(row)

    def flush(self) -> None:
        self.handle.flush()

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def _progress(items: list[Architecture], enabled: bool):  # noqa: ANN202 - tqdm's type is private
    from tqdm.auto import tqdm

    return tqdm(items, disable=not enabled, desc="scored", unit="arch")
