"""Energy meters (Intel/AMD RAPL through powercap sysfs, NVIDIA NVML) and energy per inference.

Every meter is a monotonic counter in millijoules (:meth:`EnergyMeter.read_mj`); energy per
inference is the counter's movement over many inferences divided by their count. A machine
without a usable meter gets ``None`` from :func:`detect_energy_meter`, never a zero: a missing
energy number must read as missing.

This module imports the standard library only (NVML lazily), so it loads without torch.
"""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POWERCAP_ROOT = Path("/sys/class/powercap")


class EnergyMeterUnavailable(RuntimeError):
    """This machine (or this user) cannot read the asked-for energy counter; the message says why."""


class EnergyPermissionError(EnergyMeterUnavailable, PermissionError):
    """The counter exists but this user may not read it."""


class EnergyMeter(ABC):
    """A cumulative energy counter of one domain (a CPU package, a GPU)."""

    name: str

    @abstractmethod
    def read_mj(self) -> float:
        """Energy consumed since an arbitrary fixed origin, in millijoules; never decreases."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Meter kind, domain and what its numbers include, for run records."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class RaplMeter(EnergyMeter):
    """RAPL energy of one powercap domain, e.g. ``intel-rapl:0`` (CPU package 0).

    The kernel exposes ``energy_uj``, a counter in microjoules that runs from 0 up to
    ``max_energy_range_uj`` inclusive and then wraps to 0. When a reading is below the previous
    one the counter wrapped once, and the true movement is ``new - old + max_energy_range_uj + 1``;
    a counter wrapping twice between reads cannot be told apart, so read at least once per wrap
    period (the range is ~262 kJ on current CPUs: over 40 minutes at 100 W).

    The number is the whole domain's energy (every process, idle power included), not the
    network's alone; compare energies measured under the same conditions.
    """

    def __init__(self, root: Path = POWERCAP_ROOT, domain: str = "intel-rapl:0") -> None:
        self.root = Path(root)
        self.domain = domain
        self._dir = self.root / domain
        if not (self._dir / "energy_uj").exists():
            raise EnergyMeterUnavailable(f"RAPL domain {domain!r} not found: {_powercap_found(self.root)}")
        self.label = self._read_text("name")
        self.max_energy_range_uj = int(self._read_text("max_energy_range_uj"))
        self.name = f"rapl:{domain}:{self.label}"
        self._last_uj = self._read_energy_uj()
        self._total_uj = 0

    def _read_text(self, field: str) -> str:
        path = self._dir / field
        try:
            return path.read_text(encoding="ascii").strip()
        except PermissionError as error:
            raise EnergyPermissionError(
                f"cannot read {path}: permission denied. Since Linux 5.10 the RAPL energy_uj files are "
                "readable by root only (CVE-2020-8694, the PLATYPUS power side channel). Run as root, or "
                f"grant read access: `sudo chmod o+r {self.root}/intel-rapl:*/energy_uj "
                f"{self.root}/intel-rapl:*/*/energy_uj` (until reboot), or persistently a udev rule "
                'such as ACTION=="add", SUBSYSTEM=="powercap", RUN+="/bin/chmod o+r /sys%p/energy_uj"'
            ) from error
        except OSError as error:
            raise EnergyMeterUnavailable(f"cannot read {path}: {error}") from error

    def _read_energy_uj(self) -> int:
        text = self._read_text("energy_uj")
        try:
            return int(text)
        except ValueError as error:
            raise EnergyMeterUnavailable(f"{self._dir / 'energy_uj'} holds {text!r}, not an integer") from error

    def read_mj(self) -> float:
        now_uj = self._read_energy_uj()
        delta_uj = now_uj - self._last_uj
        if delta_uj < 0:
            delta_uj += self.max_energy_range_uj + 1
        self._last_uj = now_uj
        self._total_uj += delta_uj
        return self._total_uj / 1e3

    def describe(self) -> dict[str, Any]:
        return {
            "meter": "rapl",
            "domain": self.domain,
            "label": self.label,
            "path": str(self._dir / "energy_uj"),
            "max_energy_range_uj": self.max_energy_range_uj,
            "includes": "whole RAPL domain (all processes, idle power)",
        }


def _powercap_found(root: Path) -> str:
    """What a powercap tree holds, for the error when the asked-for domain is not there."""
    hint = "on Linux the intel_rapl_msr (Intel) or rapl (AMD) driver provides it: sudo modprobe intel_rapl_msr"
    if not root.is_dir():
        return f"{root} does not exist ({hint}; virtual machines usually have no RAPL)"
    # The class directory lists every zone and subzone flat (as symlinks); recursing into sysfs
    # would follow its cyclic links.
    found = sorted(p.parent.name for p in root.glob("*/energy_uj"))
    if not found:
        return f"{root} has no energy_uj files ({hint})"
    return f"domains under {root}: {found}; pass one of them as domain"


class NvmlMeter(EnergyMeter):
    """An NVIDIA GPU's total energy since the driver loaded (``nvmlDeviceGetTotalEnergyConsumption``,
    Volta and newer), through ``pynvml`` (package ``nvidia-ml-py``).

    The driver updates the counter every few tens of milliseconds, so measure over about a second
    or more. It covers the whole board: other processes' kernels and idle power included.
    """

    def __init__(self, index: int = 0) -> None:
        try:
            import pynvml
        except ImportError as error:
            raise EnergyMeterUnavailable(
                "NvmlMeter needs pynvml: pip install nvidia-ml-py (the NVIDIA driver must be installed too)"
            ) from error
        self._nvml = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            raise EnergyMeterUnavailable(
                f"NVML could not initialise on {socket.gethostname()} ({error}): no NVIDIA driver or GPU here"
            ) from error
        count = pynvml.nvmlDeviceGetCount()
        if not 0 <= index < count:
            raise EnergyMeterUnavailable(
                f"GPU index {index} asked for, but NVML sees {count} GPU(s): use 0..{count - 1}"
            )
        self.index = index
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.device_name = _text(pynvml.nvmlDeviceGetName(self._handle))
        self.driver_version = _text(pynvml.nvmlSystemGetDriverVersion())
        self.name = f"nvml:{index}:{self.device_name}"
        try:
            self.read_mj()
        except pynvml.NVMLError as error:
            raise EnergyMeterUnavailable(
                f"{self.device_name} does not report total energy ({error}); it needs a Volta or newer GPU"
            ) from error

    def read_mj(self) -> float:
        # An unsigned 64-bit count of millijoules: it does not wrap in practice.
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def describe(self) -> dict[str, Any]:
        return {
            "meter": "nvml",
            "index": self.index,
            "device": self.device_name,
            "driver": self.driver_version,
            "includes": "whole GPU board (all processes, idle power)",
        }


def _text(value: str | bytes) -> str:
    # Older pynvml releases return bytes.
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class EnergyProbe:
    """The first meter that could be opened, and why each one tried before it could not."""

    meter: EnergyMeter | None
    unavailable: tuple[str, ...]


#: Meters tried by :func:`detect_energy_meter`, in order: the CPU package, then the GPU.
DEFAULT_METERS: tuple[Callable[[], EnergyMeter], ...] = (RaplMeter, NvmlMeter)


def probe_energy_meters(factories: Sequence[Callable[[], EnergyMeter]] = DEFAULT_METERS) -> EnergyProbe:
    """Open the first meter of ``factories`` that works on this machine; keep the others' reasons.

    A counter that exists but this user may not read raises :class:`EnergyPermissionError`
    instead of being skipped: whoever set the machine up meant it to be read, and a profile
    quietly without energy would hide that.
    """
    reasons: list[str] = []
    for factory in factories:
        try:
            return EnergyProbe(factory(), tuple(reasons))
        except EnergyPermissionError:
            raise
        except EnergyMeterUnavailable as error:
            reasons.append(f"{getattr(factory, '__name__', factory)}: {error}")
    return EnergyProbe(None, tuple(reasons))


def detect_energy_meter(factories: Sequence[Callable[[], EnergyMeter]] = DEFAULT_METERS) -> EnergyMeter | None:
    """The first usable meter of ``factories`` (default: RAPL package 0, then NVML GPU 0), or
    ``None``; use :func:`probe_energy_meters` to report why none was usable. A GPU runtime should
    pass ``(NvmlMeter,)``: the CPU package's energy says little about GPU inference."""
    return probe_energy_meters(factories).meter


