"""Search strategies against the truth: regret and hypervolume on NB201's tables, OFA's wall time.

    python scripts/bench_search.py                       # NB201 oracle: 4 devices, every sampler option, 50/100/200, 5 seeds
    python scripts/bench_search.py --strategies random nsga2 tpe mutation surrogate --jobs 2   # the README's table
    python scripts/bench_search.py --devices all --seeds 0 1 2 3 4 5 6 7 8 9
    python scripts/bench_search.py --part ofa            # OFA: wall time to a whole front per device
    python scripts/bench_search.py --part ofa --budgets 1000 10000 --seeds 0   # per-evaluation overhead
    python scripts/bench_search.py --part workers --url postgresql://... --seeds 0 1 2   # 1 vs 2 vs 4 workers

Every run is ``hwnas-search``'s own path: the search config (configs/search.yaml) composed with
``space=<space> device=<device> objectives=<objectives> sampler=<strategy> seed=<seed>
budget.n_trials=<budget> storage=memory`` and run by ``nas.cli.search.search_run``, the function
behind the command, in a fresh run directory; the figures are read from its summary.json.

**NB201 oracle** (``--part oracle``): accuracy is the table's CIFAR-10 test accuracy, latency the
device's column, one evaluation one trial (repeats, isomorphs included, are answered from the
storage and do not count: ``budget.n_trials`` counts evaluations). Per run: the regret of
``nas.truth.regret`` (budgets at the 10/30/50/70/90th percentiles of the device's latency over
all cells; per budget, the best accuracy within it minus the best returned one within it; their
mean, in accuracy points) and the hypervolume ratio to the true front with the reference point
at the true front's worst accuracy and worst latency (``reference_point=``; at the table's worst
values random search already scores 0.93-0.98).

**OFA** (``--part ofa``): accuracy from Once-for-All's published predictor, latency from the
Note10 lookup tables (``device=note10``) or a predictor fitted on a shared OFA column
(``device=fitted``); the wall time of the whole command's work (search, outputs; no ONNX export),
the milliseconds it took per evaluation (OFA's objectives, a small MLP and a table sum, cost
about a millisecond: the rest is the strategy and the loop), the front's size and latency range.

**Workers** (``--part workers``): ``--workers`` (1, 2, 4) ``hwnas-search`` processes, the command
itself, started together on one new study in the PostgreSQL database ``--url`` (NB201, table
latency of raspi4, synflow computed per trial: ``--objectives``), one run at a time; the wall
time until the last worker exits (start-up included), the evaluations the study holds, how many
distinct architectures they are, and the trials pruned because another worker was evaluating the
same architecture or the budget was full.

Runs are appended to ``<out-dir>/<part>.jsonl`` as they finish; a rerun skips those done, so a
killed benchmark resumes. ``--jobs`` runs that many searches at once (each on one thread).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nas.cli import config_options  # noqa: E402
from nas.pareto import non_dominated_mask  # noqa: E402

ISSUE_DEVICES = ("raspi4", "fpga", "titan_rtx_1", "pi5_onnx")
# fitted:<column>: a predictor fitted on a shared OFA column (GPU latencies of 5,000 subnets at
# resolutions 128..224). OFA's accuracy predictor refuses resolutions under 160, so about a third
# of such a search's trials fail, with that reason (counted in the results); note10 restricts the
# space to its tables' five resolutions, all of which the predictor covers.
OFA_DEVICES = ("note10", "fitted:titan_rtx_1", "fitted:v100_1")


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from nas.cli import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose("search", overrides=overrides)


def run_search(overrides: list[str]) -> tuple[dict[str, Any], list[dict[str, str]], float]:
    """hwnas-search's search_run on the composed config; (summary, pareto rows, wall seconds)."""
    import logging
    import warnings

    import optuna

    from nas.cli.search import search_run

    logging.disable(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    cfg = compose(overrides)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary = search_run(cfg, Path(tmp))
        with (Path(tmp) / "pareto.csv").open() as f:
            pareto = list(csv.DictReader(f))
    return summary, pareto, time.perf_counter() - started


def true_front_reference(data_dir: Path, device: str) -> list[float]:
    """The true front's worst accuracy and worst latency on NB201's tables (the issue's
    hypervolume reference)."""
    with (data_dir / "nb201" / "archs.csv").open() as f:
        accuracy = [float(r["cifar10_test_acc"]) for r in csv.DictReader(f)]
    with (data_dir / "nb201" / "latency_ms.csv").open() as f:
        latency = [float(r[device]) for r in csv.DictReader(f)]
    values = np.column_stack([accuracy, latency])
    front = values[non_dominated_mask(values, ["maximize", "minimize"])]
    return [float(front[:, 0].min()), float(front[:, 1].max())]


def oracle_job(job: dict[str, Any]) -> dict[str, Any]:
    overrides = [
        f"device={job['device']}",
        "objectives=accuracy_latency",
        "metrics=none",
        f"sampler={job['strategy']}",
        f"seed={job['seed']}",
        f"budget.n_trials={job['budget']}",
        f"reference_point=[{job['reference'][0]},{job['reference'][1]}]",
        "storage=memory",
        "export.onnx=false",
        "tensorboard=false",
        "progress=false",
        f"data_dir={job['data_dir']}",
    ]
    summary, pareto, wall_s = run_search(overrides)
    return {
        **{k: job[k] for k in ("device", "strategy", "seed", "budget")},
        "regret": summary["regret"]["mean"],
        "regret_per_budget": summary["regret"]["regret"],
        "hypervolume_ratio": summary["oracle"]["hypervolume_ratio"],
        "evaluations": summary["trials"]["evaluated"],
        "trials": summary["trials"]["total"],
        "pareto_size": len(pareto),
        "wall_s": wall_s,
    }


def ofa_job(job: dict[str, Any]) -> dict[str, Any]:
    option, _, column = job["device"].partition(":")
    device = [f"device={option}"]
    if column:
        device += [f"device.name={column}", f"device.n_train={job['n_train']}"]
    overrides = [
        "space=ofa",
        *device,
        "objectives=ofa_accuracy_latency",
        "metrics=none",
        f"sampler={job['strategy']}",
        f"seed={job['seed']}",
        f"budget.n_trials={job['budget']}",
        "storage=memory",
        "export.onnx=false",
        "progress=false",
        f"data_dir={job['data_dir']}",
    ]
    summary, pareto, wall_s = run_search(overrides)
    latencies = sorted(float(r["latency_ms"]) for r in pareto)
    return {
        **{k: job[k] for k in ("device", "strategy", "seed", "budget")},
        "wall_s": wall_s,
        "search_wall_s": summary["wall_time_s"],
        "pareto_size": len(pareto),
        "front_latency_ms": [latencies[0], latencies[-1]] if latencies else None,
        "evaluations": summary["trials"]["evaluated"],
        "failed": summary["trials"].get("FAIL", 0),
    }


def _range(values: list[float] | None) -> str:
    return "none" if not values else f"{values[0]:.1f}-{values[1]:.1f}"


def run_jobs(
    jobs: list[dict[str, Any]],
    worker: Any,
    out: Path,
    n_jobs: int,
    key: tuple[str, ...] = ("device", "strategy", "seed", "budget"),
) -> list[dict[str, Any]]:
    """Each job not yet in ``out`` (JSON lines), appended as it finishes; all rows of ``out``."""
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
    seen = {tuple(r[k] for k in key) for r in done}
    todo = [j for j in jobs if tuple(j[k] for k in key) not in seen]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already in {out}; running {len(todo)}", flush=True)
    with ProcessPoolExecutor(n_jobs) as pool, out.open("a") as f:
        for row in pool.map(worker, todo):
            f.write(json.dumps(row) + "\n")
            f.flush()
            done.append(row)
            print(json.dumps({k: row[k] for k in (*key, "wall_s")} | {"regret": row.get("regret")}), flush=True)
    wanted = {tuple(j[k] for k in key) for j in jobs}
    return [r for r in done if tuple(r[k] for k in key) in wanted]


def oracle_table(rows: list[dict[str, Any]], strategies: list[str], budgets: list[int]) -> str:
    """Mean regret (and mean hypervolume ratio) per strategy and budget, over devices and seeds."""
    lines = [
        "| strategy | "
        + " | ".join(f"regret @{b}" for b in budgets)
        + " | "
        + " | ".join(f"HV @{b}" for b in budgets)
        + " | s/run @"
        + str(budgets[-1])
        + " |",
        "|---" * (2 * len(budgets) + 2) + "|",
    ]
    for strategy in strategies:
        cells, hvs = [], []
        for budget in budgets:
            sel = [r for r in rows if r["strategy"] == strategy and r["budget"] == budget]
            cells.append(f"{statistics.mean(r['regret'] for r in sel):.2f}" if sel else "-")
            hvs.append(f"{statistics.mean(r['hypervolume_ratio'] for r in sel):.3f}" if sel else "-")
        last = [r["wall_s"] for r in rows if r["strategy"] == strategy and r["budget"] == budgets[-1]]
        seconds = f"{statistics.mean(last):.1f}" if last else "-"
        lines.append(f"| {strategy} | " + " | ".join(cells) + " | " + " | ".join(hvs) + f" | {seconds} |")
    return "\n".join(lines)


def per_device_table(rows: list[dict[str, Any]], strategies: list[str], budget: int) -> str:
    devices = sorted({r["device"] for r in rows})
    lines = ["| device | " + " | ".join(strategies) + " |", "|---" * (len(strategies) + 1) + "|"]
    for device in devices:
        cells = []
        for strategy in strategies:
            sel = [r["regret"] for r in rows if (r["device"], r["strategy"], r["budget"]) == (device, strategy, budget)]
            cells.append(f"{statistics.mean(sel):.2f}" if sel else "-")
        lines.append(f"| {device} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def nb201_devices(data_dir: Path, wanted: list[str]) -> list[str]:
    if wanted != ["all"]:
        return wanted
    with (data_dir / "nb201" / "latency_ms.csv").open() as f:
        header = next(csv.reader(f))
    return [d for d in header[1:] if d in config_options("device")]


def oracle_part(args: argparse.Namespace, data_dir: Path) -> str:
    budgets = args.budgets or [50, 100, 200]
    devices = nb201_devices(data_dir, args.devices or list(ISSUE_DEVICES))
    references = {d: true_front_reference(data_dir, d) for d in devices}
    jobs = [
        {"device": d, "strategy": s, "seed": seed, "budget": b, "reference": references[d], "data_dir": str(data_dir)}
        for d in devices
        for s in args.strategies
        for b in budgets
        for seed in args.seeds
    ]
    rows = run_jobs(jobs, oracle_job, args.out_dir / "oracle.jsonl", args.jobs)
    return (
        f"NB201 oracle, {len(devices)} devices ({', '.join(devices)}), seeds {args.seeds}: mean over devices "
        "and seeds of the regret (accuracy points) and of the hypervolume ratio to the true front.\n\n"
        + oracle_table(rows, args.strategies, budgets)
        + f"\n\nRegret at {budgets[len(budgets) // 2]} evaluations per device:\n\n"
        + per_device_table(rows, args.strategies, budgets[len(budgets) // 2])
    )


def ofa_part(args: argparse.Namespace, data_dir: Path) -> str:
    budgets = args.budgets or [200]
    devices = args.devices or list(OFA_DEVICES)
    jobs = [
        {"device": d, "strategy": s, "seed": seed, "budget": b, "n_train": args.n_train, "data_dir": str(data_dir)}
        for d in devices
        for s in args.strategies
        for b in budgets
        for seed in args.seeds
    ]
    rows = run_jobs(jobs, ofa_job, args.out_dir / "ofa.jsonl", args.jobs)
    lines = [
        "| device | strategy | budget | wall s (mean, max) | ms per evaluation | front size (min) "
        "| front latency ms (first seed) | failed trials (mean) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in devices:
        for s in args.strategies:
            for b in budgets:
                sel = [r for r in rows if (r["device"], r["strategy"], r["budget"]) == (d, s, b)]
                if sel:
                    lines.append(
                        f"| {d} | {s} | {b} | {statistics.mean(r['wall_s'] for r in sel):.1f}, "
                        f"{max(r['wall_s'] for r in sel):.1f} | "
                        f"{1000 * statistics.mean(r['wall_s'] / r['evaluations'] for r in sel):.1f} | "
                        f"{min(r['pareto_size'] for r in sel)} | "
                        f"{_range(sel[0]['front_latency_ms'])} | "
                        f"{statistics.mean(r['failed'] for r in sel):.1f} |"
                    )
    return f"OFA, seeds {args.seeds}: wall time of the search and its outputs (no ONNX export).\n\n" + "\n".join(lines)


def workers_job(job: dict[str, Any]) -> dict[str, Any]:
    """``workers`` hwnas-search processes (the command itself) on one new study in PostgreSQL,
    started together; the wall time until the last exits, and what the study holds."""
    import subprocess
    import uuid

    import optuna

    from nas.search import DEDUP_KEY, REUSED_KEY, evaluations

    study_name = f"bench-workers-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable,
        "-m",
        "nas.cli.search",
        "storage=url",
        f"storage.url={job['url']}",
        f"study_name={study_name}",
        f"device={job['device']}",
        f"objectives={job['objectives']}",
        "metrics=none",
        f"sampler={job['strategy']}",
        f"seed={job['seed']}",
        f"budget.n_trials={job['budget']}",
        "export.onnx=false",
        "tensorboard=false",
        "progress=false",
        f"data_dir={job['data_dir']}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [*command, f"worker={i}", f"hydra.run.dir={tmp}/worker{i}"],
                cwd=REPO,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(job["workers"])
        ]
        errors = [p.communicate()[1] for p in processes]
        wall_s = time.perf_counter() - started
    failed = [e[-2000:] for p, e in zip(processes, errors) if p.returncode != 0]
    if failed:
        raise RuntimeError(f"a worker failed: {failed[0]}")
    study = optuna.load_study(study_name=study_name, storage=job["url"])
    trials = study.get_trials(deepcopy=False)
    evaluated = [t for t in trials if t.state.name in ("COMPLETE", "FAIL") and REUSED_KEY not in t.user_attrs]
    counted = evaluations(study)
    optuna.delete_study(study_name=study_name, storage=job["url"])
    return {
        **{k: job[k] for k in ("workers", "strategy", "seed", "budget")},
        "wall_s": wall_s,
        "evaluations": counted,
        "distinct_evaluated": len({t.user_attrs.get(DEDUP_KEY) for t in evaluated}),
        "trials": len(trials),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
    }


def workers_part(args: argparse.Namespace, data_dir: Path) -> str:
    if not args.url:
        raise SystemExit("--part workers needs --url postgresql://... (e.g. what .ci/start-postgres prints)")
    budgets = args.budgets or [200]
    jobs = [
        {
            "workers": n,
            "strategy": s,
            "seed": seed,
            "budget": b,
            "device": (args.devices or ["raspi4"])[0],
            "objectives": args.objectives,
            "url": args.url,
            "data_dir": str(data_dir),
        }
        for n in args.workers
        for s in args.strategies
        for b in budgets
        for seed in args.seeds
    ]
    # One run at a time: the workers are the parallelism measured.
    rows = run_jobs(jobs, workers_job, args.out_dir / "workers.jsonl", 1, key=("workers", "strategy", "seed", "budget"))
    lines = [
        "| strategy | budget | workers | wall s (mean) | evaluations | distinct evaluated | pruned (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in args.strategies:
        for b in budgets:
            for n in args.workers:
                sel = [r for r in rows if (r["strategy"], r["budget"], r["workers"]) == (s, b, n)]
                if sel:
                    lines.append(
                        f"| {s} | {b} | {n} | {statistics.mean(r['wall_s'] for r in sel):.1f} | "
                        f"{sorted({r['evaluations'] for r in sel})} | {sorted({r['distinct_evaluated'] for r in sel})} | "
                        f"{statistics.mean(r['pruned'] for r in sel):.1f} |"
                    )
    return (
        f"Workers on one PostgreSQL study (objectives={args.objectives}, device {jobs[0]['device']}), "
        f"seeds {args.seeds}, {os.cpu_count()} logical cores:\n\n" + "\n".join(lines)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("oracle", "ofa", "workers"), default="oracle")
    parser.add_argument(
        "--devices", nargs="+", default=None, help="NB201: names or 'all'; OFA: note10, fitted:<column>"
    )
    samplers = config_options("sampler")  # the sampler config group is the registry of strategies
    parser.add_argument("--strategies", nargs="+", choices=samplers, default=None)
    parser.add_argument("--budgets", nargs="+", type=int, default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--n-train", type=int, default=500, help="OFA device=fitted: table rows its predictor fits")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4], help="--part workers: worker counts")
    parser.add_argument("--objectives", default="synflow_latency", help="--part workers: the objectives option")
    parser.add_argument("--url", default=None, help="--part workers: a PostgreSQL URL whose database may hold studies")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench_search")
    parser.add_argument("--out-md", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    args.strategies = args.strategies or (["nsga2"] if args.part == "workers" else samplers)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    part = {"oracle": oracle_part, "ofa": ofa_part, "workers": workers_part}[args.part]
    report = part(args, args.data_dir.resolve())
    print(report)
    if args.out_md:
        args.out_md.write_text(report + "\n")


if __name__ == "__main__":
    main()
