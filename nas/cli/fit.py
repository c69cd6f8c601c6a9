"""hwnas-fit: fit one predictor for one device column of a table, score it on every other row.

Read top to bottom: compose the config -> read the table and parse every architecture string
with the space (the first bad row is named) -> keep rows with a value (the rest are counted) ->
find the architecture each value was measured on (a table that copied one measurement to every
member of an isomorphism class measured its first row: ``nas.tables.measured_rows``) ->
(few-shot only: fit source predictors on other devices' columns of a pretraining pool of rows,
which then leaves both training and test sets) -> draw the training rows with a seeded Generator
-> fit -> predict the rest -> write the predictor file, test_predictions.csv and metrics.json
into the run directory.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from nas import Architecture, ArchitectureError, IntervalPredictor, Predictor, SearchSpace, isomorphism_classes
from nas.cli import CONFIG_DIR
from nas.predictor_metrics import prediction_metrics
from nas.results import write_csv, write_json
from nas.tables import BenchmarkTable, measured_rows, pool_rows, source_pool, unseen_rows, usable_mask

log = logging.getLogger("hwnas.fit")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="fit")
def main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    torch.set_num_threads(cfg.torch_threads)
    space: SearchSpace = instantiate(cfg.space.instance)
    table = BenchmarkTable.load(cfg.table_dir)
    values = table.column(cfg.metric, cfg.device.name)  # unknown devices are named with the known ones
    archs = parse_all(space, table)
    usable = np.flatnonzero(usable_mask(values))
    skipped = len(values) - len(usable)
    if skipped:
        log.warning(
            "%d of %d rows have no usable %s[%s] value and are skipped",
            skipped,
            len(values),
            cfg.metric,
            cfg.device.name,
        )
    classes = isomorphism_classes(space, archs)
    measured_on = measured_rows(values, classes)
    copied = int((measured_on != np.arange(len(values))).sum())
    if copied:
        log.info(
            "%d rows hold a value copied from the first row of their isomorphism class: each is fitted "
            "and predicted as the architecture measured (column measured_on)",
            copied,
        )
    few_shot = pretrain_sources(cfg, space, table, archs, classes) if cfg.source_devices else None
    rows_note = f"{cfg.metric}[{cfg.device.name}] has {len(usable)} usable rows"
    if few_shot is not None:  # rows whose architecture a source was fitted on are neither trained nor tested
        usable = unseen_rows(values, classes, [few_shot.seen])
        rows_note += (
            f", {len(usable)} of them outside the few-shot pool (n_source={few_shot.n_source} "
            "took the others' architectures)"
        )
    n_train = choose_n_train(cfg.n_train, len(usable), rows_note)
    if cfg.n_train is None:
        log.info(
            "n_train=%d (n_train=null: %s; the other %d are the test set)", n_train, rows_note, len(usable) - n_train
        )
    order = np.random.default_rng(cfg.seed).permutation(usable)
    train, test = np.sort(order[:n_train]), np.sort(order[n_train:])

    device = table.device(cfg.device.name)
    extra = {"sources": few_shot.sources} if few_shot is not None else {}
    predictor = instantiate(cfg.predictor)(space=space, device_fingerprint=device.fingerprint, **extra)
    started = time.perf_counter()
    predictor.fit([archs[i] for i in measured_on[train]], values[train])
    fit_seconds = time.perf_counter() - started
    test_archs = [archs[i] for i in measured_on[test]]
    predicted = predictor.predict(test_archs)
    interval = predictor.predict_interval(test_archs) if isinstance(predictor, IntervalPredictor) else None

    predictor.save(run_dir / "predictor.npz")
    columns = ["arch", "measured", "predicted"] + (["lower", "upper"] if interval is not None else [])
    columns += ["measured_on"] if copied else []
    rows = [
        {
            "arch": archs[i].string,
            "measured": m,
            "predicted": float(p),
            **({"lower": float(interval[0][k]), "upper": float(interval[1][k])} if interval is not None else {}),
            **({"measured_on": test_archs[k].string} if copied else {}),
        }
        for k, (i, m, p) in enumerate(zip(test, values[test], predicted))
    ]
    write_csv(run_dir / "test_predictions.csv", columns, rows)
    metrics = {
        **prediction_metrics(values[test], predicted, *(interval or (None, None))),
        "n_train": int(len(train)),
        "n_train_auto": cfg.n_train is None,
        "rows_skipped": int(skipped),
        "rows_measured_on_class_first_row": copied,
        "fit_seconds": fit_seconds,
        "space": space.name,
        "device": cfg.device.name,
        "metric": cfg.metric,
        "predictor": type(predictor).__name__,
        "device_fingerprint": device.fingerprint,
        "seed": cfg.seed,
        **(few_shot.report() if few_shot is not None else {}),
    }
    write_json(run_dir / "metrics.json", metrics)
    log.info(
        "%s on %s[%s]: %s",
        type(predictor).__name__,
        cfg.device.name,
        cfg.metric,
        json.dumps({k: metrics[k] for k in ("spearman", "within_10pct", "n_train", "n_test")}),
    )
    return metrics["spearman"]


#: n_train=null trains on this share of the usable rows, at most AUTO_N_TRAIN_MAX: every published
#: column (>= 1,200 usable rows) gets the benchmarks' 900, a 100-row profile an 80/20 split.
AUTO_TRAIN_SHARE = 0.8
AUTO_N_TRAIN_MAX = 900


def choose_n_train(requested: int | None, n_usable: int, rows_note: str = "") -> int:
    """The number of training rows: ``requested``, checked to leave at least one test row, or for
    ``None`` ``min(AUTO_N_TRAIN_MAX, AUTO_TRAIN_SHARE * n_usable)`` (at least 1, at most
    ``n_usable - 1``). ``rows_note`` says where the usable rows come from, for the error."""
    note = rows_note or f"{n_usable} usable rows"
    if n_usable < 2:
        raise ValueError(
            f"{note}: a fit needs at least 2 (one to train on, one to test); "
            "measure more rows (hwnas-profile n_archs=...) or pick another column"
        )
    if requested is None:
        return min(AUTO_N_TRAIN_MAX, max(1, int(AUTO_TRAIN_SHARE * n_usable)), n_usable - 1)
    if isinstance(requested, bool) or not isinstance(requested, int) or not 0 < requested < n_usable:
        auto = choose_n_train(None, n_usable)
        raise ValueError(
            f"n_train={requested!r} does not fit: {note}, so n_train must be an integer between 1 "
            f"and {n_usable - 1} (the rest are the test set); n_train=null picks {auto} "
            f"(min({AUTO_N_TRAIN_MAX}, {AUTO_TRAIN_SHARE:.0%} of the usable rows))"
        )
    return requested


@dataclass(frozen=True)
class FewShotSources:
    """Source predictors for a few-shot fit, the rows whose architecture some source was fitted
    on (the pool, and the rows its values were measured on), rows skipped."""

    sources: dict[str, Predictor]
    seen: np.ndarray
    n_source: int
    source_metric: str
    rows_skipped: dict[str, int]

    def report(self) -> dict[str, object]:
        return {
            "source_devices": list(self.sources),
            "source_metric": self.source_metric,
            "n_source": self.n_source,
            "source_rows_skipped": self.rows_skipped,
        }


def pretrain_sources(
    cfg: DictConfig, space: SearchSpace, table: BenchmarkTable, archs: list[Architecture], classes: np.ndarray | None
) -> FewShotSources:
    """Fit ``cfg.source_predictor`` on each source column's values of a pool of ``n_source`` rows
    drawn with ``default_rng([seed, 1])`` (each as the architecture it was measured on); only
    those rows' source measurements are ever read."""
    if not str(cfg.predictor.get("_target_", "")).endswith("FewShotPredictor"):
        raise ValueError(f"source_devices={list(cfg.source_devices)} needs predictor=few_shot")
    for name in cfg.source_devices:
        if name == cfg.device.name:
            raise ValueError(
                f"source device {name!r} is the target device: a few-shot fit adapts to a device "
                "none of its sources is; remove it from source_devices"
            )
        table.column(cfg.source_metric, name)  # an unknown device is named with the known ones
    if not 0 < cfg.n_source < len(archs):
        raise ValueError(f"n_source={cfg.n_source} must be between 1 and {len(archs) - 1} (table rows)")
    pool = source_pool(len(archs), cfg.n_source, cfg.seed)
    sources, skipped, seen = {}, {}, [pool]
    for name in cfg.source_devices:
        column = table.column(cfg.source_metric, name)
        rows, measured_on = pool_rows(column, classes, pool)
        seen.append(measured_on)
        skipped[name] = len(pool) - len(rows)
        if skipped[name]:
            log.warning(
                "source %s: %d of %d pool rows have no usable %s value and are skipped",
                name,
                skipped[name],
                len(pool),
                cfg.source_metric,
            )
        fingerprint = table.device(name).fingerprint
        source = instantiate(cfg.source_predictor)(space=space, device_fingerprint=fingerprint)
        sources[name] = source.fit([archs[i] for i in measured_on], column[rows])
    seen_rows = np.unique(np.concatenate(seen))
    return FewShotSources(sources, seen_rows, int(cfg.n_source), str(cfg.source_metric), skipped)


def parse_all(space: SearchSpace, table: BenchmarkTable) -> list[Architecture]:
    """Every row's architecture; a string the space does not accept names its row and file."""
    archs = []
    for row, string in enumerate(table.archs):
        try:
            archs.append(space.parse(string))
        except ArchitectureError as error:
            raise ArchitectureError(
                f"{table.directory / 'archs.csv'} row {row} is not a {space.name} architecture: {error}"
            ) from None
    return archs


if __name__ == "__main__":
    main()
