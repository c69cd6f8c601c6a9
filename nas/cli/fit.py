"""hwnas-fit: fit one predictor for one device column of a table, score it on every other row.

Compose the config -> instantiate the space, the table and the predictor factories -> one
library call (``nas.fitting``: parse every row with the space, for a few-shot fit pretrain the
source predictors on a pool of rows, draw the training rows with ``default_rng(seed)``, fit,
predict every other row; the row rules are ``nas.fit_data``'s, the same the benchmarks use) ->
write the predictor file, test_predictions.csv and metrics.json into the run directory.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from latency_predictors.predictors import PREDICTOR_FILE, PerDeploymentPredictor
from nas import DeployedSpace, SearchSpace
from nas.cli import CONFIG_DIR
from nas.cli._explain import explained
from nas.cli._options import FIT, OptionError, check_options
from nas.cli._space import search_space
from nas.fitting import FitResult, ParsedTable, fit_column, fit_sources
from nas.results import write_csv, write_json
from nas.tables import BenchmarkTable
from nas.tensorboard import write_parity

log = logging.getLogger("hwnas.fit")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="fit")
@explained
def main(cfg: DictConfig) -> float | None:
    check_options(cfg, FIT)
    torch.set_num_threads(cfg.torch_threads)
    space = search_space(cfg)
    predictor = instantiate(cfg.predictor)
    # judged by the class, so any option file naming PerDeploymentPredictor counts as one
    if isinstance(space, DeployedSpace) and not issubclass(getattr(predictor, "func", object), PerDeploymentPredictor):
        log.warning(
            "a deployed table fitted by one %s across deployments: predictor=per_deployment (one per deployment, "
            "few-shot from the others) predicted held-out deployments better (README, Predictors across deployments)",
            HydraConfig.get().runtime.choices.get("predictor"),
        )
    data = ParsedTable.parse(space, BenchmarkTable.load(cfg.table_dir))
    sources = None
    if cfg.source_devices:
        source_data = _source_table(cfg, space, data)
        columns = _source_columns(cfg, source_data)
        sources = fit_sources(source_data, columns, instantiate(cfg.few_shot.source), cfg.n_source, cfg.seed)
    result = fit_column(data, cfg.metric, cfg.device.name, predictor, cfg.n_train, cfg.seed, sources)
    write_run(Path(HydraConfig.get().runtime.output_dir), result, data)
    return result.metrics["spearman"]


def _source_table(cfg: DictConfig, space: SearchSpace, data: ParsedTable) -> ParsedTable:
    """The table the source columns are read from: the target's own unless ``source_table_dir``
    names another (a profile of this machine taking the published devices as sources)."""
    if Path(cfg.source_table_dir).resolve() == Path(data.table.directory).resolve():
        return data
    log.info("source devices from %s, the target %s from %s", cfg.source_table_dir, cfg.device.name, cfg.table_dir)
    return ParsedTable.parse(space, BenchmarkTable.load(cfg.source_table_dir))


def _source_columns(cfg: DictConfig, source_data: ParsedTable) -> dict[str, tuple[str, str]]:
    """``source_devices`` x ``source_metric`` as ``name -> (metric, device)``. Devices: the names
    given, or for ``all`` every column of the source table but one named like the target device
    (in the target's own table, its own column; in another, the same device measured there).
    Metrics: one (sources named by device), or a list (``[energy_mj,latency_ms]``: every such
    column that exists, named ``metric:device``, as scripts/bench_few_shot.py names them)."""
    metrics = [cfg.source_metric] if isinstance(cfg.source_metric, str) else [str(m) for m in cfg.source_metric]
    names = cfg.source_devices
    if isinstance(names, str):
        if names != "all":
            raise OptionError(
                f"source_devices={names!r}: give a list of device columns ('source_devices=[{names}]') or all"
            )
        each = {m: [d for d in source_data.table.devices(m) if d != cfg.device.name] for m in metrics}
    else:
        names = [str(name) for name in names]
        if len(metrics) == 1:  # an unknown name is named by fit_sources, with the known ones
            return {name: (metrics[0], name) for name in names}
        each = {m: [d for d in names if d in source_data.table.devices(m)] for m in metrics}
        missing = [d for d in names if not any(d in devices for devices in each.values())]
        if missing:
            raise OptionError(
                f"source_devices {missing} have no {' or '.join(metrics)} column in {source_data.table.directory}"
            )
    if len(metrics) == 1:
        return {name: (metrics[0], name) for name in each[metrics[0]]}
    return {f"{m}:{d}": (m, d) for m in metrics for d in each[m]}


def write_run(run_dir: Path, result: FitResult, data: ParsedTable) -> None:
    """predictor.npz, test_predictions.csv (test rows in table order; ``measured_on`` when the
    column copied values per isomorphism class), metrics.json, and TensorBoard's parity image,
    error histogram and metrics (tensorboard/)."""
    result.predictor.save(run_dir / PREDICTOR_FILE)
    split, interval = result.split, result.interval
    copied = split.rows_copied > 0
    columns = ["arch", "measured", "predicted"] + (["lower", "upper"] if interval is not None else [])
    columns += ["measured_on"] if copied else []
    rows = [
        {
            "arch": data.archs[split.test[k]].string,
            "measured": float(result.measured[k]),
            "predicted": float(result.predicted[k]),
            **({"lower": float(interval[0][k]), "upper": float(interval[1][k])} if interval is not None else {}),
            **({"measured_on": data.archs[split.measured_on[split.test[k]]].string} if copied else {}),
        }
        for k in np.argsort(split.test)
    ]
    write_csv(run_dir / "test_predictions.csv", columns, rows)
    # The table too, so a search on this predictor (device=predicted) can score its front there.
    metrics = result.summary() | {"table_dir": str(Path(data.table.directory).resolve())}
    write_json(run_dir / "metrics.json", metrics)
    numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    write_parity(
        run_dir / "tensorboard",
        result.measured,
        result.predicted,
        name=f"{result.metric}[{result.device}]",
        scalars=numbers,
    )
    log.info(
        "%s on %s[%s]: %s",
        metrics["predictor"],
        result.device,
        result.metric,
        json.dumps({k: metrics[k] for k in ("spearman", "within_10pct", "n_train", "n_test")}),
    )


def compose_fit(*overrides: str) -> DictConfig:
    """hwnas-fit's configuration with ``overrides`` (``space=fbnet``, ``predictor=gbdt``,
    ``seed=1``, ...), composed as its command line would: for scripts that fit the same way."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("fit", overrides=list(overrides))


if __name__ == "__main__":
    main()
