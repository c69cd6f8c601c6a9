"""hwnas-pipeline: the closed loop, profile -> fit -> search -> re-measure -> report -> refit ... -> export.

Read top to bottom: compose the config -> instantiate the space and the device's bench (live or
a table column: one interface, :class:`latency_predictors.Bench`) -> claim the run directory
(refusing another loop's) -> :func:`nas.closed_loop.run_closed_loop` with the stages below, each
a short call of the other commands' library: hwnas-profile's selection and profile writer,
hwnas-fit's ``nas.fitting`` and run writer, hwnas-search's ``Search`` outputs and ONNX export.
Layout of the run directory::

    profile/                the device's profile (a table folder with device.json), grown each round
    rounds/0/profile.json   done-marker of the initial profile
    rounds/<k>/fit/<metric>/  hwnas-fit run directories (predictor.npz, metrics.json, ...)
    rounds/<k>/search/      the round's journal.log (its Optuna study), trials.csv, pareto.csv/json, summary.json
    rounds/<k>/{fit,search,measure,report}.json   done-markers (written atomically)
    final/                  the last front: pareto.csv/json (predicted and measured), onnx/
    summary.json            per-round predicted vs measured, hypervolumes, the final front
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import optuna
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from scipy.stats import spearmanr

from latency_predictors.measure import Bench, measure_into, open_profile
from latency_predictors.predictors import PREDICTOR_FILE, load_predictor
from nas import Constraint, Objective, PredictedObjective, Predictor, SearchSpace
from nas.cli import CONFIG_DIR
from nas.cli._explain import explained
from nas.cli._onnx import ONNX_COLUMNS, export_front, finite_or_none
from nas.cli._options import PIPELINE, check_constraints, check_options
from nas.cli.fit import write_run
from nas.cli.search import write_outputs
from nas.closed_loop import ROUNDS_DIR, Front, LoopSettings, Progress, read_marker, run_closed_loop, write_marker
from nas.fitting import ParsedTable, fit_column
from nas.results import FORMAT_VERSION, write_csv, write_json
from nas.search import Search, SearchSetupError
from nas.tables import METRICS, BenchmarkTable
from nas.tensorboard import last_steps, write_parity

log = logging.getLogger("hwnas.pipeline")

PROFILE_DIR = "profile"
CLAIM_FILE = "pipeline.json"
JOURNAL_FILE = "journal.log"


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="pipeline")
@explained
def main(cfg: DictConfig) -> float | None:
    summary = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    return summary["rounds"][-1]["hypervolume_measured"]


def run(cfg: DictConfig, run_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """The whole loop in ``run_dir`` (resumed when it holds one); ``progress`` is told of every
    durable write (see :data:`nas.closed_loop.Progress`)."""
    check_options(cfg, PIPELINE)
    check_constraints(cfg.constraints)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    torch.set_num_threads(cfg.torch_threads)
    space: SearchSpace = instantiate(cfg.space.instance)
    bench = build_bench(cfg)
    stages = Stages(cfg, space, bench, run_dir)
    claim_run_dir(run_dir, cfg, bench)
    header = {
        "format_version": FORMAT_VERSION,
        "space": space.name,
        "device": cfg.device.name,
        "device_fingerprint": bench.device().fingerprint,
        "bench": type(bench).__name__,
        "run_dir": str(run_dir),
    }
    settings = LoopSettings(
        max_rounds=cfg.max_rounds,
        hv_tolerance=float(cfg.hv_tolerance),
        reference_point=None if cfg.reference_point is None else tuple(cfg.reference_point),
    )
    summary = run_closed_loop(stages, run_dir, settings, stages.constraints, header, progress or (lambda *_: None))
    if cfg.tensorboard:
        write_round_boards(run_dir, summary)
    return summary


def write_round_boards(run_dir: Path, summary: dict[str, Any]) -> None:
    """TensorBoard (``run_dir/tensorboard``), one step per round: the front's hypervolume as
    predicted and as measured, and per measured objective the front's predictions against its
    measurements (parity image, error histogram, Spearman). Rounds already logged are skipped, so
    a resumed loop adds only its new rounds."""
    from torch.utils.tensorboard import SummaryWriter

    logdir = run_dir / "tensorboard"
    logged = last_steps(logdir).get("pipeline/hypervolume_measured", 0) if logdir.is_dir() else 0
    for entry in summary["rounds"]:
        k = int(entry["round"])
        if k <= logged:
            continue
        with SummaryWriter(log_dir=str(logdir)) as writer:
            for key in ("hypervolume_predicted", "hypervolume_measured"):
                if entry.get(key) is not None:
                    writer.add_scalar(f"pipeline/{key}", entry[key], global_step=k)
        searched = read_marker(run_dir / ROUNDS_DIR / str(k) / "search.json")
        measured_marker = read_marker(run_dir / ROUNDS_DIR / str(k) / "measure.json")
        if searched is None or measured_marker is None:
            continue
        front, values = Front.from_dict(searched), measured_marker["values"]
        for name in front.measured:
            pairs = [
                (values[r["arch"]][name], r[name])
                for r in front.rows
                if values.get(r["arch"], {}).get(name) is not None
            ]
            if len(pairs) >= 2:
                measured, predicted = (np.array(side, dtype=float) for side in zip(*pairs))
                rho = float(spearmanr(measured, predicted).statistic)
                write_parity(
                    logdir, measured, predicted, name=f"front {name}", scalars={f"front_spearman_{name}": rho}, step=k
                )


def build_bench(cfg: DictConfig) -> Bench:
    bench = cfg.device.get("bench")
    if bench is None:
        raise ValueError(
            f"device {cfg.device.name!r} has no `bench` in its config, so hwnas-pipeline cannot measure on it; "
            "use a live device (device=cpu) or a table column (device=raspi4, device=table device.name=<column>)"
        )
    return instantiate(bench)


def measured_objectives(cfg: DictConfig, bench: Bench) -> list[str]:
    """The objectives the device answers (table metrics: latency_ms, energy_mj): these are fitted,
    predicted in the search and re-measured; a metric the bench does not read is refused now."""
    names = [str(name) for name in cfg.objectives if name in METRICS]
    missing = [name for name in names if name not in bench.metrics()]
    if missing:
        raise ValueError(
            f"objectives {missing} cannot be measured on {cfg.device.name!r} (its bench reads {list(bench.metrics())}); "
            "choose objectives without them (objectives=synflow_latency) or a device that reads them"
        )
    if not names:
        raise ValueError(
            f"objectives {list(cfg.objectives)} hold no device metric ({list(METRICS)}): nothing to fit or "
            "re-measure; choose e.g. objectives=synflow_latency"
        )
    return names


def claim_run_dir(run_dir: Path, cfg: DictConfig, bench: Bench) -> None:
    """Record what loop this directory holds (pipeline.json), or refuse to resume it with other
    settings. max_rounds, hv_tolerance, export and progress may change (a resumed run may go on)."""
    claim = json.loads(
        json.dumps(
            {
                "space": OmegaConf.to_container(cfg.space.instance, resolve=True),
                "device": bench.device().to_dict(),
                "bench_settings": bench.settings(),
                "objectives": OmegaConf.to_container(cfg.objectives, resolve=True),
                "constraints": OmegaConf.to_container(cfg.constraints, resolve=True),
                "sampler": OmegaConf.to_container(cfg.sampler, resolve=True),
                "predictor": OmegaConf.to_container(cfg.predictor, resolve=True),
                "selection": OmegaConf.to_container(cfg.selection, resolve=True),
                "n_profile": cfg.n_profile,
                "n_trials": cfg.budget.n_trials,
                "n_train": cfg.fit.n_train,
                "seed": cfg.seed,
                "reference_point": OmegaConf.to_container(cfg, resolve=True)["reference_point"],
            },
            default=str,
        )
    )
    path = run_dir / CLAIM_FILE
    if path.is_file():
        held = json.loads(path.read_text())
        changed = sorted(k for k in set(held) | set(claim) if held.get(k) != claim.get(k))
        if changed:
            raise SearchSetupError(
                f"run directory {run_dir} holds a pipeline run with other {', '.join(changed)} (see {path}); "
                "resuming it would mix two loops. Choose another hydra.run.dir, or the same settings to resume"
            )
        return
    write_marker(path, claim)


class Stages:
    """hwnas-pipeline's stages (:class:`nas.closed_loop.LoopStages`), each one library call."""

    def __init__(self, cfg: DictConfig, space: SearchSpace, bench: Bench, run_dir: Path) -> None:
        self.cfg = cfg
        self.space = space
        self.bench = bench
        self.profile_dir = run_dir / PROFILE_DIR
        self.measured = measured_objectives(cfg, bench)
        self.constraints = [Constraint(metric=name, **bounds) for name, bounds in cfg.constraints.items()]
        self.space_record = {
            "name": cfg.space.name,
            "instance": OmegaConf.to_container(cfg.space.instance, resolve=True),
        }

    def _measure_into_profile(self, archs: Sequence[Any], progress: Callable[[int], None]) -> dict[str, Any]:
        with open_profile(self.profile_dir, self.bench, self.space_record) as writer:
            appended, failed = measure_into(self.bench, self.space, archs, writer, progress)
            rows = len(writer)
        return {"appended": appended, "failed": failed, "profile_rows": rows}

    def profile(self, progress: Callable[[int], None]) -> dict[str, Any]:
        """hwnas-profile's selection (configs/selection), measured into the profile."""
        selection = instantiate(self.cfg.selection)
        archs = selection(self.space, self.cfg.n_profile, np.random.default_rng(self.cfg.seed))
        log.info("profiling %d %s architectures on %s", len(archs), self.space.name, self.bench.device().name)
        return self._measure_into_profile(archs, progress)

    def fit(self, round_: int, out: Path, progress: Callable[[int], None]) -> dict[str, Any]:
        """hwnas-fit on the profile as it stands: one run directory per measured objective."""
        data = ParsedTable.parse(self.space, BenchmarkTable.load(self.profile_dir))
        figures = {}
        for count, metric in enumerate(self.measured, start=1):
            result = fit_column(
                data,
                metric,
                self.bench.device().name,
                instantiate(self.cfg.predictor),
                self.cfg.fit.n_train,
                self.cfg.seed,
            )
            (out / metric).mkdir(parents=True, exist_ok=True)
            write_run(out / metric, result, data)
            summary = result.summary()
            figures[metric] = {k: summary[k] for k in ("spearman", "mape", "n_train", "n_test", "predictor")}
            progress(count)
        return {"metrics": figures, "profile_rows": len(data.archs)}

    def predictors(self, fit_dir: Path) -> dict[str, Predictor]:
        fingerprint = self.bench.device().fingerprint
        loaded = {}
        for metric in self.measured:
            predictor = load_predictor(fit_dir / metric / PREDICTOR_FILE, self.space)  # any family, by its kind
            predictor.check_compatible(self.space.name, fingerprint)  # fitted on this device's profile
            loaded[metric] = predictor
        return loaded

    def search(self, round_: int, out: Path, seeds: Sequence[str], progress: Callable[[int], None]) -> Front:
        predictors = self.predictors(out.parent / "fit")
        truths = {metric: self.bench.truth(metric, metric, self.space) for metric in predictors}
        return search_on_predictors(self.cfg, self.space, predictors, self.constraints, out, seeds, progress, truths)

    def measure(self, archs: Sequence[str], progress: Callable[[int], None]) -> dict[str, Any]:
        """Each front architecture the profile lacks is measured into it (rows it holds are its
        measurements already); returns every front architecture's values as the profile holds them."""
        done = self._measure_into_profile([self.space.parse(a) for a in archs], progress)
        table = BenchmarkTable.load(self.profile_dir)
        known = set(table.archs)
        name = self.bench.device().name
        values = {
            arch: {m: finite_or_none(table.value(m, name, arch)) for m in self.measured}
            for arch in archs
            if arch in known
        }
        return {**done, "values": values}

    def export(self, rows: Sequence[Mapping[str, Any]], out: Path, progress: Callable[[int], None]) -> dict[str, Any]:
        """The final front: pareto.csv/json with predicted and measured values, one ONNX file per
        architecture (hwnas-search's export, with its parity check)."""
        out.mkdir(parents=True, exist_ok=True)
        rows = [dict(r) for r in rows]
        failed = (
            export_front(self.space, rows, out / "onnx", self.cfg.export, progress=self.cfg.progress)
            if self.cfg.export.onnx
            else None
        )
        columns = list(dict.fromkeys(k for r in rows for k in r if k not in ONNX_COLUMNS))
        columns += list(ONNX_COLUMNS) if self.cfg.export.onnx else []
        write_csv(out / "pareto.csv", columns, rows)
        write_json(
            out / "pareto.json",
            {
                "format_version": FORMAT_VERSION,
                "space": self.space.name,
                "device": self.cfg.device.name,
                "architectures": rows,
            },
        )
        return {"rows": len(rows), "onnx_export_failures": failed, "directory": str(out)}


