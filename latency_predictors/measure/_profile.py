"""Measured profiles: a device's latency (and energy) table, written row by row as it is measured.

A profile directory is a benchmark table in the ../shared/data format, so
``nas.tables.BenchmarkTable.load(directory)`` (and every predictor or ``TableMetric`` built on it)
reads a measured profile exactly like a published one:

* ``archs.csv``: ``index,arch`` (index = measurement order, 0, 1, 2, ...).
* ``latency_ms.csv``: ``index,<device name>``, the median in milliseconds.
* ``energy_mj.csv``: ``index,<device name>``, millijoules per inference; cells are EMPTY (a missing
  measurement) when no energy meter was read, never 0.
* ``spreads.csv`` (not a table metric, ignored by BenchmarkTable): ``index,latency_iqr_ms,
  latency_min_ms,repeats,outliers,stable``; a cell is empty when the measurement method does not
  report that statistic (``outliers``/``stable`` come from adaptive measurement methods).
* ``profile_summary.json`` (written by hwnas-profile at the end of each run): the rows, how many
  are unstable (IQR above ``unstable_iqr_ratio`` of the median) or did not converge, and which
  (:meth:`ProfileWriter.stability`, over every row, resumed ones included), and what the run did.
* ``device.json`` (written by :meth:`nas.Device.write`, read back by :meth:`nas.Device.read`):
  the :class:`nas.Device` fields (with the device's own fingerprint) under ``device``, and beside
  them ``format_version``, the profile ``fingerprint``, the space, measurement settings, host
  metadata, the energy meter ("none: <reason>" without one) and ``started``/``updated``
  timestamps (UTC, ISO 8601).

Crash safety: each row is one ``write`` per file followed by flush and fsync, metric files first
and ``archs.csv`` last, so ``archs.csv``'s complete rows are the measured set. Reopening a
directory drops a torn last line (killed mid-write) and metric rows beyond ``archs.csv`` (killed
between files) with a warning: at most the row in flight is lost. A directory measured on another
device, space or with other settings is refused, naming both fingerprints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from latency_predictors.measure._drift import DriftMonitor
from latency_predictors.measure._measure import UNSTABLE_IQR_RATIO, LatencyStats
from latency_predictors.measure._runtimes import Runtime
from nas import (
    DEVICE_FILE,
    AppendOnlyCsv,
    Architecture,
    CsvFileError,
    Device,
    DeviceFileError,
    SearchSpace,
    read_device_record,
)
from nas.errors import HwnasError
from nas.tables import METRICS

log = logging.getLogger("hwnas.profile")

FORMAT_VERSION = 1
SPREADS_FILE = "spreads.csv"
#: spreads.csv's columns after ``index``, each read from the LatencyStats attribute of that name;
#: statistics a measurement method does not report are left empty.
SPREAD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("latency_iqr_ms", "iqr_ms"),
    ("latency_min_ms", "min_ms"),
    ("repeats", "repeats"),
    ("outliers", "outliers"),
    ("stable", "stable"),
)
NO_ENERGY_METER = "none: no energy meter configured"

#: A measurement method: times one prepared inference callable (warm-up, repeats, statistics).
Measure = Callable[[Callable[[], None]], LatencyStats]


class ProfileMismatchError(HwnasError, ValueError):
    """A profile directory measured on another device, space or with other settings."""


class ProfileCorruptError(CsvFileError):
    """A profile file that a crash cannot explain (edited by hand, or from another tool)."""


#: Energy per inference of a prepared inference callable, in millijoules (e.g.
#: ``lambda run: measure_energy_mj(run, meter).energy_mj`` with an energy meter).
EnergyMeasure = Callable[[Callable[[], None]], float]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _cell(value: object) -> str:
    # Empty is the table format's missing measurement; 6 significant digits is far below
    # run-to-run noise of any latency or energy reading.
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def profile_fingerprint(device: Device, space: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """What makes two measurements comparable: the device, the space's configuration (NB201
    strings do not encode channels, so the space config must be part of it) and the settings."""
    payload = json.dumps(
        {"device": device.to_dict(), "space": space, "settings": settings}, sort_keys=True, default=str
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def open_manifest(directory: Path, device: Device, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Create ``device.json`` (``device`` and ``manifest``), or check an existing one has
    ``manifest``'s fingerprint and refresh its ``updated`` time (``started`` is kept). Returns what
    is now on disk."""
    path = directory / DEVICE_FILE
    now = _now()
    if path.is_file():
        try:
            existing = read_device_record(directory)
        except DeviceFileError as error:
            raise ProfileCorruptError(f"{error}; move the directory aside") from None
        if existing.get("fingerprint") != manifest["fingerprint"]:
            raise ProfileMismatchError(
                f"{directory} holds a profile with fingerprint {existing.get('fingerprint')!r} "
                f"(device {existing.get('device', {}).get('name')!r}) but this run's fingerprint is "
                f"{manifest['fingerprint']!r} (device {device.name!r}): another device, "
                "space or measurement settings. Use another output directory, or the same settings; "
                f"compare {path} with this run's settings"
            )
        started = existing.get("started", now)
    else:
        started = now
    record = {**manifest, "started": started, "updated": now}
    device.write(directory, record)
    return {**record, "device": device.to_dict()}


