"""Energy meters on real inputs: a powercap tree in the kernel's format, and NVML where present."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from latency_predictors.measure import (
    EnergyMeasurementError,
    EnergyMeter,
    EnergyMeterUnavailable,
    EnergyPermissionError,
    NvmlMeter,
    RaplMeter,
    detect_energy_meter,
    measure_energy_mj,
    probe_energy_meters,
)

# The range a current Intel package reports (2^32 - 1 counter units of 61.035 uJ, in uJ).
MAX_RANGE_UJ = 262143328850


def write_counter(path: Path, value_uj: int) -> None:
    """Replace the counter atomically: sysfs reads never see a half-written number."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{value_uj}\n")
    os.replace(tmp, path)


def make_powercap(root: Path, package_uj: int = 1000, core_uj: int = 500) -> Path:
    """The layout the intel_rapl driver creates under /sys/class/powercap: a package zone with a
    core subzone inside it, and every zone also listed flat in the class directory."""
    package = root / "intel-rapl:0"
    core = package / "intel-rapl:0:0"
    core.mkdir(parents=True)
    for zone, label, value in ((package, "package-0", package_uj), (core, "core", core_uj)):
        (zone / "name").write_text(f"{label}\n")
        (zone / "energy_uj").write_text(f"{value}\n")
        (zone / "max_energy_range_uj").write_text(f"{MAX_RANGE_UJ}\n")
        (zone / "enabled").write_text("1\n")
    (root / "intel-rapl:0:0").symlink_to(core)
    return root


def test_rapl_reads_package_and_subdomain_in_millijoules(tmp_path: Path) -> None:
    root = make_powercap(tmp_path)
    meter = RaplMeter(root)
    assert meter.name == "rapl:intel-rapl:0:package-0"
    assert meter.read_mj() == 0.0
    write_counter(root / "intel-rapl:0" / "energy_uj", 1000 + 2_500_000)
    assert meter.read_mj() == pytest.approx(2500.0)
    write_counter(root / "intel-rapl:0" / "energy_uj", 1000 + 2_600_000)
    assert meter.read_mj() == pytest.approx(2600.0)
    core = RaplMeter(root, "intel-rapl:0:0")
    assert core.label == "core"
    info = core.describe()
    assert info["meter"] == "rapl" and info["max_energy_range_uj"] == MAX_RANGE_UJ


def test_rapl_counts_across_wrap_around(tmp_path: Path) -> None:
    root = make_powercap(tmp_path, package_uj=MAX_RANGE_UJ - 300)
    counter = root / "intel-rapl:0" / "energy_uj"
    meter = RaplMeter(root)
    write_counter(counter, MAX_RANGE_UJ)  # up to the top of the range: +300
    assert meter.read_mj() == pytest.approx(0.3)
    write_counter(counter, 199)  # wrapped: +1 to reach 0, then +199
    assert meter.read_mj() == pytest.approx(0.5)
    write_counter(counter, 1199)
    assert meter.read_mj() == pytest.approx(1.5)


def test_missing_domain_lists_what_is_there(tmp_path: Path) -> None:
    root = make_powercap(tmp_path)
    with pytest.raises(EnergyMeterUnavailable, match=r"'intel-rapl:1'.*\['intel-rapl:0', 'intel-rapl:0:0'\]"):
        RaplMeter(root, "intel-rapl:1")
    with pytest.raises(EnergyMeterUnavailable, match="does not exist"):
        RaplMeter(tmp_path / "nowhere")


