"""hwnas-search: one multi-objective search, one Pareto front, everything in the run directory.

Read top to bottom: compose the config -> instantiate space, objectives, metrics, constraints,
sampler and storage from their ``_target_`` -> run the Optuna search -> write trials.csv,
pareto.csv/json, summary.json, TensorBoard events and one ONNX file per Pareto architecture.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import hydra
import optuna
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from latency_predictors.measure import DeployedLatency, MeasuredLatency, cpu_model_name
from nas import Constraint, DeployedSpace, Objective, PredictedObjective, SearchSpace, check_one_device
from nas.cli import CONFIG_DIR
from nas.cli._deployed import DEPLOYED_COLUMNS, DEPLOYED_DESCRIPTIONS, deployment_latency, export_deployed
from nas.cli._explain import INTERRUPTED_EXIT, explained
from nas.cli._onnx import ONNX_COLUMNS, ONNX_DESCRIPTIONS, export_front
from nas.cli._options import SEARCH, check_constraints, check_options
from nas.cli._space import search_space
from nas.cli._watch import StopOnSignal, hparams_log, running_front, sampler_name, search_board
from nas.cli.fit import write_run
from nas.objectives import FittedMetric, TableMetric
from nas.report import write_report
from nas.results import (
    FORMAT_VERSION,
    Oracle,
    TrialsTable,
    column_descriptions,
    hypervolume_summary,
    oracle_summary,
    pareto_rows,
    reference_point,
    trials_table,
    write_csv,
    write_json,
)
from nas.search import Search, SearchSetupError, evaluations
from nas.tensorboard import HParamsLog, SearchBoard
from nas.truth import measure_front, regret

log = logging.getLogger("hwnas.search")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="search")
@explained
def main(cfg: DictConfig) -> float | dict[str, float | None] | None:
    # Optuna logs through its own stderr handler; send it to Hydra's run-directory log instead.
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    # Imported here: nas.cli._devices builds on this module's single-device functions.
    from nas.cli._devices import refuse_devices_run_dir, search_devices

    if cfg.get("devices"):
        return search_devices(cfg, run_dir)  # one study per device, shared accuracy
    refuse_devices_run_dir(run_dir)
    summary = search_run(cfg, run_dir)
    if summary.get("interrupted"):
        sys.exit(INTERRUPTED_EXIT)
    return summary["hypervolume"]


def search_run(
    cfg: DictConfig,
    run_dir: Path,
    search: Search | None = None,
    board_root: Path | None = None,
    hparams: HParamsLog | None = None,
) -> dict[str, Any]:
    """One search of a composed search config into ``run_dir``: what ``hwnas-search`` runs, for
    scripts that compose the same config (``hydra.compose``) and must take the same path.
    ``search`` is the config's search already built (``build_search``); ``board_root`` holds the
    run's ``tensorboard/`` and ``hparams/`` (default ``run_dir``; several devices of one run share
    their run's), ``hparams`` its HParams experiment. Returns summary.json's content."""
    started = time.time()
    check_options(cfg, SEARCH)
    check_constraints(cfg.constraints)
    # PyTorch work between measurements (building, proxies, FLOPs) would otherwise spin threads
    # next to the latency measurement; one fixed setting also makes runs comparable.
    torch.set_num_threads(cfg.torch_threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    search = search or build_search(cfg)
    claim_run_dir(run_dir, cfg, search)
    write_fitted(run_dir, search)
    warn_if_random_start_only(cfg)
    oracle = Oracle.of(search)
    board = None
    if cfg.tensorboard:
        root = board_root or run_dir
        hparams = hparams or hparams_log(root / "hparams", [cfg], [search])
        board = search_board(cfg, root / "tensorboard" / cfg.device.name, search, oracle, hparams)
    front = running_front(search, oracle, cfg)
    with StopOnSignal() as stop:
        study = search.run(
            n_trials=cfg.budget.n_trials,
            timeout_s=cfg.budget.timeout_s,
            show_progress=cfg.progress,
            callbacks=[front, board] if board else [front],
            status=front.status,
            should_stop=stop,
        )
    if not search.writes_outputs(study):
        if board:
            board.close(study)
        # Workers of one study: the one that ran the last trial writes the outputs, once.
        summary = {
            "format_version": FORMAT_VERSION,
            "study_name": cfg.study_name,
            "outputs": "written by the worker that ran the study's last trial (its run directory)",
            "evaluations": evaluations(study),
            "wall_time_s": time.time() - started,
        }
        write_json(run_dir / "worker.json", summary)
        log.info("another worker ran the last trial of study %r and writes its outputs", cfg.study_name)
        return summary | {"hypervolume": None}
    summary = write_outputs(cfg, run_dir, search, study, oracle=oracle, board=board)
    summary["wall_time_s"] = time.time() - started
    summary["interrupted"] = search.interrupted
    write_json(run_dir / "summary.json", summary)
    if cfg.get("report", True):
        write_report(
            run_dir,
            study.get_trials(deepcopy=False),
            summary,
            json.loads((run_dir / "pareto.json").read_text())["architectures"],
            constraints=search.constraints,
            true_values=oracle.values if oracle is not None else None,
            sampler=sampler_name(cfg),
            seed=int(cfg.seed),
        )
    log.info(
        "Pareto set of %d architectures (hypervolume %s) written to %s",
        summary["pareto_size"],
        summary["hypervolume"],
        run_dir,
    )
    if search.interrupted:
        log.warning("interrupted: the outputs hold the finished trials; the same command resumes the search")
    return summary


def build_search(cfg: DictConfig, storage: optuna.storages.BaseStorage | None = None) -> Search:
    """The search a composed config describes; ``storage`` replaces the config's (several devices
    of one run share one storage)."""
    space = search_space(cfg)
    objectives = _named(cfg.objectives, cfg.device.name)
    # A recorded metric that is also an objective (params in synflow_params) is recorded as one.
    metrics = [m for m in _named(cfg.metrics, cfg.device.name) if m.name not in {o.name for o in objectives}]
    constraints, bounds = build_constraints(cfg.constraints, [*objectives, *metrics])
    metrics += bounds
    check_device_name(cfg.device.name, [*objectives, *metrics])
    check_one_device([*objectives, *metrics])
    check_runtimes(space, [*objectives, *metrics])
    log.info(
        "space %s, device %s, objectives %s, metrics %s, constraints %s",
        space.name,
        cfg.device.name,
        [o.name for o in objectives],
        [m.name for m in metrics],
        [c.name for c in constraints],
    )
    return Search(
        space=space,
        objectives=objectives,
        metrics=metrics,
        constraints=constraints,
        # A sampler that models the space (surrogate, mutation) proposes the search's candidates:
        # with deployment genes, the deployed space's.
        sampler=instantiate(cfg.sampler, **({"space": space} if "space" in cfg.sampler else {})),
        storage=storage if storage is not None else instantiate(cfg.storage),
        study_name=cfg.study_name,
    )


def build_constraints(group: DictConfig, measures: list[Objective]) -> tuple[list[Constraint], list[Objective]]:
    """``{metric: {upper, lower, bound}}`` -> constraints, plus the interval ends they bound.

    ``bound`` is ``value`` (the default: the metric itself) or an end of a predicted metric's
    calibrated interval (``upper90``): then the constraint bounds that end, recorded as the metric
    ``<metric>.upper90``, so what the search returns should stay within the bound when measured."""
    by_name = {m.name: m for m in measures}
    constraints, bounds = [], []
    for name, node in group.items():
        settings = dict(node)
        level = settings.pop("bound", "value")
        if level == "value":
            constraints.append(Constraint(metric=str(name), **settings))
            continue
        measure = by_name.get(str(name))
        if not isinstance(measure, PredictedObjective):
            raise SearchSetupError(
                f"constraints.{name}.bound={level}: {name!r} is "
                + ("not an objective or metric of this search" if measure is None else f"{type(measure).__name__}")
                + ", not a predicted one; interval bounds need a predictor (device=predicted or device=fitted), "
                "or use bound=value"
            )
        bound = measure.interval_bound(str(level))
        bounds.append(bound)
        constraints.append(Constraint(metric=bound.name, **settings))
    return constraints, bounds


def write_fitted(run_dir: Path, search: Search) -> None:
    """Each predictor a device=fitted search fitted at start, as hwnas-fit writes one:
    fitted/<objective>/predictor.npz, test_predictions.csv (the rows it did not train on) and
    metrics.json."""
    for measure in search.measures:
        if isinstance(measure, FittedMetric):
            directory = run_dir / "fitted" / measure.name
            directory.mkdir(parents=True, exist_ok=True)
            write_run(directory, measure.fit, measure.data)
            log.info(
                "%s: %s fitted on %d rows of %s[%s], Spearman %.3f on the %d others (%s)",
                measure.name,
                type(measure.predictor).__name__,
                measure.n_train,
                measure.fit.metric,
                measure.fit.device,
                measure.fit.metrics["spearman"] or float("nan"),
                measure.fit.metrics["n_test"],
                directory,
            )


def space_accuracy(cfg: DictConfig, space: SearchSpace) -> TableMetric | None:
    """The space's published accuracy (its table's ``accuracy_column``), which scores regret when
    the search's own score has no table behind it (a proxy); None without a table."""
    column, table_dir = cfg.space.get("accuracy_column"), cfg.space.get("table_dir")
    if not column or not table_dir or not (Path(table_dir) / "archs.csv").is_file():
        return None
    unit = cfg.space.get("accuracy_unit")
    try:
        return TableMetric(column, table_dir, column, direction="maximize", space=space, unit=unit)
    except ValueError:  # a profile's table (space.table_dir=<profile>) lists no accuracy
        return None


