"""A bench: whatever answers "measure this architecture" for one device, counting each answer.

hwnas-pipeline measures through this one small interface and never asks what kind of device it
has: :class:`LiveBench` times the network on this machine (as the device config's
``MeasuredLatency`` does, through the profile's own ``measure_module``), :class:`TableBench`
looks the answer up in a benchmark table column, so a published device can play the device and
the whole closed loop is scored without its hardware. A device config offers its bench under
``bench`` (configs/device/table.yaml for every table column, cpu.yaml and the other live ones).

:func:`measure_into` appends a bench's answers to a profile (:class:`ProfileWriter`) row by row,
so what a killed run measured is kept and a rerun measures only what is missing.
"""

from __future__ import annotations

import functools
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from latency_predictors.measure._energy import EnergyMeter, measure_energy_mj, probe_energy_meters
from latency_predictors.measure._host import host_metadata
from latency_predictors.measure._live import MeasuredLatency
from latency_predictors.measure._measure import LatencyStats, measure_latency_ms
from latency_predictors.measure._profile import NO_ENERGY_METER, ProfileWriter, measure_module
from nas import Architecture, Device, Objective, SearchSpace
from nas.objectives import TableMetric
from nas.tables import BenchmarkTable, UnknownDeviceError

log = logging.getLogger("hwnas.pipeline")

__all__ = ["Bench", "BenchError", "LiveBench", "Reading", "TableBench", "measure_into", "open_profile"]


class BenchError(RuntimeError):
    """A bench could not answer for this architecture (it is left out; a rerun asks again)."""


@dataclass(frozen=True)
class Reading:
    """One answer: the latency statistics (a table gives only the median) and the energy per
    inference in millijoules, None where the device reads no energy."""

    latency: LatencyStats
    energy_mj: float | None = None


class Bench(ABC):
    """Measures architectures of a space on one device; :attr:`answers` counts its answers."""

    def __init__(self) -> None:
        self.answers = 0

    @abstractmethod
    def device(self) -> Device:
        """What the answers are measured on: the profile's device.json and every predictor
        fitted on the profile carry its fingerprint."""

    @abstractmethod
    def metrics(self) -> tuple[str, ...]:
        """The table metrics this bench answers: ``latency_ms``, plus ``energy_mj`` where it reads energy."""

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """How it measures: part of the profile's fingerprint, so a profile is resumed only by
        a bench measuring the same way."""

    def record(self) -> dict[str, Any]:
        """What the profile's device.json records beside the settings (not compared on resume)."""
        return {"host": {}, "energy_meter": NO_ENERGY_METER}

    @abstractmethod
    def _read(self, space: SearchSpace, arch: Architecture) -> Reading:
        """The answer for ``arch``; :class:`BenchError` when there is none."""

    def truth(self, name: str, metric: str, space: SearchSpace) -> Objective | None:
        """An objective that knows every value this bench would answer for ``metric``, up front (a
        table), to score a round's front and its regret without spending answers; None for a
        device that must be measured."""
        return None

    def measure(self, space: SearchSpace, arch: Architecture) -> Reading:
        """One answer, counted."""
        reading = self._read(space, arch)
        self.answers += 1
        return reading


class LiveBench(Bench):
    """Times networks on this machine exactly as ``latency`` (the device config's
    ``MeasuredLatency``) does: its runtime, warm-up, repeats and batch; energy from the first of
    ``energy_meters`` that opens here (none: energy_mj cells stay empty)."""

    def __init__(self, latency: MeasuredLatency, energy_meters: Sequence[Callable[[], EnergyMeter]] = ()) -> None:
        super().__init__()
        self.latency = latency
        probe = probe_energy_meters(list(energy_meters))
        self.meter = probe.meter
        self._energy_note = (
            self.meter.describe()
            if self.meter is not None
            else f"{NO_ENERGY_METER} ({'; '.join(probe.unavailable) or 'the device config names no energy meter'})"
        )
        self._measure = functools.partial(measure_latency_ms, warmup=latency.warmup, repeats=latency.repeats)

    def device(self) -> Device:
        return self.latency.device()

    def metrics(self) -> tuple[str, ...]:
        return ("latency_ms", "energy_mj") if self.meter is not None else ("latency_ms",)

    def settings(self) -> dict[str, Any]:
        return {
            "method": "measure_latency_ms: median of `repeats` timed runs after `warmup` untimed ones",
            "warmup": self.latency.warmup,
            "repeats": self.latency.repeats,
            "batch_size": self.latency.batch_size,
            "runtime": self.latency.runtime.describe(),
        }

    def record(self) -> dict[str, Any]:
        return {"host": host_metadata(), "energy_meter": self._energy_note}

    def _read(self, space: SearchSpace, arch: Architecture) -> Reading:
        model = space.build(arch).eval()
        example = space.example_input(self.latency.batch_size, arch=arch)
        energy = None if self.meter is None else (lambda run: measure_energy_mj(run, self.meter).energy_mj)
        try:
            stats, energy_mj = measure_module(self.latency.runtime, model, example, self._measure, energy)
        except Exception as error:  # noqa: BLE001 - one network's export failure is not the run's
            raise BenchError(f"could not measure {arch.string} on {self.device().name}: {error}") from error
        return Reading(stats, energy_mj)