class ProfileCsv(AppendOnlyCsv):
    """A profile's row file: cells in the table format (see ``_cell``); a file a crash cannot
    explain is a :class:`ProfileCorruptError`."""

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        super().__init__(path, header, error=ProfileCorruptError)

    def append(self, cells: Sequence[object]) -> None:
        super().append([_cell(c) for c in cells])


def open_row_files(primary: ProfileCsv, others: Sequence[ProfileCsv]) -> None:
    """Align files written in one row set: ``primary`` (written last) holds the complete rows,
    and every file's index column counts 0, 1, 2, ... (a row repeated or missing is refused)."""
    count = len(primary.rows)
    for file in (primary, *others):
        for line, row in enumerate(file.rows, start=2):
            if row[0] != str(line - 2):
                raise ProfileCorruptError(
                    f"{file.path} line {line}: index {row[0]!r} where {line - 2} belongs (rows are numbered "
                    "in the order they were measured); restore the file or measure into a new directory"
                )
    for other in others:
        if len(other.rows) > count:
            log.warning(
                "%s: dropping %d row(s) beyond %s's %d (the run was killed between files)",
                other.path,
                len(other.rows) - count,
                primary.path.name,
                count,
            )
            other.truncate_rows(count)
        elif len(other.rows) < count:
            raise ProfileCorruptError(
                f"{other.path} has {len(other.rows)} rows but {primary.path} has {count}; rows are "
                f"written to {primary.path.name} last, so a crash cannot leave this"
            )


def build_manifest(
    device: Device,
    space: Mapping[str, Any],
    settings: Mapping[str, Any],
    host: Mapping[str, Any] | None,
    energy_meter: str | Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "fingerprint": profile_fingerprint(device, space, settings),
        "space": dict(space),
        "settings": dict(settings),
        "host": dict(host or {}),
        "energy_meter": energy_meter,
    }


@dataclass(frozen=True)
class RowStability:
    """Which rows of a profile to distrust. ``unstable``: rows whose samples spread beyond
    ``max_iqr_ratio`` of their median (:meth:`LatencyStats.unstable`: a busy machine, frequency
    steps); ``not_converged``: rows whose median missed the asked tolerance within the repeat or
    time cap (spreads.csv ``stable`` is False). A row can be either, both or neither."""

    rows: int
    max_iqr_ratio: float
    unstable: tuple[int, ...]
    not_converged: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "unstable_iqr_ratio": self.max_iqr_ratio,
            "unstable_rows": len(self.unstable),
            "unstable_indices": list(self.unstable),
            "not_converged_rows": len(self.not_converged),
            "not_converged_indices": list(self.not_converged),
        }


def _optional_float(cell: str) -> float:
    return float(cell) if cell else float("nan")


