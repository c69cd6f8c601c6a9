"""A CSV file that grows one row at a time and survives being killed: the format of every file
hwnas writes as it goes (measured profiles, proxy scores)."""

from __future__ import annotations

import csv
import fcntl
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from nas._files import replace_text
from nas.errors import HwnasError

log = logging.getLogger("hwnas")


class CsvFileError(HwnasError, ValueError):
    """A row file that a crash cannot explain (edited by hand, or written by another tool)."""


class AppendOnlyCsv:
    """One CSV file appended a row at a time, each row flushed and fsynced.

    Opening repairs what a kill can leave: a last line without its newline (torn mid-write) is
    cut off with a warning. A header that differs from ``header``, or a row with another number
    of cells, is refused with ``error`` (a :class:`CsvFileError` subclass naming the caller's
    kind of file, e.g. a profile's), giving the path and line; with ``skip_short_rows``, a row with
    fewer cells is left out with a warning instead (writers that ended a killed row with a newline,
    as hwnas-score did before it used this class, leave such rows). One writer at a time: the file
    is locked (``flock``) while open, and a second writer is refused with ``error``.
    """

    def __init__(
        self,
        path: Path,
        header: Sequence[str],
        error: type[CsvFileError] = CsvFileError,
        *,
        skip_short_rows: bool = False,
    ) -> None:
        self.path = path
        self.header = list(header)
        self.error = error
        self.skip_short_rows = skip_short_rows
        self._handle = path.open("a", newline="", encoding="utf-8")
        try:
            # Advisory and per open file: a second writer, in this process or another, is refused
            # before it reads rows the first is still appending to.
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise self.error(
                f"{path} is being written by another run (two runs into one directory?): wait for it "
                "to finish, or write into another directory"
            ) from None
        self.rows: list[list[str]] = self._read_or_create()

    def _read_or_create(self) -> list[list[str]]:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            self.path.write_text(_line(self.header), encoding="utf-8")
            return []
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            log.warning(
                "%s: dropping a torn last line %r (the run was killed while writing it)",
                self.path,
                data[cut:].decode("utf-8", "replace"),
            )
            with self.path.open("r+b") as handle:
                handle.truncate(cut)
            data = data[:cut]
            if cut == 0:  # even the header was torn
                self.path.write_text(_line(self.header), encoding="utf-8")
                return []
        return _parse(self.path, data, self.header, self.error, self.skip_short_rows)

    def truncate_rows(self, count: int) -> None:
        """Keep the first ``count`` rows (drops rows written after the last complete row set)."""
        with self.path.open("r+b") as handle:
            for _ in range(count + 1):  # + the header
                handle.readline()
            handle.truncate(handle.tell())
        self.rows = self.rows[:count]

    def append(self, cells: Sequence[str]) -> None:
        row = [str(c) for c in cells]
        # One write per row, so a kill leaves a whole row or a torn line without its newline.
        self._handle.write(_line(row))
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.rows.append(row)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> AppendOnlyCsv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_rows(
    path: Path, header: Sequence[str], error: type[CsvFileError] = CsvFileError, *, skip_short_rows: bool = False
) -> list[list[str]]:
    """The complete rows of an :class:`AppendOnlyCsv` file, without writing to it (a torn last
    line is left out, not cut off); checked like opening one. A missing file has no rows."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    data = data[: data.rfind(b"\n") + 1]
    return _parse(path, data, list(header), error, skip_short_rows) if data else []


def rewrite_rows(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Replace ``path`` by ``header`` and ``rows`` at once (a temporary file renamed over it), for
    the rare repair that must drop rows from the middle of a row file."""
    replace_text(path, "".join(_line(list(row)) for row in [header, *rows]))


def _parse(
    path: Path, data: bytes, header: list[str], error: type[CsvFileError], skip_short_rows: bool
) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    if rows[0] != header:
        raise error(f"{path} line 1 is {','.join(rows[0])!r}; this run writes {','.join(header)!r}")
    kept = []
    for line, row in enumerate(rows[1:], start=2):
        if skip_short_rows and len(row) < len(header):
            log.warning(
                "%s line %d: leaving out a row cut short by a kill (%d of %d cells)", path, line, len(row), len(header)
            )
            continue
        kept.append(row)
        if len(row) != len(header):
            raise error(
                f"{path} line {line} has {len(row)} cells, the header {len(header)}; "
                "a crash cannot leave this, so the file was changed by hand"
            )
    return kept


def _line(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()
