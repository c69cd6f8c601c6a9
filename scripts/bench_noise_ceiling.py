"""How well can any predictor do on a table column? Evidence for targets a column cannot meet.

    python scripts/bench_noise_ceiling.py                                  # every nb201 column
    python scripts/bench_noise_ceiling.py --devices raspi4 pixel3 --families gbdt

A predictor maps an architecture to a number; whatever in a measured column is not a function of
the architecture (timer noise, thermal state, the phone's other apps, the order the rows were
measured in, rounding) no predictor can learn. This script estimates that part three ways, for
every device column of one space's table:

* **ceiling**: each family trained on 80% of the table's rows (about 12,500 for nb201, 14x the
  issue's 900) and scored out-of-fold on ``--folds-scored`` of five folds. A column whose ceiling
  stays below a target with independent model families (trees on features, an MLP ensemble, a
  layer sum corrected by trees)
  is not limited by the 900 rows nor by one model's bias.
* **measurement-order drift**: the ceiling's out-of-fold log residuals, as medians over blocks of
  ``--block`` consecutive benchmark indices (tables are measured in index order). Reported: the
  range of block medians, the share of residual variance the blocks explain, and ``within_10pct``
  after subtracting each row's block median, an *oracle* that needs the measurement order and so
  is no predictor: it only shows how much of the miss comes from when a row was measured.
* **classes measured once**: where the space has isomorphism classes (NB201) and a column holds
  one measurement per class copied to its members (nb201 pi5_*, pixel6a_litert), a row whose class
  was trained on is recalled, not predicted; the ceiling is also scored on the rows whose class no
  training row shares (``*_unseen_class``).
* **resolution**: distinct values and the smallest step; for coarse columns (phones in whole
  milliseconds) the Spearman of the ceiling's predictions with themselves rounded to that step,
  the rank agreement a perfect predictor would lose to rounding alone.

Writes every record to ``--out`` (JSON) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_predictors import SPACES  # scripts/ is on sys.path when a script in it runs
from scipy.stats import spearmanr

from latency_predictors import BoostedLayerSumPredictor, GradientBoostingPredictor, MLPEnsemblePredictor
from nas import SearchSpace, isomorphism_classes
from nas.predictor_metrics import prediction_metrics
from nas.tables import BenchmarkTable, measured_rows, usable_mask

REPO = Path(__file__).resolve().parents[1]
FAMILIES: dict[str, Callable[[SearchSpace], object]] = {
    # two calibration folds: the intervals are not scored here, only the centre
    "gbdt": lambda space: GradientBoostingPredictor(space, "ceiling", n_estimators=1000, calibration_folds=2),
    "mlp": lambda space: MLPEnsemblePredictor(space, "ceiling"),
    # a third family: few parameters where noise dominates (its layer sum), trees where they help
    "boosted_layer_sum": lambda space: BoostedLayerSumPredictor(space, "ceiling"),
}


def drift(index: np.ndarray, residual: np.ndarray, block: int) -> dict[str, float]:
    """Block medians of ``residual`` over consecutive ``index`` blocks (see module)."""
    blocks = index // block
    medians = {b: float(np.median(residual[blocks == b])) for b in np.unique(blocks)}
    per_row = np.array([medians[b] for b in blocks])
    corrected = residual - per_row
    return {
        "drift_block_range": max(medians.values()) - min(medians.values()),
        "drift_share_of_variance": float(1 - np.var(corrected) / np.var(residual)),
        "within_10pct_drift_removed": float(np.mean(np.abs(np.expm1(corrected)) <= 0.10)),
    }


def resolution(values: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    distinct = np.unique(values)
    step = float(np.min(np.diff(distinct))) if len(distinct) > 1 else 0.0
    coarse = step >= 0.5  # whole milliseconds and coarser
    rounded = np.round(predicted / step) * step if coarse else predicted
    return {
        "distinct_values": int(len(distinct)),
        "smallest_step": step,
        "spearman_lost_to_rounding": float(1 - spearmanr(predicted, rounded).statistic) if coarse else 0.0,
    }


def ceiling(
    space: SearchSpace, archs: list, values: np.ndarray, family: str, folds_scored: int, block: int, seed: int
) -> dict[str, object]:
    usable = np.flatnonzero(usable_mask(values))
    folds = np.array_split(np.random.default_rng(seed).permutation(usable), 5)
    predicted = np.full(len(values), np.nan)
    classes = isomorphism_classes(space, archs)
    class_unseen = np.zeros(len(values), dtype=bool)
    for held in folds[:folds_scored]:
        train = np.setdiff1d(usable, held)
        model = FAMILIES[family](space).fit([archs[i] for i in train], values[train])
        predicted[held] = model.predict([archs[i] for i in held])
        if classes is not None:
            class_unseen[held] = ~np.isin(classes[held], classes[train])
    scored = np.sort(np.concatenate(folds[:folds_scored]))
    metrics = prediction_metrics(values[scored], predicted[scored])
    residual = np.log(values[scored] / predicted[scored])
    unseen = scored[class_unseen[scored]]
    # Tables measured once per isomorphism class (nb201 pi5_*, pixel6a): rows of a trained class
    # are recalled, not predicted; the rows of classes no training row shares are the honest test.
    unseen_metrics = prediction_metrics(values[unseen], predicted[unseen]) if len(unseen) > 1 else {}
    return {
        "n_train": len(usable) - len(folds[0]),
        "n_scored": len(scored),
        "spearman": metrics["spearman"],
        "within_10pct": metrics["within_10pct"],
        "median_ape": metrics["median_ape"],
        "n_unseen_class": len(unseen),
        "spearman_unseen_class": unseen_metrics.get("spearman"),
        "within_10pct_unseen_class": unseen_metrics.get("within_10pct"),
        **drift(scored, residual, block),
        **resolution(values[usable], predicted[scored]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="nb201", choices=list(SPACES))
    parser.add_argument("--devices", nargs="*", default=None, help="only these columns (default: all)")
    parser.add_argument("--metrics", nargs="+", default=["latency_ms", "energy_mj"])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--folds-scored", type=int, default=2, help="of 5 (each costs one fit)")
    parser.add_argument("--block", type=int, default=500, help="benchmark indices per drift block")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("HWNAS_DATA", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--out", type=Path, default=Path("bench_noise_ceiling.json"))
    args = parser.parse_args()
    space = SPACES[args.space]()
    table = BenchmarkTable.load(args.data_dir / args.space)
    archs = [space.parse(s) for s in table.archs]
    classes = isomorphism_classes(space, archs)
    records = []
    for metric in [m for m in args.metrics if m in table.metrics()]:
        for device in table.devices(metric):
            if args.devices and device not in args.devices:
                continue
            for family in args.families:
                values = table.column(metric, device)
                measured = [archs[i] for i in measured_rows(values, classes)]  # per-class copies
                record = {
                    "space": args.space,
                    "metric": metric,
                    "device": device,
                    "family": family,
                    **ceiling(space, measured, values, family, args.folds_scored, args.block, args.seed),
                }
                records.append(record)
                print(json.dumps(record), flush=True)
                args.out.write_text(json.dumps(records, indent=1) + "\n")  # as it goes
    print(markdown(records))


def markdown(records: list[dict[str, object]]) -> str:
    lines = [
        "| metric | device | family | n_train | Spearman | within 10% | drift range | drift share | "
        "within 10%, drift removed (oracle) | distinct values | Spearman lost to rounding | "
        "unseen-class rows: n, Spearman, within 10% |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['metric']} | {r['device']} | {r['family']} | {r['n_train']} | {r['spearman']:.4f} | "
            f"{100 * r['within_10pct']:.1f}% | {r['drift_block_range']:.3f} | "
            f"{100 * r['drift_share_of_variance']:.0f}% | {100 * r['within_10pct_drift_removed']:.1f}% | "
            f"{r['distinct_values']} | {r['spearman_lost_to_rounding']:.4f} | {_unseen(r)} |"
        )
    return "\n".join(lines) + "\n"


def _unseen(record: dict[str, object]) -> str:
    if not record.get("n_unseen_class") or record.get("spearman_unseen_class") is None:
        return ""
    return (
        f"{record['n_unseen_class']}, {record['spearman_unseen_class']:.4f}, "
        f"{100 * record['within_10pct_unseen_class']:.1f}%"
    )


if __name__ == "__main__":
    main()
