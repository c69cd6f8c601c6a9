"""Objectives looked up in a published benchmark table (latency, energy or accuracy per network)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from nas._objective import Candidate, Cost, Direction, Objective, UnavailableError
from nas._space import SearchSpace
from nas.tables import METRICS, BenchmarkTable, cached_table


@dataclass(frozen=True)
class SpaceCanonicaliser:
    """A table string -> its space's canonical string (``space.parse(s).string``).

    Equal (and equally hashed) for spaces with equal ``repr``, which is how :func:`cached_table`
    shares one loaded table between the objectives of one space.
    """

    key: str
    space: SearchSpace = field(compare=False, repr=False)

    @classmethod
    def of(cls, space: SearchSpace) -> SpaceCanonicaliser:
        return cls(repr(space), space)

    def __call__(self, string: str) -> str:
        return self.space.parse(string).string


class TableMetric(Objective):
    """One column of a benchmark table folder, looked up by the candidate's canonical string.

    ``metric`` is a per-device metric ("latency_ms", "energy_mj"; then ``device`` names the
    column) or an accuracy column of archs.csv (then ``device`` is None and the direction is
    usually "maximize"). A relative ``table`` path is resolved against the working directory at
    construction, and the metric and device are checked then, so a typo fails before any search.
    Objectives on the same folder (and space) share one loaded table. The module is never built.

    With ``space``, the table's strings are parsed by it and looked up by their canonical form,
    for tables whose published strings are not canonical (OFA's archs.csv lists random genes for
    layers skipped by depth); :meth:`oracle` then names architectures by canonical strings too.
    """

    cost = Cost.LOOKUP

    def __init__(
        self,
        name: str,
        table: str | Path,
        metric: str,
        device: str | None = None,
        direction: str | Direction = "minimize",
        space: SearchSpace | None = None,
        unit: str | None = None,
    ) -> None:
        super().__init__(name)
        self.unit = unit
        try:
            self.direction = Direction(direction)
        except ValueError:
            raise ValueError(f"objective {name!r}: direction {direction!r}; use 'minimize' or 'maximize'") from None
        self.space = space
        self.table: BenchmarkTable = cached_table(table, None if space is None else SpaceCanonicaliser.of(space))
        self.metric = metric
        self.device = device
        self._check_column()

    def _check_column(self) -> None:
        if self.metric in METRICS:
            if self.device is None:
                raise ValueError(
                    f"objective {self.name!r}: {self.metric} needs a device; {self.table.directory} has "
                    f"{', '.join(self.table.devices(self.metric))}"
                )
            self.table.column(self.metric, self.device)  # raises UnknownDeviceError, loads the file
            return
        if self.metric not in self.table.accuracy_columns:
            raise ValueError(
                f"objective {self.name!r}: metric {self.metric!r} is neither a per-device metric "
                f"({', '.join(METRICS)}) nor an accuracy column of {self.table.directory / 'archs.csv'} "
                f"({', '.join(self.table.accuracy_columns) or 'it has none'})"
            )
        if self.device is not None:
            raise ValueError(
                f"objective {self.name!r}: {self.metric!r} is an accuracy column, which has no "
                f"devices; drop device={self.device!r}"
            )

    @property
    def column_name(self) -> str:
        return self.metric if self.device is None else f"{self.metric}[{self.device}]"

    def __call__(self, candidate: Candidate) -> float:
        # A table of this candidate's space holds candidates (a deployed profile); any other holds
        # the networks they run (a published table read by a deployment search).
        own = self.space is not None and candidate.space is not None and candidate.space.name == self.space.name
        arch = candidate.arch.string if own else candidate.network.string
        try:
            value = self.table.value(self.metric, self.device, arch)
        except KeyError as error:
            # Nothing to look up, nothing measured: the search skips the trial without spending budget.
            raise UnavailableError(f"objective {self.name!r}: {error.args[0]}") from None
        if math.isnan(value):
            raise UnavailableError(
                f"objective {self.name!r}: {self.table.directory} has no usable {self.column_name} value "
                f"for {arch} (an empty cell, or one <= 0 or infinite, which the table's loading warned of)"
            )
        return value

    def describe(self) -> str:
        unit = METRICS.get(self.metric) or self.unit or "in the table's unit"
        return f"{self.column_name} of the table {self.table.directory} ({unit}), as published"

    def source(self) -> str:
        # The column, not the folder: the same table read from another path is the same data. A
        # profile's column is named by settings (cpu_onnxruntime_t1_b1_fp32), the same on every
        # machine, so there the recorded device's fingerprint tells two machines apart.
        recorded = None if self.device is None else self.table.recorded_device(self.device)
        return f"table {self.column_name}" + (f" device {recorded.fingerprint}" if recorded else "")

    def oracle(self) -> dict[str, float]:
        values = (
            self.table.accuracy(self.metric) if self.device is None else self.table.column(self.metric, self.device)
        )
        return {arch: float(v) for arch, v in zip(self.table.keys, values) if not math.isnan(v)}

    def __repr__(self) -> str:
        return (
            f"TableMetric(name={self.name!r}, table={str(self.table.directory)!r}, "
            f"metric={self.metric!r}, device={self.device!r}, direction={self.direction.value!r}"
            + ("" if self.space is None else f", space={self.space!r}")
            + ")"
        )
