"""Latency measured live on this machine, as a search objective."""

from __future__ import annotations

import logging
import platform
import tempfile
from pathlib import Path

from latency_predictors.measure._measure import (
    UNSTABLE_IQR_RATIO,
    LatencyStats,
    check_iqr_ratio,
    check_repeat_counts,
    measure_latency_ms,
)
from latency_predictors.measure._runtimes import OnnxRuntimeCPU, Runtime
from nas import Candidate, Cost, Device, Direction, Objective, ObjectiveError

log = logging.getLogger(__name__)


def cpu_model_name() -> str:
    """The CPU's marketing name (Linux ``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def runtime_device(runtime: Runtime, batch_size: int, name: str | None = None) -> Device:
    """The device a runtime measures on, by the one rule hwnas-profile and live searches share:
    named ``<cpu|cuda>_<runtime>_t<threads>_b<batch>_<precision>`` unless ``name`` is given, and
    fingerprinted by that name, this machine's processor (the GPU for a CUDA runtime), the runtime
    and its version, threads, batch and precision. So a profile of this CPU and a live search of
    it with equal settings give one device, and a predictor fitted on the one serves the other."""
    info = runtime.describe()
    # A runtime on another processor names it under "device" (TorchCUDA: the GPU).
    processor = "cuda" if "device" in info else "cpu"
    precision = str(info.get("precision", "fp32"))
    return Device(
        name=name or f"{processor}_{runtime.name}_t{runtime.threads}_b{batch_size}_{precision}",
        source="live",
        hardware=str(info.get("device") or cpu_model_name()),
        runtime=f"{info['runtime']} {info['version']}",
        threads=runtime.threads,
        batch_size=batch_size,
        precision=precision,
    )


def spread_details(stats: LatencyStats, unstable_iqr_ratio: float) -> dict[str, float | int | bool]:
    """A live measurement's spread, kept beside its value in a search's records."""
    return {
        "iqr_ms": stats.iqr_ms,
        "min_ms": stats.min_ms,
        "repeats": stats.repeats,
        "iqr_ratio": stats.iqr_ratio,
        "unstable": stats.unstable(unstable_iqr_ratio),
    }


def spread_descriptions(unstable_iqr_ratio: float) -> dict[str, str]:
    """What each key of :func:`spread_details` means."""
    return {
        "iqr_ms": "interquartile range of the timed inferences, ms",
        "min_ms": "fastest timed inference, ms",
        "repeats": "timed inferences (a count)",
        "iqr_ratio": "iqr_ms / median: the spread of the measurement",
        "unstable": f"iqr_ratio above {unstable_iqr_ratio:g}: the machine was too busy to trust this median",
    }


class MeasuredLatency(Objective):
    """Median inference latency in milliseconds of a candidate, timed with ``runtime``.

    Each call prepares the network (for ONNX: export plus session creation, in a temporary
    directory removed afterwards), runs ``warmup`` untimed and ``repeats`` timed inferences on
    ``space.example_input(batch_size)`` and returns the median. The full statistics of the last
    measurement of each architecture string stay in :attr:`last_stats` (for the IQR in records).

    Caveats, since the numbers are only as good as the machine is quiet:

    * Threads are not pinned to cores: the OS may migrate them, and anything else running
      (parallel trials, a training job, the other objectives' threads) competes for the same cores.
      On a small machine measure with ``threads=1`` and one trial at a time; pin the whole
      process with ``taskset``/``numactl`` for steadier numbers.
    * A multi-threaded onnxruntime session spins its worker threads briefly after each run, which
      is fast but steals CPU from whatever runs next in the process.
    * CPU frequency scaling and turbo change absolute numbers between runs and machines; compare
      latencies measured in one run, and treat ``device()`` as a description, not a guarantee.
    """

    cost = Cost.MEASUREMENT
    direction = Direction.MINIMIZE

    def __init__(
        self,
        name: str = "latency_ms",
        runtime: Runtime | None = None,
        warmup: int = 5,
        repeats: int = 20,
        batch_size: int = 1,
        unstable_iqr_ratio: float = UNSTABLE_IQR_RATIO,
    ) -> None:
        super().__init__(name)
        check_repeat_counts(warmup, repeats)
        self.unstable_iqr_ratio = check_iqr_ratio(unstable_iqr_ratio)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.runtime = runtime if runtime is not None else OnnxRuntimeCPU(threads=1)
        self.warmup = warmup
        self.repeats = repeats
        self.batch_size = batch_size
        #: The latest :class:`LatencyStats` of each architecture string measured by this objective.
        self.last_stats: dict[str, LatencyStats] = {}

    def __call__(self, candidate: Candidate) -> float:
        example = candidate.space.example_input(self.batch_size, arch=candidate.arch)
        with tempfile.TemporaryDirectory(prefix="hwnas-latency-") as workdir:
            try:
                run = self.runtime.prepare(candidate.model, example, Path(workdir))
            except Exception as error:  # export/session failures are this architecture's, not the run's
                raise ObjectiveError(f"{self.runtime!r} could not prepare {candidate.arch.string}: {error}") from error
            stats = measure_latency_ms(run, warmup=self.warmup, repeats=self.repeats)
            del run  # release the session before its directory goes
        self.last_stats[candidate.arch.string] = stats
        if stats.unstable(self.unstable_iqr_ratio):
            log.warning(
                "%s: latency %.3g ms is unstable (IQR %.3g ms, %.0f%% of the median, above %.0f%%): the "
                "machine is busy; its trial is flagged (%s.unstable in trials.csv)",
                candidate.arch.string,
                stats.median_ms,
                stats.iqr_ms,
                100 * stats.iqr_ratio,
                100 * self.unstable_iqr_ratio,
                self.name,
            )
        return stats.median_ms

    def details(self, candidate: Candidate) -> dict[str, float | int | bool]:
        stats = self.last_stats.get(candidate.arch.string)
        return {} if stats is None else spread_details(stats, self.unstable_iqr_ratio)

    def describe(self) -> str:
        return (
            f"median latency in ms of {self.repeats} timed inferences (after {self.warmup} warm-up) at "
            f"batch {self.batch_size}, measured live on {self.device().name}"
        )

    def describe_details(self) -> dict[str, str]:
        return spread_descriptions(self.unstable_iqr_ratio)

    def source(self) -> str:
        device = self.device()
        return f"live {device.name} {device.fingerprint}"

    def device(self) -> Device:
        """What these latencies are measured on (:func:`runtime_device`: the same device as a
        profile of this machine with the same runtime, threads, batch and precision)."""
        return runtime_device(self.runtime, self.batch_size)

    def __repr__(self) -> str:
        return (
            f"MeasuredLatency(name={self.name!r}, runtime={self.runtime!r}, warmup={self.warmup},"
            f" repeats={self.repeats}, batch_size={self.batch_size}, unstable_iqr_ratio={self.unstable_iqr_ratio})"
        )