RUN_FILE = "study.json"


def check_device_name(name: str, measures: list[Objective]) -> None:
    """A live device's name must be the one its measurements give (latency_predictors.
    runtime_device), so that searches, profiles and predictor files of one device agree."""
    for measure in measures:
        if not isinstance(measure, MeasuredLatency):
            continue
        measured = measure.device().name
        if measured != name:
            raise ValueError(
                f"device.name={name!r}, but {measure.name} measures on {measured!r} (the name hwnas-profile "
                f"gives the same runtime, threads, batch and precision); set device.name={measured} or drop "
                "the override that changed it"
            )


def check_runtimes(space: SearchSpace, measures: list[Objective]) -> None:
    """Every runtime a deployed space may choose has a runtime in each deployed measurement:
    found before the search, not as failed trials."""
    if not isinstance(space, DeployedSpace):
        return
    # A deployment's first setting is its runtime gene's (DeploymentGenes' selector).
    selected = {d.settings[0] for d in space.deployment.every()}
    gene = next(iter(selected))[0]
    for measure in measures:
        if isinstance(measure, DeployedLatency):
            missing = sorted({str(value) for _, value in selected} - set(measure.runtimes))
            if missing:
                raise SearchSetupError(
                    f"{measure.name} has no runtime for {gene}={missing} (it runs {sorted(measure.runtimes)}): "
                    f"add one under deployment_runtimes or drop the value from the deployment's {gene} gene"
                )


