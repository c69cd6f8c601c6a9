"""Zero-training search on the shared NB201 tables: proxies for accuracy, 50 measured rows for latency.

    python scripts/bench_zero_training.py                          # 15 devices x 5 seeds x 3 variants
    python scripts/bench_zero_training.py --devices raspi4 fpga --seeds 0

Every run is ``hwnas-search device=fitted device.name=<device> device.n_train=50
objectives=synflow_latency seed=<seed>`` (the search config composed with ``hydra.compose`` and run
by ``nas.cli.search.search_run``, the function behind the command; storage=memory, no ONNX or
TensorBoard): the latency predictor (hwnas-fit's default family) is fitted on 50 rows of the
device's column, the search sees synflow and predicted latency only, and the table's accuracy
and latency are read only to score what it returns (summary.json's ``regret`` and ``measured``).
Three variants per device and seed:

- ``free``: no constraint; its regret is issue 14's figure (target: mean <= 1.0 accuracy point);
- ``value``: latency bounded at the ``--bound-percentile`` of the device's column, applied to the
  predicted latency;
- ``upper90``: the same bound applied to the upper end of the predictor's 90% interval.

For the bounded variants the record keeps how many returned architectures break the bound when
measured. Records go to --out-json as they come (a rerun resumes); a Markdown summary to --out-md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir

from nas.cli import CONFIG_DIR, data_dir
from nas.cli.search import search_run
from nas.tables import BenchmarkTable

KEY = ("device", "seed", "variant")
VARIANTS = ("free", "value", "upper90")


def overrides(args: argparse.Namespace, device: str, seed: int, variant: str, bound_ms: float) -> list[str]:
    chosen = [
        "device=fitted",
        f"device.name={device}",
        f"device.n_train={args.n_train}",
        f"objectives={args.objectives}",
        "metrics=none",
        f"seed={seed}",
        f"budget.n_trials={args.trials}",
        "storage=memory",
        "export.onnx=false",
        "tensorboard=false",
        "progress=false",
        f"data_dir={args.data_dir}",
    ]
    if variant != "free":
        chosen += [f"+constraints.latency_ms.upper={bound_ms}", f"+constraints.latency_ms.bound={variant}"]
    return chosen


def run_one(args: argparse.Namespace, device: str, seed: int, variant: str, bound_ms: float) -> dict:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("search", overrides=overrides(args, device, seed, variant, bound_ms))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary = search_run(cfg, Path(tmp))
    measured = summary["measured"] or {}
    agreement = measured.get("objectives", {}).get("latency_ms", {})
    broken = next(iter(measured.get("constraints", {}).values()), {})
    regret = summary["regret"] or {}
    return {
        "device": device,
        "seed": seed,
        "variant": variant,
        "bound_ms": None if variant == "free" else bound_ms,
        "mean_regret": regret.get("mean"),
        "regret": regret.get("regret"),
        "budgets_ms": regret.get("budgets"),
        "pareto_size": summary["pareto_size"],
        "front_spearman": agreement.get("spearman"),
        "front_mape": agreement.get("mape"),
        "broken_when_measured": broken.get("broken_when_measured"),
        "n_measured": broken.get("n_measured", agreement.get("n_measured")),
        "wall_s": time.perf_counter() - started,
    }


def markdown(records: list[dict]) -> str:
    lines = []
    free = [r for r in records if r["variant"] == "free" and r["mean_regret"] is not None]
    if free:
        devices = sorted({r["device"] for r in free})
        per_device = {d: statistics.mean(r["mean_regret"] for r in free if r["device"] == d) for d in devices}
        per_budget = np.mean([r["regret"] for r in free], axis=0)
        lines += [
            f"**Mean regret {statistics.mean(r['mean_regret'] for r in free):.2f} accuracy points** over "
            f"{len(devices)} devices x {len({r['seed'] for r in free})} seeds ({len(free)} runs); per budget "
            "(10/30/50/70/90th percentile of the device's latency): " + " / ".join(f"{v:.2f}" for v in per_budget),
            "",
            "| device | mean regret | front Spearman (predicted vs measured) | front MAPE |",
            "|---|---|---|---|",
        ]
        for d in devices:
            rows = [r for r in free if r["device"] == d]
            rho = [r["front_spearman"] for r in rows if r["front_spearman"] is not None]
            mape = [r["front_mape"] for r in rows if r["front_mape"] is not None]
            lines.append(
                f"| {d} | {per_device[d]:.2f} | {statistics.mean(rho) if rho else float('nan'):.3f} | "
                f"{100 * statistics.mean(mape) if mape else float('nan'):.1f}% |"
            )
    for variant in ("value", "upper90"):
        rows = [r for r in records if r["variant"] == variant and r["n_measured"]]
        if rows:
            broken = sum(r["broken_when_measured"] for r in rows)
            returned = sum(r["n_measured"] for r in rows)
            lines.append(
                f"\nbound on the {'predicted value' if variant == 'value' else 'upper 90% interval end'}: "
                f"{broken} of {returned} returned architectures ({100 * broken / returned:.1f}%) break it "
                f"when measured, over {len(rows)} runs; mean regret {statistics.mean(r['mean_regret'] for r in rows):.2f}"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=data_dir())
    parser.add_argument("--devices", nargs="+", default=None, help="NB201 latency columns (default: all)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--n-train", type=int, default=50)
    parser.add_argument("--trials", type=int, default=100, help="budget.n_trials (configs/budget/default: 100)")
    parser.add_argument("--objectives", default="synflow_latency", help="a configs/objectives option")
    parser.add_argument("--bound-percentile", type=float, default=30.0)
    parser.add_argument("--out-json", type=Path, default=Path("bench_zero_training.json"))
    parser.add_argument("--out-md", type=Path, default=Path("bench_zero_training.md"))
    args = parser.parse_args()
    records = json.loads(args.out_json.read_text()) if args.out_json.exists() else []
    done = {tuple(r[k] for k in KEY) for r in records}
    table = BenchmarkTable.load(args.data_dir / "nb201")
    for device in args.devices or table.devices("latency_ms"):
        column = table.column("latency_ms", device)
        bound_ms = float(np.nanpercentile(column, args.bound_percentile))
        for seed in args.seeds:
            for variant in args.variants:
                if (device, seed, variant) in done:
                    continue
                record = run_one(args, device, seed, variant, bound_ms)
                records.append(record)
                args.out_json.write_text(json.dumps(records, indent=1) + "\n")
                shown = (*KEY, "mean_regret", "broken_when_measured", "n_measured", "wall_s")
                print(json.dumps({k: record[k] for k in shown}), flush=True)
    args.out_md.write_text(markdown(records))
    print(markdown(records))


if __name__ == "__main__":
    main()
