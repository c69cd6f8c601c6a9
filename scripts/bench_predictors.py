"""Predictor benchmark: every device column of the shared tables, training sizes, seeds, families.

    python scripts/bench_predictors.py                       # everything (hours on 2 cores)
    python scripts/bench_predictors.py --spaces nb201 --devices raspi4 gold_6226 --sizes 100 900 --seeds 0

For each space's table (nb201, fbnet, ofa), metric (latency_ms, energy_mj) and device column, for
each training size and seed: draw the training rows with numpy's Generator(seed) among rows with a
value, fit every family, predict every other row, and score it (nas.predictor_metrics). A column
that copied one measurement per isomorphism class is fitted and predicted on the architectures
actually measured (nas.tables.measured_rows). Families
are hwnas's (layer_sum, gbdt, boosted_layer_sum, mlp, gnn) and two baselines: `flops` (log-log in FLOPs) and
`onehot_boosting` (scikit-learn's gradient boosting on one-hot genes only, the plain baseline).
Writes every record to --out-json as it goes (a rerun with the same --out-json resumes, skipping
what is there) and a Markdown summary (mean over seeds) to --out-md. On several cores, split the
grid (e.g. one process per --spaces, each with its own --out-json) and fold the parts together
with --merge (records already present are kept, not duplicated).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from latency_predictors import (
    BoostedLayerSumPredictor,
    FlopsPredictor,
    GradientBoostingPredictor,
    GraphPredictor,
    LayerSumPredictor,
    MLPEnsemblePredictor,
)
from latency_predictors.predictors import UnseenLayerError
from nas import Architecture, IntervalPredictor, SearchSpace, isomorphism_classes
from nas.predictor_metrics import prediction_metrics
from nas.tables import BenchmarkTable, measured_rows, usable_mask
from search_spaces import FBNetSpace, NB201Space, OFASpace

REPO = Path(__file__).resolve().parents[1]
#: What identifies a record (and what --out-json resumes by).
KEY = ("space", "metric", "device", "n_train", "seed", "family")
SPACES: dict[str, Callable[[], SearchSpace]] = {"nb201": NB201Space, "fbnet": FBNetSpace, "ofa": OFASpace}


class OneHotBoosting:
    """The plain baseline: gradient boosting on one-hot genes, log target (not saved; not hwnas's)."""

    def __init__(self, space: SearchSpace, device_fingerprint: str, seed: int = 0) -> None:
        self.space = space
        self.model = HistGradientBoostingRegressor(max_iter=300, random_state=seed)

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> OneHotBoosting:
        self.model.fit(self.space.encoding.encode(archs), np.log(y))
        return self

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        return np.exp(self.model.predict(self.space.encoding.encode(archs)))


FAMILIES: dict[str, Callable[[SearchSpace, int], object]] = {
    "layer_sum": lambda space, seed: LayerSumPredictor(space, "bench", unseen="kind_mean"),
    "gbdt": lambda space, seed: GradientBoostingPredictor(space, "bench", seed=seed),
    "boosted_layer_sum": lambda space, seed: BoostedLayerSumPredictor(space, "bench", seed=seed),
    "mlp": lambda space, seed: MLPEnsemblePredictor(space, "bench", seed=seed),
    "gnn": lambda space, seed: GraphPredictor(space, "bench", seed=seed),
    "flops": lambda space, seed: FlopsPredictor(space, "bench"),
    "onehot_boosting": lambda space, seed: OneHotBoosting(space, "bench", seed=seed),
}


def score(
    family: str,
    space: SearchSpace,
    archs: list[Architecture],
    values: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    seed: int,
) -> dict[str, object]:
    """Fit ``family`` on ``train`` rows and score it (with interval coverage where it gives one)
    on ``test`` rows; a layer-sum model facing layer keys no training network had is reported
    with its error, not scored."""
    started = time.perf_counter()
    predictor = FAMILIES[family](space, seed)
    test_archs = [archs[i] for i in test]
    try:  # a layer sum meets unseen keys on test rows, or (boosted_layer_sum) on its held-out folds
        predictor.fit([archs[i] for i in train], values[train])
        fit_s = time.perf_counter() - started
        predicted = predictor.predict(test_archs)
    except UnseenLayerError as error:
        fit_s = time.perf_counter() - started
        return {"fit_seconds": fit_s, "spearman": None, "within_10pct": None, "error": str(error)[:200]}
    interval = predictor.predict_interval(test_archs) if isinstance(predictor, IntervalPredictor) else (None, None)
    return {"fit_seconds": fit_s, **prediction_metrics(values[test], predicted, *interval)}


def run(args: argparse.Namespace) -> list[dict[str, object]]:
    """Every record, resuming from ``args.out_json`` (records already there are kept, not redone)
    and rewriting it after each new record."""
    records: list[dict[str, object]] = json.loads(args.out_json.read_text()) if args.out_json.exists() else []
    done = {tuple(r[k] for k in KEY) for r in records}
    for part in args.merge:
        for record in json.loads(part.read_text()):
            if tuple(record[k] for k in KEY) not in done:
                records.append(record)
                done.add(tuple(record[k] for k in KEY))
    if args.merge:
        args.out_json.write_text(json.dumps(records, indent=1) + "\n")
    for space_name in args.spaces:
        space = SPACES[space_name]()
        table = BenchmarkTable.load(args.data_dir / space_name)
        archs = [space.parse(s) for s in table.archs]
        classes = isomorphism_classes(space, archs)
        for metric in [m for m in ("latency_ms", "energy_mj") if m in table.metrics()]:
            for device in table.devices(metric):
                if args.devices and device not in args.devices:
                    continue
                values = table.column(metric, device)
                usable = np.flatnonzero(usable_mask(values))
                measured = [archs[i] for i in measured_rows(values, classes)]
                for size in args.sizes:
                    for seed in args.seeds:
                        order = np.random.default_rng(seed).permutation(usable)
                        train, test = order[:size], order[size:]
                        for family in args.families:
                            key = (space_name, metric, device, size, seed, family)
                            if key in done:
                                continue
                            record = {
                                **dict(zip(KEY, key)),
                                **score(family, space, measured, values, train, test, seed),
                            }
                            records.append(record)
                            args.out_json.write_text(json.dumps(records, indent=1) + "\n")
                            print(
                                json.dumps({k: record.get(k) for k in (*KEY, "spearman", "within_10pct", "coverage")}),
                                flush=True,
                            )
    return records


def markdown(records: list[dict[str, object]]) -> str:
    """Mean Spearman / within +/-10% over seeds, one row per (space, metric, device, size), sorted;
    nan where a family gave no score (constant predictions, unseen layers)."""
    groups: dict[tuple, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        key = (r["space"], r["metric"], r["device"], r["n_train"])
        scores = tuple(float("nan") if r[m] is None else float(r[m]) for m in ("spearman", "within_10pct"))
        groups[key][r["family"]].append(scores)
    present = {r["family"] for r in records}
    families = [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))
    lines = [
        "| space | metric | device | n_train | " + " | ".join(families) + " |",
        "|---|---|---|---|" + "---|" * len(families),
    ]
    for key, by_family in sorted(groups.items()):
        cells = []
        for family in families:
            scores = by_family.get(family, [])
            if not scores:
                cells.append("")
                continue
            rho = statistics.mean(s for s, _ in scores)
            within = statistics.mean(w for _, w in scores)
            cells.append(f"{rho:.3f} / {100 * within:.1f}%")
        lines.append(f"| {' | '.join(map(str, key))} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def curve_markdown(records: list[dict[str, object]]) -> str:
    """Per space, mean Spearman over its complete columns (every size, seed and family present in
    the records) and seeds, one row per training size: the learning curves the README shows."""
    cells: dict[tuple, set] = defaultdict(set)
    for r in records:
        cells[(r["space"], r["metric"], r["device"])].add((r["n_train"], r["seed"], r["family"]))
    full = set().union(*cells.values()) if cells else set()
    families = [f for f in FAMILIES if any(c[2] == f for c in full)]
    lines = []
    for space in SPACES:
        columns = sorted(c for c in cells if c[0] == space and cells[c] >= full)
        if not columns:
            continue
        names = ", ".join(d if m == "latency_ms" else f"energy {d}" for _, m, d in columns)
        lines += [
            f"{space}, {len(columns)} complete columns ({names}):",
            "",
            "| n_train | " + " | ".join(families) + " |",
            "|---|" + "---|" * len(families),
        ]
        for size in sorted({c[0] for c in full}):
            row = []
            for family in families:
                per_column = []
                for column in columns:
                    scores = [
                        r["spearman"]
                        for r in records
                        if (r["space"], r["metric"], r["device"]) == column
                        and r["n_train"] == size
                        and r["family"] == family
                        and r["spearman"] is not None
                    ]
                    if scores:
                        per_column.append(statistics.mean(scores))
                row.append(f"{statistics.mean(per_column):.3f}" if per_column else "n/a")
            lines.append(f"| {size} | " + " | ".join(row) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    parser.add_argument("--devices", nargs="*", default=None, help="only these device columns")
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 20, 50, 100, 900])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("HWNAS_DATA", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--out-json", type=Path, default=Path("bench_predictors.json"))
    parser.add_argument("--out-md", type=Path, default=Path("bench_predictors.md"))
    parser.add_argument("--merge", nargs="*", type=Path, default=[], help="record files of other runs to fold in")
    args = parser.parse_args()
    records = run(args)
    args.out_md.write_text(markdown(records) + "\n" + curve_markdown(records))
    print(markdown(records))
    print(curve_markdown(records))


if __name__ == "__main__":
    main()