@dataclass(frozen=True)
class EnergyStats:
    """Energy per inference from one run of :func:`measure_energy_mj`."""

    energy_mj: float
    repeats: int
    seconds: float
    total_mj: float
    meter: str

    @property
    def mean_power_w(self) -> float:
        return self.total_mj / 1e3 / self.seconds if self.seconds > 0 else float("nan")


class EnergyMeasurementError(RuntimeError):
    """The meter's counter did not move during the measurement."""


def measure_energy_mj(
    run: Callable[[], object],
    meter: EnergyMeter,
    *,
    warmup: int = 3,
    min_time_s: float = 1.0,
    min_repeats: int = 10,
    max_time_s: float = 30.0,
) -> EnergyStats:
    """Energy per inference of ``run`` in millijoules, by the meter's counter over many calls.

    After ``warmup`` calls, ``run`` is called until at least ``min_repeats`` calls and
    ``min_time_s`` seconds have passed and the counter has moved (meters update every 1 ms (RAPL)
    to ~100 ms (NVML): a short window reads zero or one update's worth); the counter's movement is
    divided by the number of calls. ``run`` must return only when its work is done (GPU runs
    synchronise), or the energy of queued work would land outside the window. If the counter has
    not moved after ``max_time_s``, :class:`EnergyMeasurementError` is raised, never a zero.
    """
    if isinstance(min_repeats, bool) or not isinstance(min_repeats, int) or min_repeats < 1:
        raise ValueError(f"min_repeats must be an integer >= 1, got {min_repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    if not 0.0 <= min_time_s <= max_time_s:
        raise ValueError(
            f"need 0 <= min_time_s <= max_time_s, got min_time_s={min_time_s!r}, max_time_s={max_time_s!r}"
        )
    for _ in range(warmup):
        run()
    repeats = 0
    start_mj = meter.read_mj()
    start_s = time.perf_counter()
    while True:
        run()
        repeats += 1
        seconds = time.perf_counter() - start_s
        if repeats >= min_repeats and seconds >= min_time_s:
            total_mj = meter.read_mj() - start_mj
            if total_mj > 0:
                return EnergyStats(total_mj / repeats, repeats, seconds, total_mj, meter.name)
            if seconds >= max_time_s:
                raise EnergyMeasurementError(
                    f"{meter.name}'s counter did not move in {seconds:.1f} s over {repeats} calls; "
                    "the meter is not updating (is the counter frozen, or the domain powered down?)"
                )