def claim_run_dir(run_dir: Path, cfg: DictConfig, search: Search) -> None:
    """Record which search this run directory holds (study.json), or refuse to run another one in
    it: a second device's search would overwrite the first's trials.csv, pareto and summary.

    A directory written before study.json existed is judged by its summary.json (study and
    device). The directory is claimed only once the storage has accepted the study, so a run
    refused there leaves nothing that would refuse its corrected command."""
    claim = json.loads(
        json.dumps({"study_name": cfg.study_name, "device": cfg.device.name, "identity": search.identity()})
    )
    path = run_dir / RUN_FILE
    held = _held_claim(run_dir)
    if held is not None:
        changed = sorted(k for k in held if held[k] != claim.get(k))
        if changed:
            raise SearchSetupError(
                f"run directory {run_dir} holds the search of study {held.get('study_name')!r} on device "
                f"{held.get('device')!r}; this run differs in {', '.join(changed)} and would overwrite its "
                "results. Choose another hydra.run.dir, or the same settings to resume it"
            )
        if path.is_file():
            return
    search.study()
    write_json(path, claim)  # whole or not at all: a worker sharing the directory never reads half a file


def _held_claim(run_dir: Path) -> dict[str, Any] | None:
    if (run_dir / RUN_FILE).is_file():
        return json.loads((run_dir / RUN_FILE).read_text())
    if (run_dir / "summary.json").is_file():
        summary = json.loads((run_dir / "summary.json").read_text())
        return {"study_name": summary.get("study_name"), "device": summary.get("device")}
    return None