def search_on_predictors(
    cfg: DictConfig,
    space: SearchSpace,
    predictors: Mapping[str, Predictor],
    constraints: Sequence[Constraint],
    out: Path,
    seeds: Sequence[str],
    progress: Callable[[int], None],
    truths: Mapping[str, Objective | None] | None = None,
) -> Front:
    """One round's search: the configured objectives, each device metric answered by its fitted
    predictor, in a journal-file study under ``out`` (resumed by a rerun), started from ``seeds``;
    hwnas-search's outputs (trials.csv, pareto.csv/json, summary.json) written there; where
    ``truths`` knows a metric's values up front (a table playing the device), the round's
    summary.json scores its front and regret against it, as a device=fitted search does.

    Once a predicted device config exists (``device=predicted`` reading hwnas-fit run
    directories), this is hwnas-search's ``build_search`` on that config."""
    out.mkdir(parents=True, exist_ok=True)
    objectives = [
        PredictedObjective(str(name), predictors[name], truth=(truths or {}).get(str(name)))
        if name in predictors
        else instantiate(node, name=str(name))
        for name, node in cfg.objectives.items()
    ]
    search = Search(
        space=space,
        objectives=objectives,
        constraints=constraints,
        sampler=instantiate(cfg.sampler),
        # A journal file: resumed like SQLite, at a tenth of its cost per trial (13 ms against 155
        # ms here); each record is one whole-line append, which a kill cannot tear.
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / JOURNAL_FILE))),
        study_name=cfg.study_name,
    )
    study = search.study()
    for string in seeds:  # the previous front first: a round starts where the last one ended
        # skip_if_exists: a resumed round does not queue again what it queued or ran before
        study.enqueue_trial(space.parse(string).params, skip_if_exists=True)
    study = search.run(
        n_trials=cfg.budget.n_trials,
        timeout_s=cfg.budget.timeout_s,
        show_progress=cfg.progress,
        callbacks=[lambda _, trial: progress(trial.number + 1)],
    )
    round_cfg = OmegaConf.merge(cfg, {"export": {"onnx": False}, "tensorboard": False})
    summary = write_outputs(round_cfg, out, search, study)
    write_json(out / "summary.json", summary)
    front = json.loads((out / "pareto.json").read_text())
    names = [o.name for o in objectives]
    rows = [{"arch": r["arch"], "trial": r["number"], **{n: r[n] for n in names}} for r in front["architectures"]]
    if not rows:
        raise RuntimeError(
            f"round search in {out} returned no feasible architecture ({summary['trials']}); loosen the "
            "constraints or give more trials (budget.n_trials)"
        )
    return Front(
        rows=tuple(rows),
        objectives=tuple(names),
        directions=tuple(o.direction.value for o in objectives),
        measured=tuple(n for n in names if n in predictors),
        trials=summary["trials"]["evaluated"],
    )


if __name__ == "__main__":
    main()
