"""hwnas-fit: fit one predictor for one device column of a table, score it on every other row.

Read top to bottom: compose the config -> read the table and parse every architecture string
with the space (the first bad row is named) -> keep rows with a value (the rest are counted) ->
draw the training rows with a seeded Generator -> fit -> predict the rest -> write the predictor
file, test_predictions.csv and metrics.json into the run directory.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from nas import Architecture, ArchitectureError, Device, SearchSpace
from nas.cli import CONFIG_DIR
from nas.predictor_metrics import prediction_metrics
from nas.results import write_csv, write_json
from nas.tables import BenchmarkTable

log = logging.getLogger("hwnas.fit")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="fit")
def main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    torch.set_num_threads(cfg.torch_threads)
    space: SearchSpace = instantiate(cfg.space.instance)
    table = BenchmarkTable.load(cfg.table_dir)
    values = table.column(cfg.metric, cfg.device.name)  # unknown devices are named with the known ones
    archs = parse_all(space, table)
    usable = np.flatnonzero(np.isfinite(values) & (values > 0))
    skipped = len(values) - len(usable)
    if skipped:
        log.warning("%d of %d rows have no usable %s[%s] value and are skipped", skipped, len(values),
                    cfg.metric, cfg.device.name)  # fmt: skip
    if not 0 < cfg.n_train < len(usable):
        raise ValueError(f"n_train={cfg.n_train} must be between 1 and {len(usable) - 1} (usable rows) for a test set")
    order = np.random.default_rng(cfg.seed).permutation(usable)
    train, test = np.sort(order[: cfg.n_train]), np.sort(order[cfg.n_train :])

    device = device_of(Path(cfg.table_dir), cfg.device.name)
    predictor = instantiate(cfg.predictor)(space=space, device_fingerprint=device.fingerprint)
    started = time.perf_counter()
    predictor.fit([archs[i] for i in train], values[train])
    fit_seconds = time.perf_counter() - started
    test_archs = [archs[i] for i in test]
    predicted = predictor.predict(test_archs)
    interval = predictor.predict_interval(test_archs) if hasattr(predictor, "predict_interval") else None

    predictor.save(run_dir / "predictor.npz")
    columns = ["arch", "measured", "predicted"] + (["lower", "upper"] if interval is not None else [])
    rows = [
        {"arch": a.string, "measured": m, "predicted": float(p),
         **({"lower": float(interval[0][k]), "upper": float(interval[1][k])} if interval is not None else {})}
        for k, (a, m, p) in enumerate(zip(test_archs, values[test], predicted))
    ]  # fmt: skip
    write_csv(run_dir / "test_predictions.csv", columns, rows)
    metrics = {
        **prediction_metrics(values[test], predicted, *(interval or (None, None))),
        "n_train": int(len(train)),
        "rows_skipped": int(skipped),
        "fit_seconds": fit_seconds,
        "space": space.name,
        "device": cfg.device.name,
        "metric": cfg.metric,
        "predictor": type(predictor).__name__,
        "device_fingerprint": device.fingerprint,
        "seed": cfg.seed,
    }
    write_json(run_dir / "metrics.json", metrics)
    log.info("%s on %s[%s]: %s", type(predictor).__name__, cfg.device.name, cfg.metric,
             json.dumps({k: metrics[k] for k in ("spearman", "within_10pct", "n_train", "n_test")}))  # fmt: skip
    return metrics["spearman"]


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


def device_of(table_dir: Path, column: str) -> Device:
    """The device a column was measured on: a profile's own (device.json), else the table column."""
    manifest = table_dir / "device.json"
    if manifest.is_file():
        recorded = json.loads(manifest.read_text()).get("device", {})
        if recorded.get("name") == column:
            fields = {k: v for k, v in recorded.items() if k != "fingerprint"}
            return Device(**fields)
    return Device(name=column, source=f"table:{table_dir.resolve().name}")


if __name__ == "__main__":
    main()