def sampler_startup(cfg: DictConfig) -> int | None:
    """How many trials the sampler draws at random before it starts to model (NSGA-II's first
    generation, TPE's and GP's n_startup_trials); None for samplers without a start-up."""
    return cfg.sampler.get("n_startup_trials", cfg.sampler.get("population_size"))


def warn_if_random_start_only(cfg: DictConfig) -> None:
    """Warn when the budget ends inside the sampler's random start-up: every sampler then
    returns the same random trials for a seed, and a sweep over samplers compares nothing."""
    startup = sampler_startup(cfg)
    if startup is not None and cfg.budget.n_trials <= startup:
        log.warning(
            "budget.n_trials=%d is within %s's random start-up of %d trials: this search is a random "
            "search, the same for every sampler with seed=%s; give more trials to see the sampler work",
            cfg.budget.n_trials,
            cfg.sampler._target_.rsplit(".", 1)[-1],
            startup,
            cfg.seed,
        )


def unstable_trials(table: TrialsTable) -> list[str]:
    """Numbers of the trials a measurement flagged unstable (a ``<objective>.unstable`` detail)."""
    flags = [c for c in table.columns if c.endswith(".unstable")]
    return [str(r["number"]) for r in table.rows if any(r.get(c) is True for c in flags)]


def write_outputs(
    cfg: DictConfig,
    run_dir: Path,
    search: Search,
    study: optuna.Study,
    oracle: Oracle | None = None,
    board: SearchBoard | None = None,
) -> dict[str, Any]:
    """trials.csv, pareto.csv/json, ONNX files and the TensorBoard run's last images (``board``);
    returns summary.json's content. ``oracle``: ``Oracle.of(search)``, when already computed."""
    table = trials_table(search, study)
    front = pareto_rows(table)
    write_csv(run_dir / "trials.csv", table.columns, table.rows)
    measured_columns, measured = measure_front(search, front)
    pareto_columns = (*table.columns, *measured_columns)
    onnx_failed = None
    if cfg.export.onnx:
        onnx_failed = export_front(
            search.space,
            front,
            run_dir / "onnx",
            cfg.export,
            progress=cfg.progress,
            facts={"hwnas.device": cfg.device.name, "hwnas.study": cfg.study_name},
            objectives=table.objectives,
        )
        pareto_columns += ONNX_COLUMNS
    deployed_failed = write_deployed(cfg, run_dir, search, front, table.objectives)
    if deployed_failed is not None:
        pareto_columns += DEPLOYED_COLUMNS
    write_csv(run_dir / "pareto.csv", pareto_columns, front)
    write_json(
        run_dir / "columns.json",
        column_descriptions(search, table)
        | {c: MEASURED_DESCRIPTION.format(c.removesuffix(".measured")) for c in measured_columns}
        | (ONNX_DESCRIPTIONS if cfg.export.onnx else {})
        | (DEPLOYED_DESCRIPTIONS if deployed_failed is not None else {}),
    )
    objectives = dict(zip(table.objectives, table.directions))
    write_json(
        run_dir / "pareto.json",
        {
            "format_version": FORMAT_VERSION,
            "space": search.space.name,
            "device": cfg.device.name,
            "objectives": objectives,
            "architectures": front,
        },
    )

    oracle = oracle or Oracle.of(search)
    reference, rule = reference_point(table, _list_or_none(cfg.reference_point), oracle)
    hypervolume = hypervolume_summary(table, reference, rule)
    if board is not None:
        board.close(study, [r["number"] for r in front], hypervolume["hypervolume"])
    states = [r["state"] for r in table.rows]
    unstable = unstable_trials(table)
    if unstable:
        log.warning(
            "%d of %d measured trials have an unstable latency (%s: IQR above the threshold's share of "
            "the median); the machine was busy: compare their latencies with care, or measure again",
            len(unstable),
            sum(r["state"] == "COMPLETE" for r in table.rows),
            ", ".join(unstable),
        )
    return {
        "format_version": FORMAT_VERSION,
        "study_name": cfg.study_name,
        "space": search.space.name,
        "device": cfg.device.name,
        "objectives": objectives,
        "constraints": [c.name for c in search.constraints],
        **hypervolume,
        "oracle": oracle and oracle_summary(table, oracle, reference),
        "measured": measured or None,
        "regret": regret(search, front, space_accuracy(cfg, search.space.networks), _list_or_none(cfg.regret_budgets)),
        "trials": {s: states.count(s) for s in sorted(set(states))}
        | {"total": len(states), "evaluated": evaluations(study)},
        "feasible_trials": len(table.feasible_complete()),
        "pareto_size": len(front),
        "onnx_export_failures": onnx_failed,
        "deployed_export_failures": deployed_failed,
        "unstable_measurements": len(unstable),
        "sampler_startup_trials": sampler_startup(cfg),
        "versions": library_versions(),
        "host": {"cpu": cpu_model_name(), "logical_cores": os.cpu_count(), "torch_threads": cfg.torch_threads},
        "device_config": OmegaConf.to_container(cfg.device, resolve=True),
        "run_dir": str(run_dir),
    }