class TableBench(Bench):
    """A benchmark table column playing the device: each answer is a lookup of ``device``'s
    latency in the table folder ``table`` (as a search's ``TableMetric`` reads it, the strings
    canonicalised by ``space``), and of its energy where the table has an energy column for it."""

    def __init__(self, table: str | Path, device: str, space: SearchSpace) -> None:
        super().__init__()
        latency = TableMetric("latency_ms", table, "latency_ms", device, space=space)  # checks the column
        self.table: BenchmarkTable = latency.table
        self.column = device
        try:
            self.table.column("energy_mj", self.column)
            self._metrics: tuple[str, ...] = ("latency_ms", "energy_mj")
        except (UnknownDeviceError, FileNotFoundError):
            self._metrics = ("latency_ms",)

    def device(self) -> Device:
        return self.table.device(self.column)

    def metrics(self) -> tuple[str, ...]:
        return self._metrics

    def settings(self) -> dict[str, Any]:
        return {"method": "lookup", "table": self.table.directory.name, "column": self.column}

    def truth(self, name: str, metric: str, space: SearchSpace) -> Objective | None:
        return TableMetric(name, self.table.directory, metric, self.column, space=space)

    def _read(self, space: SearchSpace, arch: Architecture) -> Reading:
        try:
            row = self.table.lookup(arch.string)
        except KeyError as error:
            raise BenchError(str(error.args[0])) from None
        latency = float(self.table.column("latency_ms", self.column)[row])
        if math.isnan(latency):
            raise BenchError(f"{self.table.directory} has no usable latency_ms[{self.column}] for {arch.string}")
        energy = float(self.table.column("energy_mj", self.column)[row]) if "energy_mj" in self._metrics else None
        nan = float("nan")
        stats = LatencyStats(median_ms=latency, iqr_ms=nan, min_ms=nan, mean_ms=nan, repeats=0)
        return Reading(stats, None if energy is None or math.isnan(energy) else energy)


def open_profile(directory: Path, bench: Bench, space_record: dict[str, Any]) -> ProfileWriter:
    """The profile ``bench`` writes to (created, or resumed when measured the same way)."""
    return ProfileWriter(
        directory,
        bench.device(),
        space=space_record,
        settings=bench.settings(),
        metrics=bench.metrics(),
        **bench.record(),
    )


def measure_into(
    bench: Bench,
    space: SearchSpace,
    archs: Iterable[Architecture],
    writer: ProfileWriter,
    on_row: Callable[[int], None] | None = None,
) -> tuple[int, list[str]]:
    """Append ``bench``'s answer for each architecture the profile lacks, one durable row at a
    time (``on_row(rows appended so far)`` after each); returns (rows appended, architectures
    the bench could not answer for, which are logged and left out)."""
    appended, failed = 0, []
    for arch in archs:
        if arch.string in writer:
            continue
        try:
            reading = bench.measure(space, arch)
        except BenchError as error:
            log.error("%s", error)
            failed.append(arch.string)
            continue
        index = writer.append(arch.string, reading.latency, reading.energy_mj)
        appended += 1
        log.info("profile row %d %s: %.4g ms", index, arch.string, reading.latency.median_ms)
        if on_row is not None:
            on_row(appended)
    return appended, failed
