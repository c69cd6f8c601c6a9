"""Predictor benchmark: every device column of the shared tables, training sizes, seeds, families.

    python scripts/bench_predictors.py                       # everything (hours on 2 cores)
    python scripts/bench_predictors.py --spaces nb201 --devices raspi4 gold_6226 --sizes 100 900 --seeds 0

For each space's table (configs/space: nb201, fbnet, ofa), metric (latency_ms, energy_mj) and
device column, for each training size and seed, every family is fitted exactly as
``hwnas-fit space=<space> device=<column> predictor=<family> n_train=<size> seed=<seed>`` fits it:
the configuration is hwnas-fit's own, composed with those overrides (configs/fit.yaml; torch on
its ``torch_threads``), and the fit is the same library call (``nas.fitting.fit_column``: the
rows are drawn by ``nas.fit_data.FitSplit``, a column that copied one measurement per isomorphism
class is fitted and predicted on the architectures actually measured), scored on every other row
with a value (``nas.predictor_metrics``). A family is any option of configs/predictor; the grid's
are hwnas's (layer_sum, gbdt, boosted_layer_sum, mlp, gnn) and two baselines: ``flops`` (log-log
in FLOPs) and ``onehot_boosting`` (scikit-learn's gradient boosting on one-hot genes only, the
plain baseline). Writes every record to --out-json as it goes (a rerun with the same --out-json
resumes, skipping what is there) and a Markdown summary (mean over seeds) to --out-md. On several
cores, split the grid (e.g. one process per --spaces, each with its own --out-json) and fold the
parts together with --merge (records already present are kept, not duplicated).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch
from hydra.utils import instantiate

from latency_predictors.predictors import UnseenLayerError
from nas.cli import config_options
from nas.cli.fit import compose_fit
from nas.fitting import ParsedTable, PredictorFactory, fit_column
from nas.tables import BenchmarkTable

REPO = Path(__file__).resolve().parents[1]
#: What identifies a record (and what --out-json resumes by).
KEY = ("space", "metric", "device", "n_train", "seed", "family")
#: The grid's families (configs/predictor options), in the README tables' column order.
FAMILIES = ("layer_sum", "gbdt", "boosted_layer_sum", "mlp", "gnn", "flops", "onehot_boosting")


def score(data: ParsedTable, metric: str, device: str, predictor: PredictorFactory, size: int, seed: int) -> dict:
    """Fit on ``size`` drawn rows and score (with interval coverage where the family gives one);
    a layer-sum model facing layer keys no training network had is reported with its error."""
    started = time.perf_counter()
    try:  # a layer sum meets unseen keys on test rows, or (boosted_layer_sum) on its held-out folds
        result = fit_column(data, metric, device, predictor, size, seed)
    except UnseenLayerError as error:
        fit_s = time.perf_counter() - started
        return {"fit_seconds": fit_s, "spearman": None, "within_10pct": None, "error": str(error)[:200]}
    return {"fit_seconds": result.fit_seconds, **result.metrics}


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
        base = [f"space={space_name}", f"data_dir={args.data_dir}"]
        cfg = compose_fit(*base)
        torch.set_num_threads(cfg.torch_threads)  # as hwnas-fit runs (fit.yaml: 1)
        data: ParsedTable | None = None  # parsed on the first record to compute
        factories: dict[tuple[str, int], PredictorFactory] = {}
        table = BenchmarkTable.load(cfg.table_dir)
        for metric in [m for m in ("latency_ms", "energy_mj") if m in table.metrics()]:
            for device in table.devices(metric):
                if args.devices and device not in args.devices:
                    continue
                for size in args.sizes:
                    for seed in args.seeds:
                        for family in args.families:
                            key = (space_name, metric, device, size, seed, family)
                            if key in done:
                                continue
                            if data is None:
                                data = ParsedTable.parse(instantiate(cfg.space.instance), table)
                            if (family, seed) not in factories:
                                composed = compose_fit(*base, f"predictor={family}", f"seed={seed}")
                                factories[family, seed] = instantiate(composed.predictor)
                            record = {
                                **dict(zip(KEY, key)),
                                **score(data, metric, device, factories[family, seed], size, seed),
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
    run = {c[2] for c in full}
    families = [f for f in FAMILIES if f in run] + sorted(run - set(FAMILIES))
    lines = []
    for space in dict.fromkeys(r["space"] for r in records):  # in the order they were run
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
    parser.add_argument("--spaces", nargs="+", default=config_options("space"), choices=config_options("space"))
    parser.add_argument("--devices", nargs="*", default=None, help="only these device columns")
    parser.add_argument("--sizes", nargs="+", type=int, default=[10, 20, 50, 100, 900])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--families", nargs="+", default=list(FAMILIES), choices=config_options("predictor"), help="configs/predictor"
    )
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
