"""Published benchmark tables: one folder per space with archs.csv and per-metric device tables.

Format (see the shared data README): ``archs.csv`` is ``index,arch[,accuracy columns...]``;
``latency_ms.csv`` and ``energy_mj.csv`` are ``index,<device>,<device>,...`` with one row per
architecture in archs.csv's order. Any set of devices is accepted, and either metric file may be
absent. Files are read on first use, and each at most once per :class:`BenchmarkTable`.
"""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from nas._device import DEVICE_FILE, Device
from nas.errors import HwnasError, MissingFileError
from nas.fit_data import usable_mask

__all__ = ["METRICS", "BenchmarkTable", "TableFormatError", "UnknownDeviceError", "cached_table"]

#: Per-device metric files a table folder may hold, by metric name (the file's stem).
METRICS: dict[str, str] = {
    "latency_ms": "milliseconds per inference",
    "energy_mj": "millijoules per inference",
}

ARCHS_FILE = "archs.csv"

log = logging.getLogger(__name__)


class UnknownDeviceError(HwnasError, ValueError):
    """A device that a table has no column for (the message lists the ones it has)."""


class TableFormatError(HwnasError, ValueError):
    """A table file that does not follow the format (the message names file, line and value)."""


def _rows(path: Path) -> Iterator[list[str]]:
    with path.open(newline="") as handle:
        yield from csv.reader(handle)