def write_deployed(
    cfg: DictConfig, run_dir: Path, search: Search, front: list[dict[str, Any]], objectives: tuple[str, ...]
) -> int | None:
    """A deployment search's front as deployed, into ``deployed/`` (:mod:`nas.cli._deployed`):
    how many failed, or None when the search has no deployments (or ONNX export is off)."""
    space = search.space
    latency = deployment_latency(cfg, search.measures)
    if not isinstance(space, DeployedSpace) or latency is None or not cfg.export.onnx:
        return None
    data = instantiate(cfg.proxy_data)
    return export_deployed(
        space,
        front,
        run_dir / "deployed",
        latency,
        lambda arch: data.batch(space.input_shape_of(arch), space.num_classes).images,
        float(cfg.export.int8_min_agreement),
        objectives,
    )


MEASURED_DESCRIPTION = (
    "{0} of the returned architecture as measured by what the search estimated (its table column or "
    "device; see summary.json's measured block), read once the search ended"
)


def _named(group: DictConfig, device: str) -> list[Objective]:
    """Instantiate a {name: objective config} mapping; the key is the objective's name."""
    for name, node in group.items():
        if node is None:
            # e.g. energy_mj: ${device.energy_mj} on a device with no energy meter
            raise SearchSetupError(
                f"objective {name!r} has no source on device {device!r} (its config is null); "
                "choose a device that provides it or other objectives"
            )
    return [instantiate(node, name=str(name)) for name, node in group.items()]


def _list_or_none(node: Any) -> list[float] | None:
    return None if node is None else list(node)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("hwnas", "torch", "optuna", "numpy", "onnx", "onnxruntime", "hydra-core"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


if __name__ == "__main__":
    main()
