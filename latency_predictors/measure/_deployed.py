"""Latency and throughput of a candidate run as its deployment genes say (:class:`nas.DeployedSpace`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import ClassVar

from latency_predictors.measure._live import (
    MeasuredLatency,
    cpu_model_name,
    runtime_device,
    spread_descriptions,
    spread_details,
)
from latency_predictors.measure._measure import (
    UNSTABLE_IQR_RATIO,
    LatencyStats,
    check_iqr_ratio,
    check_repeat_counts,
)
from latency_predictors.measure._runtimes import Runtime
from nas import Candidate, Cost, Deployment, Device, Direction, GeneValue, Objective, ObjectiveError, deployed

#: The deployment gene the measurement reads itself; every other gene the runtime takes is passed
#: to the runtime's constructor by name (threads, graph_optimization, precision).
BATCH_GENE = "batch_size"

#: What a :class:`DeployedLatency` returns of a measurement, and which way is better.
STATISTICS: dict[str, Direction] = {
    "median_ms": Direction.MINIMIZE,
    "p95_ms": Direction.MINIMIZE,
    "samples_per_s": Direction.MAXIMIZE,
}

#: Measurements kept for other objectives of the same trial (latency and throughput share one).
_KEPT = 64


class DeployedLatency(Objective):
    """Latency (ms per inference of the candidate's batch) or throughput (samples/s) of a candidate,
    measured live on this CPU as its deployment says.

    ``runtimes`` maps each value of the deployment's runtime gene to a runtime factory (a
    ``_partial_`` config of a :class:`Runtime`), called with the genes that runtime takes, except
    ``batch_size``, which sets the measured batch. Each deployment is timed by a
    :class:`MeasuredLatency` (same warm-up, repeats and stability check), so a candidate's median
    equals what a single-deployment live device with those settings measures.

    ``statistic`` picks the value: ``median_ms`` (the default), ``p95_ms`` (for "p95 latency <= X
    ms" constraints) or ``samples_per_s`` (batch x 1000 / median, maximised). Objectives with the
    same runtimes, warm-up and repeats share each candidate's measurement, so a search with
    latency and throughput times each candidate once.
    """

    cost = Cost.MEASUREMENT
    _measured: ClassVar[OrderedDict[tuple[str, str], tuple[LatencyStats, int]]] = OrderedDict()

    def __init__(
        self,
        name: str = "latency_ms",
        runtimes: Mapping[str, Callable[..., Runtime]] | None = None,
        statistic: str = "median_ms",
        warmup: int = 5,
        repeats: int = 20,
        unstable_iqr_ratio: float = UNSTABLE_IQR_RATIO,
        device_name: str = "cpu_deployed",
    ) -> None:
        super().__init__(name)
        check_repeat_counts(warmup, repeats)
        if not runtimes:
            raise ValueError("DeployedLatency needs runtimes: {<runtime gene value>: <runtime factory>}")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")
        self.runtimes = dict(runtimes)
        self.statistic = statistic
        self.direction = STATISTICS[statistic]
        self.warmup, self.repeats = warmup, repeats
        self.unstable_iqr_ratio = check_iqr_ratio(unstable_iqr_ratio)
        self.device_name = device_name
        self._by_deployment: dict[Deployment, MeasuredLatency] = {}

    def measurement(self, deployment: Deployment) -> MeasuredLatency:
        """The live measurement of one deployment (made once, then reused)."""
        if deployment not in self._by_deployment:
            settings: dict[str, GeneValue] = dict(deployment.settings[1:])
            gene, value = deployment.settings[0]
            factory = self.runtimes.get(str(value))
            if factory is None:
                raise ObjectiveError(
                    f"objective {self.name!r}: no runtime for {gene}={value!r}; this objective runs "
                    f"{sorted(self.runtimes)} (deployment_runtimes)"
                )
            batch = settings.pop(BATCH_GENE, 1)
            self._by_deployment[deployment] = MeasuredLatency(
                self.name,
                runtime=factory(**settings),
                warmup=self.warmup,
                repeats=self.repeats,
                batch_size=int(batch),
                unstable_iqr_ratio=self.unstable_iqr_ratio,
            )
        return self._by_deployment[deployment]

    def _of(self, candidate: Candidate) -> MeasuredLatency:
        return self.measurement(deployed(candidate, self.name)[1])

    @cached_property
    def _settings(self) -> str:
        # The factories' reprs name their classes and bound settings: objectives that would
        # time a deployment differently never share a measurement.
        factories = sorted((name, repr(factory)) for name, factory in self.runtimes.items())
        return f"{self.device().fingerprint} {self.warmup} {self.repeats} {self.unstable_iqr_ratio} {factories}"

    def stats(self, candidate: Candidate) -> tuple[LatencyStats, int]:
        """The candidate's measurement and batch: measured now, or kept from another objective's
        call for the same candidate."""
        key = (self._settings, candidate.arch.string)
        kept = self._measured.get(key)
        if kept is None:
            measured = self._of(candidate)
            measured(candidate)
            kept = (measured.last_stats[candidate.arch.string], measured.batch_size)
            self._measured[key] = kept
            while len(self._measured) > _KEPT:
                self._measured.popitem(last=False)
        return kept

    def __call__(self, candidate: Candidate) -> float:
        stats, batch = self.stats(candidate)
        if self.statistic == "samples_per_s":
            return batch * 1000.0 / stats.median_ms
        return float(getattr(stats, self.statistic))

    def details(self, candidate: Candidate) -> dict[str, float | int | bool]:
        stats, batch = self.stats(candidate)
        return {
            "median_ms": stats.median_ms,
            "p95_ms": stats.p95_ms,
            "batch_size": batch,
        } | spread_details(stats, self.unstable_iqr_ratio)

    def describe_details(self) -> dict[str, str]:
        return {
            "median_ms": "median of the timed inferences of one batch, ms",
            "p95_ms": "95th percentile of the timed inferences of one batch, ms",
            "batch_size": "samples per inference (the deployment's batch)",
        } | spread_descriptions(self.unstable_iqr_ratio)

    def describe(self) -> str:
        what = {
            "median_ms": "median latency in ms of one inference of the candidate's batch",
            "p95_ms": "95th-percentile latency in ms of one inference of the candidate's batch",
            "samples_per_s": "throughput in samples/s (batch x 1000 / median latency in ms)",
        }[self.statistic]
        return (
            f"{what} ({self.repeats} timed after {self.warmup} warm-up), run live on this CPU as the "
            "candidate's deployment says"
        )

    def device_of(self, candidate: Candidate) -> Device:
        """The device one candidate was measured on: this machine under its deployment, named by
        the rule hwnas-profile uses (``cpu_onnxruntime_int8_t2_b1_int8``)."""
        measured = self._of(candidate)
        return runtime_device(measured.runtime, measured.batch_size)

    def device(self) -> Device:
        """This machine, under every deployment the search may choose."""
        return Device(
            name=self.device_name,
            source="live",
            hardware=cpu_model_name(),
            runtime="deployed: " + ", ".join(sorted(self.runtimes)),
        )

    def source(self) -> str:
        device = self.device()
        return f"live deployed {device.name} {device.fingerprint} {self.statistic}"

    def __repr__(self) -> str:
        return (
            f"DeployedLatency(name={self.name!r}, runtimes={sorted(self.runtimes)}, statistic={self.statistic!r}, "
            f"warmup={self.warmup}, repeats={self.repeats})"
        )