def _read_header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise TableFormatError(f"{path} is empty; expected a header line starting with 'index'")
    if header[0].strip() != "index":
        raise TableFormatError(f"{path} line 1: first column is {header[0]!r}; expected 'index'")
    names = [name.strip() for name in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise TableFormatError(f"{path} line 1: columns {repeated} appear more than once; each column must be unique")
    return names


def _read_archs_header(path: Path) -> list[str]:
    header = _read_header(path)
    if len(header) < 2 or header[1] != "arch":
        raise TableFormatError(
            f"{path} line 1: expected the columns index,arch[,accuracy columns...], got {','.join(header)}"
        )
    return header


def _parse_floats(path: Path, cells: list[list[str]], columns: list[str], first_line: int) -> np.ndarray:
    """Cells (rows x columns) as floats, empty cells as NaN; a bad cell is named by line and column."""
    nan = float("nan")
    try:
        values = [[float(cell) if cell.strip() else nan for cell in row] for row in cells]
    except ValueError:
        # Only on failure: find the first bad cell to name it.
        for row_offset, row in enumerate(cells):
            for column, cell in zip(columns, row):
                try:
                    float(cell) if cell.strip() else None
                except ValueError:
                    raise TableFormatError(
                        f"{path} line {first_line + row_offset}, column {column!r}: {cell!r} is not a "
                        "number; cells must be numbers or empty (a missing measurement)"
                    ) from None
        raise
    matrix = np.array(values, dtype=np.float64).reshape(len(cells), len(columns))
    # Only the NaN cells are looked at again: empty (missing) or written as "nan".
    written = np.isnan(matrix)
    for r, c in zip(*np.nonzero(written)):
        written[r, c] = bool(cells[r][c].strip())
    for column, rows in _bad_columns(written):  # "nan" says what an empty cell says: let it be seen
        log.warning(
            "%s column %r: %d cell(s) written as NaN (lines %s) are read as missing, as an empty cell is",
            path,
            columns[column],
            len(rows),
            _listed([str(first_line + r) for r in rows]),
        )
    return matrix


def _bad_columns(bad: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Each column holding a bad cell, with the rows of its bad cells."""
    for column in np.flatnonzero(bad.any(axis=0)):
        yield int(column), np.flatnonzero(bad[:, column])


def _listed(items: Sequence[str]) -> str:
    """The first five of ``items`` for a warning, and "..." for more."""
    return ", ".join(items[:5]) + (", ..." if len(items) > 5 else "")


def _check_shape(path: Path, header: list[str], rows: list[list[str]]) -> None:
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise TableFormatError(
                f"{path} line {line} has {len(row)} cells but the header has {len(header)} "
                f"({','.join(header)}); fix the row"
            )


class BenchmarkTable:
    """The tables of one search space, read lazily from ``directory``.

    Rows are addressed by architecture string (:meth:`lookup`) or by row index (the same in every
    file). Use :func:`cached_table` to share one instance per folder across a process.

    ``canonicalise`` maps a table string to the string :meth:`lookup` is asked with, for tables
    whose strings are not canonical (OFA's archs.csv holds random genes for layers that depth
    skips); :attr:`archs` stays as published, :attr:`keys` holds the canonical forms.
    """

    def __init__(self, directory: Path, canonicalise: Callable[[str], str] | None = None) -> None:
        self.directory = directory
        self.canonicalise = canonicalise
        self._archs_header: list[str] | None = None
        self._archs: list[str] | None = None
        self._indices: np.ndarray | None = None
        self._accuracies: dict[str, np.ndarray] = {}
        self._keys: list[str] | None = None
        self._row_of: dict[str, int] | None = None
        self._headers: dict[str, list[str]] = {}
        self._values: dict[str, np.ndarray] = {}
        #: By metric, then device: the rows whose cell was unusable (<= 0 or infinite) and is
        #: read as missing (NaN). Filled when the metric's file is loaded.
        self.unusable: dict[str, dict[str, np.ndarray]] = {}

    @classmethod
    def load(cls, directory: str | Path, canonicalise: Callable[[str], str] | None = None) -> BenchmarkTable:
        """Check the folder holds an archs.csv (relative paths are taken from the working directory);
        ``canonicalise`` keys :meth:`lookup` (see the class)."""
        path = Path(directory).expanduser().resolve()
        if not path.is_dir():
            raise MissingFileError(
                f"benchmark table folder {path} does not exist; expected a folder with {ARCHS_FILE} "
                f"and {' / '.join(f + '.csv' for f in METRICS)} (see the shared data README); the hwnas "
                "commands look for the tables in <data_dir>/<space>: point them at the folder holding "
                "the tables with the environment variable HWNAS_DATA=/path/to/data or the override "
                "data_dir=/path/to/data"
            )
        archs_path = path / ARCHS_FILE
        if not archs_path.is_file():
            raise MissingFileError(
                f"{archs_path} not found; a benchmark table folder needs {ARCHS_FILE} with the "
                "columns index,arch[,accuracy columns...]"
            )
        table = cls(path, canonicalise)
        table._archs_header = _read_archs_header(archs_path)
        return table

    # archs.csv

    def _load_archs(self) -> None:
        path = self.directory / ARCHS_FILE
        rows = list(_rows(path))
        header = _read_archs_header(path)
        self._archs_header = header
        body = rows[1:]
        _check_shape(path, header, body)
        self._indices = self._parse_index(path, [row[0] for row in body])
        self._archs = [row[1] for row in body]
        accuracy_columns = header[2:]
        matrix = _parse_floats(path, [row[2:] for row in body], accuracy_columns, first_line=2)
        _blank_infinite(path, accuracy_columns, matrix)
        matrix.flags.writeable = False  # shared by every user of a cached table
        self._accuracies = {name: matrix[:, i] for i, name in enumerate(accuracy_columns)}

    @staticmethod
    def _parse_index(path: Path, cells: list[str]) -> np.ndarray:
        index = BenchmarkTable._parse_ints(path, cells)
        if len(np.unique(index)) != len(index):
            first: dict[int, int] = {}
            for line, value in enumerate(index.tolist(), start=2):
                if value in first:
                    raise TableFormatError(
                        f"{path} lines {first[value]} and {line} both have index {value}; each row's index must be unique"
                    )
                first[value] = line
        return index

    @staticmethod
    def _parse_ints(path: Path, cells: list[str]) -> np.ndarray:
        try:
            return np.array([int(cell) for cell in cells], dtype=np.int64)
        except ValueError:
            for line, cell in enumerate(cells, start=2):
                try:
                    int(cell)
                except ValueError:
                    raise TableFormatError(f"{path} line {line}: index {cell!r} is not an integer") from None
            raise

    @property
    def archs(self) -> list[str]:
        """Architecture strings as published, by row (:attr:`keys` holds what :meth:`lookup` takes)."""
        if self._archs is None:
            self._load_archs()
        assert self._archs is not None
        return self._archs

    def __len__(self) -> int:
        return len(self.archs)

    @property
    def accuracy_columns(self) -> tuple[str, ...]:
        """The columns of archs.csv after index and arch (possibly none)."""
        if self._archs_header is None:
            self._archs_header = _read_archs_header(self.directory / ARCHS_FILE)
        return tuple(self._archs_header[2:])

    def accuracy(self, column: str) -> np.ndarray:
        """One accuracy column of archs.csv by row (NaN for empty cells); read-only."""
        if column not in self.accuracy_columns:
            raise KeyError(
                f"{self.directory / ARCHS_FILE} has no column {column!r}; its accuracy columns are "
                f"{list(self.accuracy_columns)}"
            )
        self.archs  # noqa: B018 - loads archs.csv, accuracies included
        return self._accuracies[column]

    @property
    def keys(self) -> list[str]:
        """The strings :meth:`lookup` knows, by row: :attr:`archs`, canonicalised when the table
        was loaded with ``canonicalise``. Two rows with one key are a :class:`TableFormatError`."""
        if self._keys is None:
            keys = self._canonical_keys() if self.canonicalise is not None else self.archs
            self._row_of = self._rows_by_key(keys)
            self._keys = keys
        return self._keys

    def _canonical_keys(self) -> list[str]:
        assert self.canonicalise is not None
        keys = []
        for line, string in enumerate(self.archs, start=2):
            try:
                keys.append(self.canonicalise(string))
            except ValueError as error:
                raise TableFormatError(
                    f"{self.directory / ARCHS_FILE} line {line}: arch {string!r} does not parse: {error}"
                ) from None
        return keys

    def _rows_by_key(self, keys: list[str]) -> dict[str, int]:
        row_of: dict[str, int] = {}
        for row, key in enumerate(keys):
            if key in row_of:
                first = row_of[key]
                same = (
                    f"both hold {key!r}"
                    if self.archs[first] == self.archs[row]
                    else f"hold {self.archs[first]!r} and {self.archs[row]!r}, which both canonicalise to {key!r}"
                )
                raise TableFormatError(
                    f"{self.directory / ARCHS_FILE} lines {first + 2} and {row + 2} {same}; each "
                    "architecture must appear once"
                )
            row_of[key] = row
        return row_of

    def lookup(self, arch: str) -> int:
        """The row index of a canonical architecture string."""
        self.keys  # noqa: B018 - builds the index, checking keys are unique
        assert self._row_of is not None
        try:
            return self._row_of[arch]
        except KeyError:
            raise KeyError(
                f"architecture {arch!r} is not in {self.directory / ARCHS_FILE}; tables hold canonical "
                "strings (parse the architecture with its space first), and sampled tables hold only "
                "some architectures of their space"
            ) from None

    # Per-device metric files

    def _metric_path(self, metric: str) -> Path:
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; table metrics are {list(METRICS)}")
        return self.directory / f"{metric}.csv"

    def metrics(self) -> tuple[str, ...]:
        """The metrics whose file this folder holds."""
        return tuple(m for m in METRICS if self._metric_path(m).is_file())

    def devices(self, metric: str) -> tuple[str, ...]:
        """The device columns of a metric's file, in file order."""
        if metric not in self._headers:
            path = self._metric_path(metric)
            if not path.is_file():
                raise MissingFileError(
                    f"{path} not found; this table has no {metric} measurements (it has "
                    f"{list(self.metrics()) or 'none'}). Expected index,<device>,... in {METRICS[metric]}"
                )
            self._headers[metric] = _read_header(path)
        return tuple(self._headers[metric][1:])

    def _check_device(self, metric: str, device: str) -> None:
        known = self.devices(metric)
        if device in known:
            return
        elsewhere = [m for m in self.metrics() if m != metric and device in self.devices(m)]
        hint = f" ({device!r} is a {' and '.join(elsewhere)} device here)" if elsewhere else ""
        raise UnknownDeviceError(
            f"{self._metric_path(metric)} has no device {device!r}{hint}; its devices are: {', '.join(known)}"
        )

    def _load_metric(self, metric: str) -> np.ndarray:
        path = self._metric_path(metric)
        self.devices(metric)  # a clear error for a missing file
        rows = list(_rows(path))
        header = _read_header(path)
        body = rows[1:]
        _check_shape(path, header, body)
        self.archs  # noqa: B018 - the index column is checked against archs.csv
        assert self._indices is not None
        if len(body) != len(self._indices):
            raise TableFormatError(
                f"{path} has {len(body)} rows but {self.directory / ARCHS_FILE} has {len(self._indices)}; "
                "every architecture needs one row (leave cells empty for missing measurements)"
            )
        index = self._parse_index(path, [row[0] for row in body])
        mismatched = np.flatnonzero(index != self._indices)
        if mismatched.size:
            first = int(mismatched[0])
            raise TableFormatError(
                f"{path} line {first + 2}: index {body[first][0]!r} does not match {ARCHS_FILE}'s "
                f"index {int(self._indices[first])} on the same row; rows must follow {ARCHS_FILE}'s order"
            )
        return _parse_floats(path, [row[1:] for row in body], header[1:], first_line=2)

    def column(self, metric: str, device: str) -> np.ndarray:
        """One device's values by row, NaN where a cell is empty or unusable (see
        :func:`nas.fit_data.usable_mask`: a latency or energy <= 0 or infinite is corrupt, and every reader,
        search, oracle or predictor, must treat it as missing); read-only."""
        self._check_device(metric, device)
        if metric not in self._values:
            values = self._load_metric(metric)
            self.unusable[metric] = _blank_unusable(self._metric_path(metric), self.devices(metric), values)
            values.flags.writeable = False  # shared by every user of a cached table
            self._values[metric] = values
        return self._values[metric][:, self.devices(metric).index(device)]

    def value(self, column: str, device: str | None, arch: str) -> float:
        """One cell: ``column`` is a metric (with a device) or an accuracy column (device None)."""
        if column in METRICS:
            if device is None:
                raise ValueError(f"{column} needs a device; {self.directory} has {list(self.devices(column))}")
            return float(self.column(column, device)[self.lookup(arch)])
        if device is not None:
            raise ValueError(
                f"{column!r} is not a per-device metric ({list(METRICS)}), so device must be None, not {device!r}"
            )
        return float(self.accuracy(column)[self.lookup(arch)])

    def recorded_device(self, device: str) -> Device | None:
        """The device a profile's ``device.json`` (written by hwnas-profile beside its tables)
        records for the column ``device``; None for published tables, which have no such file.
        A device.json that cannot be read raises :class:`nas.DeviceFileError` naming it."""
        if not (self.directory / DEVICE_FILE).is_file():
            return None
        recorded = Device.read(self.directory)
        return recorded if recorded.name == device else None

    def device(self, column: str) -> Device:
        """What a column was measured on: the profile's recorded device, else the published
        column of this table folder (named by the column and the folder)."""
        return self.recorded_device(column) or Device(name=column, source=f"table:{self.directory.name}")

    def __repr__(self) -> str:
        if self.canonicalise is None:
            return f"BenchmarkTable({str(self.directory)!r})"
        return f"BenchmarkTable({str(self.directory)!r}, canonicalise={self.canonicalise!r})"


@functools.cache
def _cached(resolved: Path, canonicalise: Callable[[str], str] | None) -> BenchmarkTable:
    return BenchmarkTable.load(resolved, canonicalise)


def cached_table(directory: str | Path, canonicalise: Callable[[str], str] | None = None) -> BenchmarkTable:
    """One shared :class:`BenchmarkTable` per folder and ``canonicalise``, so several objectives
    read each file once. ``canonicalise`` is part of the cache key, so it must be hashable and
    compare equal exactly when it maps strings the same way (plain functions compare by identity)."""
    return _cached(Path(directory).expanduser().resolve(), canonicalise)


def _blank_unusable(path: Path, devices: Sequence[str], values: np.ndarray) -> dict[str, np.ndarray]:
    """Set the unusable cells of a loaded metric file to NaN in place, warning once per column
    with the lines and values; returns the rows blanked, by device (only columns that had any)."""
    bad = ~usable_mask(values) & ~np.isnan(values)
    blanked: dict[str, np.ndarray] = {}
    for column, rows in _bad_columns(bad):
        log.warning(
            "%s column %r: %d cell(s) <= 0 or infinite (%s) are read as missing; a latency or energy "
            "must be a positive finite number: fix or empty those cells",
            path,
            devices[column],
            len(rows),
            _listed([f"line {r + 2}: {float(values[r, column])!r}" for r in rows]),
        )
        blanked[devices[column]] = rows
    values[bad] = np.nan
    return blanked


def _blank_infinite(path: Path, columns: Sequence[str], values: np.ndarray) -> None:
    """An infinite accuracy is corrupt: read as missing (NaN) in place, warning with its lines."""
    bad = np.isinf(values)
    for column, rows in _bad_columns(bad):
        log.warning(
            "%s column %r: %d infinite cell(s) (lines %s) are read as missing; fix or empty them",
            path,
            columns[column],
            len(rows),
            _listed([str(r + 2) for r in rows]),
        )
    values[bad] = np.nan
