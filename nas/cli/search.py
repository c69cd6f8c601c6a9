"""hwnas-search: one multi-objective search, one Pareto front, everything in the run directory.

Read top to bottom: compose the config -> instantiate space, objectives, metrics, constraints,
sampler and storage from their ``_target_`` -> run the Optuna search -> write trials.csv,
pareto.csv/json, summary.json, TensorBoard events and one ONNX file per Pareto architecture.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import signal
import sys
import threading
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
from optuna.trial import TrialState
from tqdm.auto import tqdm

from latency_predictors.measure import MeasuredLatency, cpu_model_name
from nas import Constraint, Objective, PredictedObjective, SearchSpace, check_one_device
from nas.cli import CONFIG_DIR
from nas.cli.fit import write_run
from nas.export import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, export_deployable
from nas.objective_cache import CachedObjective
from nas.objectives import FittedMetric, TableMetric
from nas.report import write_report
from nas.results import (
    FORMAT_VERSION,
    Oracle,
    RunningFront,
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


def hparams_log(root: Path, configs: list[DictConfig], searches: list[Search]) -> HParamsLog:
    """The HParams experiment of a run of one or several devices (``configs``, ``searches``).
    With several, a device's own values (its latency) are its own metric, ``objective/latency_ms@
    raspi4``, so no axis mixes devices; what every device shares (accuracy, a proxy: evaluated
    once, :class:`~nas.objective_cache.CachedObjective`) stays one metric."""
    shared = {m.name for s in searches for m in s.measures if isinstance(m, CachedObjective)}
    hparams = HParamsLog(
        root,
        run={
            "device": [c.device.name for c in configs],
            "space": [configs[0].space.name],
            "sampler": [sampler_name(configs[0])],
            "seed": [int(configs[0].seed)],
        },
        genes=searches[0].space.distributions(),
        metrics=[],
        shared=shared if len(searches) > 1 else None,
    )
    tags: dict[str, None] = {}
    for cfg, search in zip(configs, searches):
        device = cfg.device.name
        tags |= dict.fromkeys(hparams.tag(device, "objective", o.name) for o in search.objectives)
        tags |= dict.fromkeys(hparams.tag(device, "metric", m.name) for m in search.metrics)
        tags |= dict.fromkeys(hparams.tag(device, "constraint", c.name) for c in search.constraints)
    hparams.declare([*tags, "feasible", "on_front"])
    return hparams


def search_board(
    cfg: DictConfig, logdir: Path, search: Search, oracle: Oracle | None, hparams: HParamsLog | None
) -> SearchBoard:
    """The device's TensorBoard run; its hypervolume is live when the reference point is known
    before the search (given, or the oracle's worst values, as summary.json then uses)."""
    reference = fixed_reference(cfg, search, oracle)
    return SearchBoard(
        logdir,
        [o.name for o in search.objectives],
        search.directions,
        metrics=[m.name for m in search.metrics],
        constraints=search.constraints,
        reference=reference,
        true_values=oracle.values if oracle is not None else None,
        figure_every=cfg.get("tensorboard_figure_every", 25),
        hparams=hparams,
        device=cfg.device.name,
        run={"device": cfg.device.name, "space": cfg.space.name, "sampler": sampler_name(cfg), "seed": int(cfg.seed)},
    )


def sampler_name(cfg: DictConfig) -> str:
    """The sampler's class (``NSGAIISampler``, ``SurrogateSampler``): what the run searched with."""
    return str(cfg.sampler._target_).rsplit(".", 1)[-1]


#: The exit status of a search stopped by Ctrl-C or SIGTERM once its outputs are written (128 + SIGINT).
INTERRUPTED_EXIT = 130


class StopOnSignal:
    """SIGTERM (a scheduler's or ``kill``'s stop) and a first Ctrl-C ask the search to stop after
    the trial in progress (``Search.run(should_stop=...)``), so its outputs are written and the
    command exits with INTERRUPTED_EXIT; a second Ctrl-C interrupts at once. Handlers are set on
    entry and restored on exit (only from the main thread, where Python allows them)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning(
            "%s: stopping after the trial in progress and writing what finished%s",
            signal.Signals(signum).name,
            " (Ctrl-C again to abort at once)" if signum == signal.SIGINT else "",
        )

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def running_front(search: Search, oracle: Oracle | None, cfg: DictConfig) -> RunningFront:
    """The front and counts the progress bar and the log show, from the study's finished trials on."""
    reference = fixed_reference(cfg, search, oracle)
    front = RunningFront(search.directions, reference)
    for trial in search.study().get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        front.add(trial)
    return front


def fixed_reference(cfg: DictConfig, search: Search, oracle: Oracle | None) -> Any:
    """The hypervolume reference known before the search (given, or the oracle's worst values, as
    summary.json then uses); None otherwise."""
    given = _list_or_none(cfg.reference_point)
    if given is None and oracle is None:
        return None
    empty = TrialsTable((), (), tuple(o.name for o in search.objectives), tuple(search.directions))
    return reference_point(empty, given, oracle)[0]


def build_search(cfg: DictConfig, storage: optuna.storages.BaseStorage | None = None) -> Search:
    """The search a composed config describes; ``storage`` replaces the config's (several devices
    of one run share one storage)."""
    space = instantiate(cfg.space.instance)
    objectives = _named(cfg.objectives, cfg.device.name)
    metrics = _named(cfg.metrics, cfg.device.name)
    constraints, bounds = build_constraints(cfg.constraints, [*objectives, *metrics])
    metrics += bounds
    check_device_name(cfg.device.name, [*objectives, *metrics])
    check_one_device([*objectives, *metrics])
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
        sampler=instantiate(cfg.sampler),
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
            raise ValueError(
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
    partial = path.with_suffix(".json.partial")
    write_json(partial, claim)
    os.replace(partial, path)  # atomic: a worker sharing the directory never reads half a file


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
    write_csv(run_dir / "pareto.csv", pareto_columns, front)
    write_json(
        run_dir / "columns.json",
        column_descriptions(search, table)
        | {c: MEASURED_DESCRIPTION.format(c.removesuffix(".measured")) for c in measured_columns}
        | (ONNX_DESCRIPTIONS if cfg.export.onnx else {}),
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
        "regret": regret(search, front, space_accuracy(cfg, search.space), _list_or_none(cfg.regret_budgets)),
        "trials": {s: states.count(s) for s in sorted(set(states))}
        | {"total": len(states), "evaluated": evaluations(study)},
        "feasible_trials": len(table.feasible_complete()),
        "pareto_size": len(front),
        "onnx_export_failures": onnx_failed,
        "unstable_measurements": len(unstable),
        "sampler_startup_trials": sampler_startup(cfg),
        "versions": _versions(),
        "host": {"cpu": cpu_model_name(), "logical_cores": os.cpu_count(), "torch_threads": cfg.torch_threads},
        "device_config": OmegaConf.to_container(cfg.device, resolve=True),
        "run_dir": str(run_dir),
    }


MEASURED_DESCRIPTION = (
    "{0} of the returned architecture as measured by what the search estimated (its table column or "
    "device; see summary.json's measured block), read once the search ended"
)

#: pareto.csv's columns for the ONNX file of each row (empty ``onnx`` and a reason in
#: ``onnx_error`` where the export or its parity check failed).
ONNX_COLUMNS = ("onnx", "onnx_max_abs_diff", "onnx_max_rel_diff", "onnx_max_scaled_diff", "onnx_error")
ONNX_DESCRIPTIONS = {
    "onnx": "the architecture as an ONNX file (relative to the run directory; opset and a dynamic batch axis, "
    "what it is in its metadata_props), with the space's seeded initial weights, untrained: for deployment "
    "tooling and latency, train it before use (hwnas-export takes a trained supernet); empty if onnx_error",
    "onnx_max_abs_diff": "largest |onnxruntime - PyTorch| over the logits, at the batch (1 or 8) and on the "
    "input (the space's example, or zeros) closer to failing",
    "onnx_max_rel_diff": "largest elementwise |onnxruntime - PyTorch| / |PyTorch| (large where a logit is near 0)",
    "onnx_max_scaled_diff": "onnx_max_abs_diff / largest |PyTorch logit|: parity passes when it is within "
    "export.parity_rtol (plus export.parity_atol)",
    "onnx_error": "why no file is offered: the export or its parity check failed",
}


def export_front(
    space: SearchSpace,
    front: list[dict[str, Any]],
    directory: Path,
    cfg: DictConfig,
    progress: bool = False,
    facts: dict[str, str] | None = None,
    objectives: tuple[str, ...] = (),
) -> int:
    """One ONNX file per Pareto architecture (:func:`nas.export.export_deployable`: explicit opset,
    dynamic batch axis, ``metadata_props``, onnx.checker, parity against PyTorch at batch 1 and
    8); returns how many failed. A failure is recorded on its row and the rest go on: a finished
    search's results must not be lost to one export. The weights are the space's seeded
    initialisation, untrained: the files carry the architecture, for deployment and latency, not a
    trained model (hwnas-export gives a trained supernet's). ``facts`` (the search's device, study)
    and each row's ``objectives`` go into every file's metadata."""
    directory.mkdir(parents=True, exist_ok=True)
    failed = 0
    for rank, row in enumerate(tqdm(front, desc="onnx export", unit="model", disable=not progress)):
        row.update(dict.fromkeys(ONNX_COLUMNS))
        arch = space.parse(row["arch"])
        path = directory / f"{rank:03d}_{arch.id}.onnx"
        metadata = onnx_facts(space, arch, SEEDED_WEIGHTS) | (facts or {})
        metadata |= {f"hwnas.objective.{name}": repr(row[name]) for name in objectives if name in row}
        try:
            model = space.build(arch).eval()
            examples = {b: space.example_input(b, arch=arch) for b in (1, 8)}
            reports = export_deployable(
                model,
                examples,
                path,
                opset=cfg.get("opset", DEFAULT_OPSET),
                metadata=metadata,
                rtol=cfg.parity_rtol,
                atol=cfg.parity_atol,
                dynamo=cfg.dynamo,
            )
        except Exception as error:  # noqa: BLE001 - one architecture's export must not lose the front
            row["onnx_error"] = f"{type(error).__name__}: {error}"[:2000]
            log.warning("ONNX export of Pareto row %d (%s) failed: %s", rank, arch.string, row["onnx_error"])
            failed += 1
            continue
        batch, report = max(reports.items(), key=lambda item: (not item[1].passed, item[1].max_scaled_diff))
        row.update(  # JSON has no inf/NaN (shapes that differ, a non-finite output): null, and onnx_error says why
            onnx_max_abs_diff=_finite_or_none(report.max_abs_diff),
            onnx_max_rel_diff=_finite_or_none(report.max_rel_diff),
            onnx_max_scaled_diff=_finite_or_none(report.max_scaled_diff),
        )
        if report.passed:
            row["onnx"] = str(path.relative_to(directory.parent))
        else:
            # Keep the file for inspection, but do not offer it as this architecture's model.
            row["onnx_error"] = (
                f"parity at batch {batch}: max abs diff {report.max_abs_diff:.3g} > atol {report.atol:g} + rtol "
                f"{report.rtol:g} x output scale {report.output_scale:.3g} on the {report.input} input "
                f"({path.name} kept)"
            )
            log.warning("ONNX file %s does not match PyTorch: %s", path, row["onnx_error"])
            failed += 1
    return failed


SEEDED_WEIGHTS = (
    "the space's seeded initial weights (seed 0), untrained: for deployment tooling and latency; train before use"
)


def onnx_facts(space: SearchSpace, arch: Any, weights: str) -> dict[str, str]:
    """What a deployable ONNX file says about itself in its ``metadata_props``."""
    channels, *size = space.input_shape_of(arch)
    return {
        "hwnas.arch": arch.string,
        "hwnas.space": space.name,
        "hwnas.space_settings": repr(space),
        "hwnas.weights": weights,
        "hwnas.input": f"{INPUT_NAME}: float32 [batch, {channels}, {', '.join(map(str, size))}]",
        "hwnas.output": f"{OUTPUT_NAME}: float32 [batch, classes]",
        "hwnas.version": _versions().get("hwnas", "unknown"),
    }


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _named(group: DictConfig, device: str) -> list[Objective]:
    """Instantiate a {name: objective config} mapping; the key is the objective's name."""
    for name, node in group.items():
        if node is None:
            # e.g. energy_mj: ${device.energy_mj} on a device with no energy meter
            raise ValueError(
                f"objective {name!r} has no source on device {device!r} (its config is null); "
                "choose a device that provides it or other objectives"
            )
    return [instantiate(node, name=str(name)) for name, node in group.items()]


def _list_or_none(node: Any) -> list[float] | None:
    return None if node is None else list(node)


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("hwnas", "torch", "optuna", "numpy", "onnx", "onnxruntime", "hydra-core"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


if __name__ == "__main__":
    main()