def _permission_message_as_non_root(root: Path) -> str:
    """Read the root-only counter as an unprivileged user, in a child process: as root no file
    mode blocks a read, so dropping to ``nobody`` is the real way to meet the kernel's 0400."""
    module = Path(inspect.getfile(RaplMeter))
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('energy', {str(module)!r})\n"
        "energy = importlib.util.module_from_spec(spec); sys.modules['energy'] = energy\n"
        "spec.loader.exec_module(energy)\n"
        "try:\n"
        f"    energy.RaplMeter(energy.Path({str(root)!r}))\n"
        "except energy.EnergyPermissionError as error:\n"
        "    print(error)\n"
        "else:\n"
        "    print('NO ERROR')\n"
    )
    # The module needs the standard library only, so any interpreter nobody may run will do
    # (a virtual environment's python often links into root's private home).
    failures = []
    for python in dict.fromkeys(filter(None, (sys.executable, shutil.which("python3"), "/usr/bin/python3"))):
        try:
            result = subprocess.run(
                [python, "-I", "-c", code],
                user=65534,
                group=65534,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except OSError as error:
            failures.append(f"{python}: {error}")
            continue
        if result.returncode == 0:
            return result.stdout
        failures.append(f"{python}: {result.stderr[-200:]}")
    pytest.skip(f"running as root and no interpreter runs as user nobody to test a denied read: {failures}")
    return result.stdout


def test_root_only_counter_explains_cve_and_how_to_grant_access() -> None:
    # A world-traversable folder of our own: pytest's tmp_path is private to its owner.
    with tempfile.TemporaryDirectory(prefix="hwnas-rapl-") as folder:
        root = make_powercap(Path(folder) / "powercap")
        os.chmod(folder, 0o755)
        counter = root / "intel-rapl:0" / "energy_uj"
        if os.geteuid() == 0:
            counter.chmod(0o400)  # the mode the kernel gives energy_uj since 5.10: root reads only
            message = _permission_message_as_non_root(root)
        else:
            counter.chmod(0o000)  # the owner is us; only no mode at all denies us
            with pytest.raises(EnergyPermissionError) as caught:
                RaplMeter(root)
            assert isinstance(caught.value, PermissionError)
            message = str(caught.value)
    assert "permission denied" in message
    assert "CVE-2020-8694" in message and "5.10" in message
    assert "chmod" in message and "udev" in message and "root" in message


def test_measure_energy_divides_counter_movement_by_calls(tmp_path: Path) -> None:
    # Each call adds 1.5 mJ, starting close to the top of the range so the counter wraps.
    root = make_powercap(tmp_path, package_uj=MAX_RANGE_UJ - 20_000)
    counter = root / "intel-rapl:0" / "energy_uj"
    state = {"uj": MAX_RANGE_UJ - 20_000}

    def run() -> None:
        state["uj"] = (state["uj"] + 1500) % (MAX_RANGE_UJ + 1)
        write_counter(counter, state["uj"])

    stats = measure_energy_mj(run, RaplMeter(root), warmup=2, min_time_s=0.0, min_repeats=40)
    assert stats.repeats == 40
    assert stats.energy_mj == pytest.approx(1.5)
    assert stats.total_mj == pytest.approx(60.0)
    assert stats.meter == "rapl:intel-rapl:0:package-0"


def test_measure_energy_with_counter_advanced_in_background(tmp_path: Path) -> None:
    # A writer thread advances the counter like the hardware does, independently of the calls.
    root = make_powercap(tmp_path, package_uj=0)
    counter = root / "intel-rapl:0" / "energy_uj"
    written = [0]
    stop = threading.Event()

    def advance() -> None:
        while not stop.is_set():
            written.append(written[-1] + 977)  # ~1 W at one update a millisecond
            write_counter(counter, written[-1])
            time.sleep(0.001)

    writer = threading.Thread(target=advance, daemon=True)
    writer.start()
    try:
        stats = measure_energy_mj(lambda: time.sleep(0.002), RaplMeter(root), warmup=1, min_time_s=0.05, min_repeats=5)
    finally:
        stop.set()
        writer.join()
    assert stats.repeats >= 5 and stats.seconds >= 0.05
    # The movement read is a whole number of the writer's steps, divided by the calls made.
    steps = stats.total_mj * 1000 / 977
    assert steps == pytest.approx(round(steps)) and round(steps) >= 1
    assert stats.energy_mj == pytest.approx(stats.total_mj / stats.repeats)


class FrozenMeter(EnergyMeter):
    """A counter that never moves (a powered-down or stuck domain)."""

    name = "frozen"

    def read_mj(self) -> float:
        return 42.0

    def describe(self) -> dict[str, object]:
        return {"meter": "frozen"}


def test_counter_that_never_moves_is_an_error_not_zero() -> None:
    with pytest.raises(EnergyMeasurementError, match="did not move"):
        measure_energy_mj(lambda: None, FrozenMeter(), warmup=0, min_time_s=0.0, min_repeats=3, max_time_s=0.05)


def test_bad_settings_are_rejected(tmp_path: Path) -> None:
    meter = RaplMeter(make_powercap(tmp_path))
    with pytest.raises(ValueError, match="min_repeats.*0"):
        measure_energy_mj(lambda: None, meter, min_repeats=0)
    with pytest.raises(ValueError, match="min_time_s=5"):
        measure_energy_mj(lambda: None, meter, min_time_s=5, max_time_s=1)


def test_detection_returns_none_with_reasons_when_nothing_is_usable(tmp_path: Path) -> None:
    def absent() -> EnergyMeter:
        return RaplMeter(tmp_path / "none")

    probe = probe_energy_meters((absent,))
    assert probe.meter is None
    assert len(probe.unavailable) == 1 and "does not exist" in probe.unavailable[0]
    assert detect_energy_meter((absent,)) is None
    root = make_powercap(tmp_path / "powercap")
    found = detect_energy_meter((absent, lambda: RaplMeter(root)))
    assert isinstance(found, RaplMeter)


def _nvml_meter() -> NvmlMeter:
    try:
        return NvmlMeter()
    except EnergyMeterUnavailable as error:
        pytest.skip(f"no NVML energy counter here: {error}")


def test_nvml_counter_is_monotonic_millijoules() -> None:
    meter = _nvml_meter()
    first = meter.read_mj()
    time.sleep(0.3)
    assert meter.read_mj() >= first > 0
    assert meter.describe()["meter"] == "nvml"


def test_nvml_absent_is_a_clear_error() -> None:
    try:
        import pynvml  # noqa: F401
    except ImportError:
        with pytest.raises(EnergyMeterUnavailable, match="nvidia-ml-py"):
            NvmlMeter()
        return
    pytest.skip("pynvml is installed; the missing-package error cannot arise here")


def test_an_unreadable_counter_is_an_error_not_an_absent_meter(tmp_path: Path) -> None:
    def unreadable() -> EnergyMeter:
        raise EnergyPermissionError(f"{tmp_path}/intel-rapl:0/energy_uj is readable by root only")

    with pytest.raises(EnergyPermissionError, match="root only"):
        probe_energy_meters((unreadable, lambda: RaplMeter(make_powercap(tmp_path / "powercap"))))
