"""What machine a profile was measured on: CPU, frequency policy, kernel, library versions, GPU.

Every field is read, never assumed: a value that cannot be read says ``"unreadable: <why>"``, so a
profile's header shows the gap instead of a guess.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from latency_predictors.measure._live import cpu_model_name

CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError as error:
        return f"unreadable: {error.strerror or error} ({path})"


def _khz_to_mhz(path: Path) -> float | str:
    text = _read(path)
    return int(text) / 1e3 if text.isdigit() else text


def physical_cores() -> int | str:
    """Distinct (physical id, core id) pairs of ``/proc/cpuinfo``; SMT siblings count once."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError as error:
        return f"unreadable: {error.strerror or error} (/proc/cpuinfo)"
    cores: set[tuple[str, str]] = set()
    for block in text.split("\n\n"):
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {key.strip(): value.strip() for key, value in fields.items()}
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    return len(cores) if cores else "unreadable: /proc/cpuinfo lists no core ids (virtual machine?)"


def cuda_metadata() -> dict[str, Any]:
    """GPU names and driver when CUDA is usable, else why not."""
    if not torch.cuda.is_available():
        return {"available": False, "torch_cuda_build": torch.version.cuda}
    info: dict[str, Any] = {
        "available": True,
        "torch_cuda_build": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "devices": [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())],
    }
    try:
        import pynvml
    except ImportError:
        info["driver"] = "unreadable: pynvml not installed (pip install nvidia-ml-py)"
        return info
    try:
        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
    except pynvml.NVMLError as error:
        info["driver"] = f"unreadable: NVML: {error}"
        return info
    info["driver"] = driver.decode() if isinstance(driver, bytes) else driver
    return info


def host_metadata() -> dict[str, Any]:
    """The machine and software a measurement ran on, as a JSON-ready dict."""
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model_name(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "physical_cores": physical_cores(),
        "governor": _read(CPUFREQ / "scaling_governor"),
        "freq_cur_mhz": _khz_to_mhz(CPUFREQ / "scaling_cur_freq"),
        "freq_min_mhz": _khz_to_mhz(CPUFREQ / "scaling_min_freq"),
        "freq_max_mhz": _khz_to_mhz(CPUFREQ / "scaling_max_freq"),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": cuda_metadata(),
    }
