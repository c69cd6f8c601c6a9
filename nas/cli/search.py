"""hwnas-search: one multi-objective search, one Pareto front, everything in the run directory.

Read top to bottom: compose the config -> instantiate space, objectives, metrics, constraints,
sampler and storage from their ``_target_`` -> run the Optuna search -> write trials.csv,
pareto.csv/json, summary.json, TensorBoard events and one ONNX file per Pareto architecture.
"""

from __future__ import annotations

import logging
import os
import platform
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

from latency_predictors import cpu_model_name
from nas import Constraint, Objective
from nas.cli import CONFIG_DIR
from nas.export import assert_parity, export_onnx
from nas.results import (
    FORMAT_VERSION,
    hypervolume_history,
    hypervolume_summary,
    oracle_summary,
    pareto_rows,
    trials_table,
    write_csv,
    write_json,
)
from nas.search import Search
from nas.tensorboard import write_tensorboard

log = logging.getLogger("hwnas.search")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="search")
def main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    _route_optuna_logs()
    started = time.time()
    # PyTorch work between measurements (building, proxies, FLOPs) would otherwise spin threads
    # next to the latency measurement; one fixed setting also makes runs comparable.
    torch.set_num_threads(cfg.torch_threads)

    space = instantiate(cfg.space.instance)
    objectives = _named(cfg.objectives)
    metrics = _named(cfg.metrics)
    constraints = [Constraint(metric=name, **bounds) for name, bounds in cfg.constraints.items()]
    search = Search(
        space=space,
        objectives=objectives,
        metrics=metrics,
        constraints=constraints,
        sampler=instantiate(cfg.sampler),
        storage=instantiate(cfg.storage),
        study_name=cfg.study_name,
    )
    log.info("space %s, device %s, objectives %s, metrics %s, constraints %s",
             space.name, cfg.device.name, [o.name for o in objectives], [m.name for m in metrics],
             [c.name for c in constraints])  # fmt: skip

    study = search.run(n_trials=cfg.budget.n_trials, timeout_s=cfg.budget.timeout_s,
                       show_progress=cfg.progress)  # fmt: skip

    table = trials_table(search, study)
    front = pareto_rows(table)
    write_csv(run_dir / "trials.csv", table.columns, table.rows)
    pareto_columns = table.columns
    if cfg.export.onnx:
        _export_front(space, front, run_dir / "onnx", cfg.export)
        pareto_columns += ("onnx", "onnx_max_abs_diff", "onnx_max_rel_diff")
    write_csv(run_dir / "pareto.csv", pareto_columns, front)
    hv = hypervolume_summary(table, cfg.reference_point and list(cfg.reference_point))
    reference = list(hv["reference_point"].values()) if hv["hypervolume"] is not None else None
    oracle = oracle_summary(table, search, cfg.regret_budgets and list(cfg.regret_budgets), reference)
    write_json(run_dir / "pareto.json", {
        "format_version": FORMAT_VERSION, "space": space.name, "device": cfg.device.name,
        "objectives": dict(zip(table.objectives, table.directions)), "architectures": front,
    })  # fmt: skip
    if cfg.tensorboard:
        write_tensorboard(
            run_dir / "tensorboard", table, front,
            hypervolume_history(table, reference) if reference else [],
            params_by_trial={t.number: t.params for t in study.get_trials(deepcopy=False)},
        )  # fmt: skip
    states = [r["state"] for r in table.rows]
    summary = {
        "format_version": FORMAT_VERSION,
        "study_name": cfg.study_name,
        "space": space.name,
        "device": cfg.device.name,
        "objectives": dict(zip(table.objectives, table.directions)),
        "constraints": [c.name for c in constraints],
        **hv,
        "oracle": oracle,
        "trials": {s: states.count(s) for s in sorted(set(states))} | {"total": len(states)},
        "feasible_trials": len(table.feasible_complete()),
        "pareto_size": len(front),
        "wall_time_s": time.time() - started,
        "versions": _versions(),
        "host": {"cpu": cpu_model_name(), "logical_cores": os.cpu_count(), "torch_threads": cfg.torch_threads},
        "device_config": OmegaConf.to_container(cfg.device, resolve=True),
        "run_dir": str(run_dir),
    }
    write_json(run_dir / "summary.json", summary)
    log.info("Pareto set of %d architectures (hypervolume %s) written to %s",
             len(front), hv["hypervolume"], run_dir)  # fmt: skip
    return hv["hypervolume"]


def _named(group: DictConfig) -> list[Objective]:
    """Instantiate a {name: objective config} mapping; the key is the objective's name."""
    return [instantiate(node, name=str(name)) for name, node in group.items() if node is not None]


def _export_front(space: Any, front: list[dict[str, Any]], directory: Path, cfg: DictConfig) -> None:
    """One ONNX file per Pareto architecture, checked by onnx.checker and against PyTorch."""
    directory.mkdir(parents=True, exist_ok=True)
    for rank, row in enumerate(front):
        arch = space.parse(row["arch"])
        model = space.build(arch).eval()
        example = space.example_input(1)
        path = export_onnx(model, example, directory / f"{rank:03d}_{arch.id}.onnx", dynamo=cfg.dynamo)
        report = assert_parity(model, example, path, rtol=cfg.parity_rtol, atol=cfg.parity_atol)
        row["onnx"] = str(path.relative_to(directory.parent))
        row["onnx_max_abs_diff"] = report.max_abs_diff
        row["onnx_max_rel_diff"] = report.max_rel_diff


def _route_optuna_logs() -> None:
    # Optuna logs through its own stderr handler; route it into Hydra's run-directory log instead.
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


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
