"""hwnas-profile: measure a space's architectures on this machine into a benchmark table.

Read top to bottom: compose the config -> check every setting (before anything is measured) ->
instantiate space, runtime and selection -> select architectures (a list file is validated
whole) -> open the profile directory (resuming, or refusing another device's profile) -> measure
the networks and/or their distinct layers, appending each row as it is measured -> count the
profile's unstable and unconverged rows (all of them, resumed ones included): warned about and
written to profile_summary.json.
"""

from __future__ import annotations

import functools
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from latency_predictors.measure import (
    NO_ENERGY_METER,
    PRECISIONS,
    DeployedLatency,
    DriftMonitor,
    EnergyMeasure,
    LayerProfileWriter,
    ProfileRun,
    ProfileWriter,
    RowStability,
    Runtime,
    Selection,
    all_layers,
    check_iqr_ratio,
    check_repeat_counts,
    distinct_layers,
    host_metadata,
    measure_energy_mj,
    measure_until_stable,
    probe_energy_meters,
    profile_architectures,
    profile_layers,
    reference_input,
    reference_model,
    runtime_device,
)
from nas import DEPLOYMENT_SEPARATOR, Architecture, ArchitectureError, DeployedSpace, Device, LayerSpec, SearchSpace
from nas.cli import CONFIG_DIR
from nas.cli._explain import explained
from nas.cli._options import OptionError, safe_name
from nas.cli._space import search_space
from nas.results import write_json
from nas.tables import BenchmarkTable
from nas.tensorboard import last_steps

log = logging.getLogger("hwnas.profile")

SUMMARY_FILE = "profile_summary.json"
#: ``layers`` setting -> (measure networks, measure layers)
LAYER_MODES = {False: (True, False), True: (True, True), "only": (False, True)}


@dataclass(frozen=True)
class Settings:
    """The checked scalar options of profile.yaml."""

    n_archs: int
    threads: int
    batch_size: int
    precision: str
    warmup: int
    repeats: int
    max_repeats: int
    rel_tolerance: float
    max_time_s: float
    networks: bool
    layers: bool
    unstable_iqr_ratio: float


def check_settings(cfg: DictConfig) -> Settings:
    """Every scalar option checked, naming the bad value, before anything is built or measured
    (:class:`nas.cli._options.OptionError`)."""
    try:
        return _check_settings(cfg)
    except OptionError:
        raise
    except ValueError as error:
        raise OptionError(str(error)) from None