class ProfileWriter:
    """Appends measured architectures to a profile directory, resuming what is already there.

    ``space`` identifies the networks (e.g. ``{"name": "nb201", "instance": {...}}``); ``settings``
    the measurement (warm-up, repeats, batch size, precision, runtime...). Both, with ``device``,
    make the fingerprint that a reopened directory must match. ``host`` and ``energy_meter`` are
    recorded but not compared (a reboot changes uptime, not the device).
    """

    def __init__(
        self,
        directory: str | Path,
        device: Device,
        *,
        space: Mapping[str, Any],
        settings: Mapping[str, Any],
        host: Mapping[str, Any] | None = None,
        energy_meter: str | Mapping[str, Any] = NO_ENERGY_METER,
        metrics: Sequence[str] = ("latency_ms", "energy_mj"),
    ) -> None:
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or "latency_ms" not in metrics:
            raise ValueError(f"metrics must include 'latency_ms' and be among {list(METRICS)}, got {list(metrics)}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.metrics = tuple(metrics)
        self.manifest = open_manifest(
            self.directory, device, build_manifest(device, space, settings, host, energy_meter)
        )
        self._metric_files = {m: ProfileCsv(self.directory / f"{m}.csv", ["index", device.name]) for m in self.metrics}
        self._spreads = ProfileCsv(self.directory / SPREADS_FILE, ["index", *(c for c, _ in SPREAD_COLUMNS)])
        self._archs = ProfileCsv(self.directory / "archs.csv", ["index", "arch"])
        open_row_files(self._archs, [*self._metric_files.values(), self._spreads])
        self._done = {row[1] for row in self._archs.rows}

    @property
    def fingerprint(self) -> str:
        return str(self.manifest["fingerprint"])

    def measured(self) -> list[str]:
        """Architecture strings already in the profile, in row order."""
        return [row[1] for row in self._archs.rows]

    def __len__(self) -> int:
        return len(self._archs.rows)

    def __contains__(self, arch: str) -> bool:
        return arch in self._done

    def latency_stats(self) -> list[LatencyStats]:
        """Every row's latency statistics as recorded (latency_ms.csv and spreads.csv), rows from
        earlier runs of a resumed profile included; ``mean_ms`` is not recorded (NaN), and a
        statistic the measurement method did not report is NaN (``stable``: None)."""
        medians = self._metric_files["latency_ms"].rows
        stats = []
        for (_, median), row in zip(medians, self._spreads.rows, strict=True):
            cell = {attr: row[k] for k, (_, attr) in enumerate(SPREAD_COLUMNS, start=1)}
            stats.append(
                LatencyStats(
                    median_ms=_optional_float(median),
                    iqr_ms=_optional_float(cell["iqr_ms"]),
                    min_ms=_optional_float(cell["min_ms"]),
                    mean_ms=float("nan"),
                    repeats=int(cell["repeats"] or 0),
                    outliers=int(cell["outliers"] or 0),
                    stable={"True": True, "False": False}.get(cell["stable"]),
                )
            )
        return stats

    def stability(self, max_iqr_ratio: float = UNSTABLE_IQR_RATIO) -> RowStability:
        """Which of the profile's rows (all of them, resumed ones included) are unstable or did
        not converge; see :class:`RowStability`."""
        stats = self.latency_stats()
        return RowStability(
            rows=len(stats),
            max_iqr_ratio=max_iqr_ratio,
            unstable=tuple(i for i, s in enumerate(stats) if s.unstable(max_iqr_ratio)),
            not_converged=tuple(i for i, s in enumerate(stats) if s.stable is False),
        )

    def append(self, arch: str, latency: LatencyStats, energy_mj: float | None = None) -> int:
        """Write one architecture's row to every file; returns its index."""
        if arch in self._done:
            raise ValueError(f"{arch!r} is already row {self.measured().index(arch)} of {self.directory}")
        if energy_mj is not None and "energy_mj" not in self.metrics:
            raise ValueError(f"an energy of {energy_mj} mJ was given but this profile writes {self.metrics}")
        index = len(self._archs.rows)
        values = {"latency_ms": latency.median_ms, "energy_mj": energy_mj}
        for metric, file in self._metric_files.items():
            file.append([index, values[metric]])
        self._spreads.append([index, *(getattr(latency, attr, None) for _, attr in SPREAD_COLUMNS)])
        self._archs.append([index, arch])  # last: its complete rows are the profile
        self._done.add(arch)
        return index

    def drop_tail(self, archs: Sequence[str]) -> None:
        """Remove the last rows, which must be ``archs`` in order (rows a drift monitor wants
        measured again: append-only files can only lose their tail)."""
        count = len(self) - len(archs)
        if list(archs) != self.measured()[count:]:
            raise ValueError(f"{list(archs)} are not the last rows of {self.directory}; only the tail can be redone")
        # archs.csv first: a crash in between leaves extra metric rows, which reopening drops.
        for file in (self._archs, *self._metric_files.values(), self._spreads):
            file.truncate_rows(count)
        self._done.difference_update(archs)

    def close(self) -> None:
        for file in (*self._metric_files.values(), self._spreads, self._archs):
            file.close()
        self.manifest = open_manifest(
            self.directory,
            self.device,
            {k: v for k, v in self.manifest.items() if k not in ("device", "started", "updated")},
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ProfileRun:
    """What one call of :func:`profile_architectures` did."""

    measured: int
    skipped: int
    failed: tuple[str, ...]
    elapsed_s: float

    @property
    def archs_per_minute(self) -> float:
        return 60.0 * self.measured / self.elapsed_s if self.elapsed_s > 0 else float("nan")


def measure_module(
    runtime: Runtime,
    model: Any,
    example: Any,
    measure: Measure,
    energy_mj: EnergyMeasure | None = None,
) -> tuple[LatencyStats, float | None]:
    """Prepare ``model`` with ``runtime`` in a temporary directory, time it, read its energy."""
    with tempfile.TemporaryDirectory(prefix="hwnas-profile-") as workdir:
        run = runtime.prepare(model, example, Path(workdir))
        stats = measure(run)
        energy = None if energy_mj is None else energy_mj(run)
        del run  # release the session before its directory goes
    return stats, energy


def profile_architectures(
    space: SearchSpace,
    archs: Iterable[Architecture],
    runtime: Runtime,
    writer: ProfileWriter,
    *,
    measure: Measure,
    batch_size: int = 1,
    energy_mj: EnergyMeasure | None = None,
    drift_monitor: DriftMonitor | None = None,
    progress: bool = False,
    max_iqr_ratio: float = UNSTABLE_IQR_RATIO,
) -> ProfileRun:
    """Measure every architecture not yet in ``writer``'s profile and append it.

    An architecture whose export or preparation fails is logged and left out (a rerun retries
    it); anything else (a drift monitor's error, Ctrl-C) stops the run with the rows so far kept.
    Rows a drift monitor returns for redoing are removed from the profile and measured again.
    A row whose IQR exceeds ``max_iqr_ratio`` of its median is logged as unstable (and kept:
    :meth:`ProfileWriter.stability` counts them).
    """
    from tqdm import tqdm

    archs = list(archs)
    queue = deque(a for a in dict.fromkeys(archs) if a.string not in writer)
    by_string = {a.string: a for a in archs}
    skipped = len(archs) - len(queue)
    started = time.perf_counter()
    failed: list[str] = []
    measured = 0
    bar = tqdm(total=len(queue), desc=f"profiling {writer.device.name}", unit="arch", disable=not progress)
    while queue:
        arch = queue.popleft()
        model = space.build(arch).eval()
        example = space.example_input(batch_size, arch=arch)
        try:
            stats, energy = measure_module(runtime, model, example, measure, energy_mj)
        except Exception as error:  # noqa: BLE001 - one network's export failure is not the run's
            log.error("could not measure %s: %s", arch.string, error)
            failed.append(arch.string)
            bar.update()
            continue
        writer.append(arch.string, stats, energy)
        measured += 1
        bar.update()
        log.info(
            "%d %s: %.4g ms (IQR %.3g, %.0f%% of the median%s)",
            len(writer) - 1,
            arch.string,
            stats.median_ms,
            stats.iqr_ms,
            100 * stats.iqr_ratio,
            ": unstable" if stats.unstable(max_iqr_ratio) else "",
        )
        redo = [str(key) for key in drift_monitor.record(arch.string)] if drift_monitor is not None else []
        if redo:
            log.warning("the machine drifted: measuring the last %d architecture(s) again", len(redo))
            writer.drop_tail(redo)
            queue.extendleft(by_string[s] for s in reversed(redo))
            measured -= len(redo)
            bar.total += len(redo)
    bar.close()
    return ProfileRun(measured=measured, skipped=skipped, failed=tuple(failed), elapsed_s=time.perf_counter() - started)