def _check_settings(cfg: DictConfig) -> Settings:
    if cfg.device_name is not None:
        safe_name("device_name", cfg.device_name)
    for name in ("n_archs", "threads", "batch_size"):
        value = cfg[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    check_repeat_counts(cfg.warmup, cfg.repeats)
    if isinstance(cfg.max_repeats, bool) or not isinstance(cfg.max_repeats, int) or cfg.max_repeats < cfg.repeats:
        raise ValueError(f"max_repeats must be an integer >= repeats ({cfg.repeats}), got {cfg.max_repeats!r}")
    if not 0.0 < cfg.rel_tolerance < 1.0:
        raise ValueError(f"rel_tolerance must be in (0, 1), e.g. 0.02 for 2%, got {cfg.rel_tolerance!r}")
    if not cfg.max_time_s > 0:
        raise ValueError(f"max_time_s must be > 0, got {cfg.max_time_s!r}")
    ratio = check_iqr_ratio(cfg.unstable_iqr_ratio)
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {cfg.precision!r}")
    if cfg.layers not in LAYER_MODES:
        raise ValueError(f"layers must be false, true or only, got {cfg.layers!r}")
    if not isinstance(cfg.all_layers, bool):
        # ValueError like every other bad setting, whatever its type.
        raise ValueError(f"all_layers must be true or false, got {cfg.all_layers!r}")  # noqa: TRY004
    networks, layers = LAYER_MODES[cfg.layers]
    return Settings(
        cfg.n_archs,
        cfg.threads,
        cfg.batch_size,
        cfg.precision,
        cfg.warmup,
        cfg.repeats,
        cfg.max_repeats,
        float(cfg.rel_tolerance),
        float(cfg.max_time_s),
        networks,
        layers,
        ratio,
    )


def build_runtime(cfg: DictConfig, settings: Settings) -> Runtime:
    # fp32 is every runtime's only precision today; others must take a `precision` argument.
    extra = {} if settings.precision == "fp32" else {"precision": settings.precision}
    try:
        return instantiate(cfg.runtime.instance, threads=settings.threads, **extra)
    except Exception as error:
        raise ValueError(
            f"runtime {cfg.runtime.instance._target_} with threads={settings.threads}, "
            f"precision={settings.precision!r} could not be created: {error}"
        ) from error


def device_of(cfg: DictConfig, runtime: Runtime, settings: Settings) -> Device:
    return runtime_device(runtime, settings.batch_size, name=cfg.device_name)


def select_archs(cfg: DictConfig, space: SearchSpace, settings: Settings) -> list[Architecture]:
    selection: Selection = instantiate(cfg.selection)
    return selection(space, settings.n_archs, np.random.default_rng(cfg.seed))


def layers_of(cfg: DictConfig, space: SearchSpace, archs: list[Architecture]) -> list[LayerSpec]:
    if cfg.all_layers:
        # Its own generator: the layer search must not shift the architecture selection's draws.
        return all_layers(space, np.random.default_rng(cfg.seed), patience=cfg.layer_patience)
    return distinct_layers(space, archs)


def energy_of(cfg: DictConfig) -> tuple[EnergyMeasure | None, str | dict[str, Any]]:
    """The energy measurement and its description for device.json: the first of the runtime's
    meters that opens here; without one, energy cells stay empty and the description says why."""
    if not cfg.energy:
        return None, NO_ENERGY_METER + " (energy=false)"
    probe = probe_energy_meters([instantiate(node) for node in cfg.runtime.get("energy_meters") or []])
    if probe.meter is None:
        reasons = "; ".join(probe.unavailable) or "the runtime names no energy meter"
        log.warning("no energy meter on this machine, energy_mj.csv stays empty: %s", reasons)
        return None, f"{NO_ENERGY_METER} ({reasons})"
    meter = probe.meter
    log.info("energy from %s", meter.describe())
    return (lambda run: measure_energy_mj(run, meter).energy_mj), meter.describe()


def drift_monitor_of(cfg: DictConfig, runtime: Runtime, batch_size: int, workdir: Path) -> DriftMonitor | None:
    """A monitor re-timing a fixed reference network, prepared by the profile's own runtime."""
    if cfg.drift_monitor is None:
        return None
    reference = runtime.prepare(reference_model().eval(), reference_input(batch_size), workdir)
    return DriftMonitor(reference, **OmegaConf.to_container(cfg.drift_monitor, resolve=True))


def report_stability(out: Path, stability: RowStability, run: ProfileRun) -> None:
    """Warn about the profile's unstable and unconverged rows and write profile_summary.json."""
    if stability.unstable:
        log.warning(
            "%d of %d rows are unstable (IQR above %g of the median; indices in %s): their medians may be "
            "off by more than run-to-run noise; measure them again on a quieter machine, or drop them",
            len(stability.unstable),
            stability.rows,
            stability.max_iqr_ratio,
            out / SUMMARY_FILE,
        )
    if stability.not_converged:
        log.warning(
            "%d of %d rows did not converge (their median missed rel_tolerance within max_repeats or "
            "max_time_s; indices in %s)",
            len(stability.not_converged),
            stability.rows,
            out / SUMMARY_FILE,
        )
    if not (stability.unstable or stability.not_converged):
        log.info(
            "all %d rows stable (IQR within %g of the median) and converged", stability.rows, stability.max_iqr_ratio
        )
    per_minute = run.archs_per_minute
    this_run = {
        "measured": run.measured,
        "failed": list(run.failed),
        "elapsed_s": run.elapsed_s,
        "archs_per_minute": per_minute if math.isfinite(per_minute) else None,
    }
    write_json(out / SUMMARY_FILE, {**stability.to_dict(), "this_run": this_run})


def write_profile_board(out: Path, device: str) -> None:
    """TensorBoard (``out/tensorboard``): each profile row's latency (and energy) at its row index,
    the rows a resumed profile added after those already logged; their histogram at the row count."""
    from torch.utils.tensorboard import SummaryWriter

    table = BenchmarkTable.load(out)
    logdir = out / "tensorboard"
    logged = last_steps(logdir).get("profile/latency_ms", -1) if logdir.is_dir() else -1
    with SummaryWriter(log_dir=str(logdir)) as board:
        for metric in table.metrics():
            values = table.column(metric, device)
            for row in range(logged + 1, len(values)):
                if np.isfinite(values[row]):
                    board.add_scalar(f"profile/{metric}", values[row], global_step=row)
            finite = values[np.isfinite(values)]
            if len(values) > logged + 1 and len(finite):
                board.add_histogram(f"profile/{metric}_histogram", finite, global_step=len(values))


@dataclass(frozen=True)
class Batch:
    """Architectures measured with one runtime at one batch size; ``count`` says how many of them
    the profile should hold, ``holds`` which of its rows count towards that."""

    label: str
    runtime: Runtime
    batch_size: int
    archs: list[Architecture]
    count: int
    holds: Callable[[str], bool]


def plain_batches(cfg: DictConfig, settings: Settings, archs: list[Architecture]) -> list[Batch]:
    """One runtime and batch size for every architecture (the profile's settings)."""
    runtime = build_runtime(cfg, settings)
    return [Batch("", runtime, settings.batch_size, archs, settings.n_archs, lambda _: True)]


def deployed_batches(
    cfg: DictConfig, space: DeployedSpace, networks: list[Architecture], latency: DeployedLatency
) -> list[Batch]:
    """Every network under every deployment of ``deployments`` (null: every deployment the space
    offers), each deployment's runtime and batch made by ``latency`` (the device's), as a live
    deployment search makes them; the timing is the profile's own (``measure_until_stable``)."""
    wanted = cfg.deployments
    try:
        deployments = space.deployment.every() if wanted is None else [space.deployment.of(str(d)) for d in wanted]
    except ArchitectureError as error:
        raise OptionError(f"deployments: {error}") from None
    batches = []
    for deployment in dict.fromkeys(deployments):
        measurement = latency.measurement(deployment)
        suffix = f"{DEPLOYMENT_SEPARATOR}{deployment.string}"
        batches.append(
            Batch(
                deployment.string,
                measurement.runtime,
                measurement.batch_size,
                [space.deploy(network, deployment) for network in networks],
                len(networks),
                lambda arch, suffix=suffix: arch.endswith(suffix),
            )
        )
    return batches


def deployed_latency(cfg: DictConfig) -> DeployedLatency:
    """The device's deployed latency (named ``device_name`` when given): what builds each
    deployment's runtime and names the profile's device."""
    node = cfg.device.latency_ms
    latency = instantiate(node, **({"device_name": cfg.device_name} if cfg.device_name else {}))
    if not isinstance(latency, DeployedLatency):
        raise OptionError(
            f"deployment={cfg.deployment.name} profiles need a device whose latency_ms is a DeployedLatency; "
            f"device {cfg.device.name} measures with {node._target_}"
        )
    return latency


def measurement_record(cfg: DictConfig, settings: Settings, batches: list[Batch]) -> dict[str, Any]:
    """How every row was measured, for device.json (and the profile's fingerprint)."""
    record: dict[str, Any] = {
        "method": "measure_until_stable: median of at least `repeats` timed runs after `warmup` untimed "
        "ones, more until the median's 95% CI half-width is within rel_tolerance; Tukey outliers dropped",
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "max_repeats": settings.max_repeats,
        "rel_tolerance": settings.rel_tolerance,
        "max_time_s": settings.max_time_s,
    }
    if cfg.get("deployment") is None:
        only = batches[0]
        return record | {
            "batch_size": settings.batch_size,
            "precision": settings.precision,
            "threads": settings.threads,
            "runtime": only.runtime.describe(),
        }
    # Each row's runtime, threads, precision and batch are its deployment's (the row's string).
    return record | {
        "deployments": {b.label: {"runtime": b.runtime.describe(), "batch_size": b.batch_size} for b in batches}
    }


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="profile")
@explained
def main(cfg: DictConfig) -> None:
    settings = check_settings(cfg)
    torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.output_dir).expanduser() if cfg.output_dir else Path(HydraConfig.get().runtime.output_dir)
    space = search_space(cfg)
    networks = space.networks
    # The layers of the whole space need no architecture selection (nor its FLOPs counting).
    archs = select_archs(cfg, networks, settings) if settings.networks or not cfg.all_layers else []
    if isinstance(space, DeployedSpace):
        if settings.layers:
            raise OptionError("layers: a deployed profile measures networks only; profile layers per runtime")
        latency = deployed_latency(cfg)
        batches = deployed_batches(cfg, space, archs, latency)
        device = latency.device()
    else:
        batches = plain_batches(cfg, settings, archs)
        device = device_of(cfg, batches[0].runtime, settings)
    layers = layers_of(cfg, space, archs) if settings.layers else []  # fails here if the space lists none
    energy_mj, energy_record = energy_of(cfg)

    space_record = {"name": cfg.space.name, "instance": OmegaConf.to_container(cfg.space.instance, resolve=True)}
    if isinstance(space, DeployedSpace):
        space_record["deployment"] = OmegaConf.to_container(cfg.deployment, resolve=True)
    record = {
        "space": space_record,
        "settings": measurement_record(cfg, settings, batches),
        "host": host_metadata(),
        "energy_meter": energy_record,
    }
    measure = functools.partial(
        measure_until_stable,
        warmup=settings.warmup,
        min_repeats=settings.repeats,
        max_repeats=settings.max_repeats,
        rel_tolerance=settings.rel_tolerance,
        max_time_s=settings.max_time_s,
    )
    log.info(
        "profiling %d %s architectures%s and %d layers on %s into %s",
        len(archs) if settings.networks else 0,
        networks.name,
        f" under {len(batches)} deployments each" if isinstance(space, DeployedSpace) else "",
        len(layers),
        device.name,
        out,
    )

    if settings.networks:
        with ProfileWriter(out, device, **record) as writer:
            runs = [measure_batch(cfg, space, batch, writer, measure, energy_mj, settings) for batch in batches]
            run = ProfileRun(
                measured=sum(r.measured for r in runs),
                skipped=sum(r.skipped for r in runs),
                failed=tuple(f for r in runs for f in r.failed),
                elapsed_s=sum(r.elapsed_s for r in runs),
            )
        log.info(
            "measured %d architectures in %.1f s (%.1f per minute), %d failed; the profile holds %d",
            run.measured,
            run.elapsed_s,
            run.archs_per_minute,
            len(run.failed),
            len(writer),
        )
        report_stability(out, writer.stability(settings.unstable_iqr_ratio), run)
        write_profile_board(out, device.name)
    if settings.layers:
        with LayerProfileWriter(out, device, **record) as layer_writer:
            layer_run = profile_layers(
                space,
                layers,
                batches[0].runtime,
                layer_writer,
                measure=measure,
                batch_size=settings.batch_size,
                progress=cfg.progress,
            )
        log.info(
            "measured %d layers in %.1f s, %d failed; layers.csv holds %d",
            layer_run.measured,
            layer_run.elapsed_s,
            len(layer_run.failed),
            len(layer_writer),
        )


def measure_batch(
    cfg: DictConfig,
    space: SearchSpace,
    batch: Batch,
    writer: ProfileWriter,
    measure: Any,
    energy_mj: EnergyMeasure | None,
    settings: Settings,
) -> ProfileRun:
    """Measure what ``batch`` still lacks (a resumed profile measures only the rest), its drift
    monitor re-timing the reference network with ``batch``'s runtime."""
    held = sum(1 for arch in writer.measured() if batch.holds(arch))
    todo = [a for a in batch.archs if a.string not in writer][: max(batch.count - held, 0)]
    log.info("%s%d already measured, %d to measure", f"{batch.label}: " if batch.label else "", held, len(todo))
    with tempfile.TemporaryDirectory() as workdir:
        return profile_architectures(
            space,
            todo,
            batch.runtime,
            writer,
            measure=measure,
            batch_size=batch.batch_size,
            energy_mj=energy_mj,
            drift_monitor=drift_monitor_of(cfg, batch.runtime, batch.batch_size, Path(workdir)),
            progress=cfg.progress,
            max_iqr_ratio=settings.unstable_iqr_ratio,
        )


if __name__ == "__main__":
    main()
