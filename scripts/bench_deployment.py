"""Searching the deployment with the network, against searching each fixed deployment.

    python scripts/bench_deployment.py                                   # nb201 and fbnet, seeds 0 1, 30 measurements
    python scripts/bench_deployment.py --spaces nb201 --seeds 0 1 2 --budget 40
    python scripts/bench_deployment.py --runtimes onnxruntime torch_eager torch_compile   # compile: 10-40 s a network

Every run is ``hwnas-search``'s own path (``nas.cli.search.search_run`` on the composed search
config): ``deployment=cpu_stack`` with the deployment genes narrowed to ``--runtimes``,
``--graph-optimization``, ``--precision``, ``--threads`` and batch 1, latency measured live on this
CPU (warm-up 5, median of 20), ``budget.n_trials=--budget`` measurements, ``storage=memory``,
``sampler=surrogate`` (hwnas's default for accuracy_latency), no ONNX export.
Objectives: the space's published accuracy against latency_ms (``objectives=accuracy_latency``)
where its config names an accuracy column (nb201: CIFAR-10), else synflow against latency_ms
(fbnet, whose table has no accuracy).

Per space and seed: one *joint* search over every (network, deployment), and one search per fixed
deployment (the same config with each gene narrowed to one value), each with the same number of
measurements. Each run's front is scored by hypervolume under one reference point per space and
seed (every run's front pooled, worst values pushed out by 10% of the range: ``nas.pareto.
default_reference``). Reported: the joint front's hypervolume, the best fixed deployment's (which
one), the default deployment's (onnxruntime, all optimisations, fp32, 1 thread), the pooled
fronts of every fixed search (which spent one budget per deployment), the mean over the fixed
deployments (what picking one blindly gives), the ratios, and the share of the joint front's
members that use a non-default deployment.

Runs are appended to ``<out>/runs.jsonl`` as they finish; a rerun skips those done (a killed
benchmark resumes). Runs go one at a time: two live measurements at once would time each other.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nas.cli import config_options  # noqa: E402
from nas.pareto import default_reference, hypervolume  # noqa: E402

GENES = "deployment.deployment.genes"
#: The deployment a live search without deployment genes measures (configs/device/cpu.yaml).
DEFAULT = {"runtime": "onnxruntime", "graph_optimization": "all", "precision": "fp32", "threads": 1}


def compose(overrides: list[str]) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from nas.cli import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose("search", overrides=overrides)


def deployments(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every distinct fixed deployment of the narrowed genes (a runtime that does not read a gene
    appears once, not once per value)."""
    seen, fixed = set(), []
    for runtime, level, precision, threads in itertools.product(
        args.runtimes, args.graph_optimization, args.precision, args.threads
    ):
        onnx = runtime == "onnxruntime"
        deployment = {
            "runtime": runtime,
            "graph_optimization": level if onnx else args.graph_optimization[0],
            "precision": precision if onnx else args.precision[0],
            "threads": threads,
        }
        key = tuple(deployment.values())
        if key not in seen:
            seen.add(key)
            fixed.append(deployment)
    return fixed


def objectives_of(space: str) -> str:
    """The space's published accuracy against latency where its table has one (its config's
    accuracy_column), else synflow against latency."""
    return "accuracy_latency" if compose([f"space={space}"]).space.get("accuracy_column") else "synflow_latency"


def overrides_of(space: str, seed: int, genes: dict[str, list[Any]], args: argparse.Namespace) -> list[str]:
    objectives = objectives_of(space)
    takes = [f"~deployment.deployment.takes.{r}" for r in ("torch_eager", "torch_compile") if r not in genes["runtime"]]
    return [
        f"space={space}",
        "deployment=cpu_stack",
        *[f"{GENES}.{name}=[{','.join(map(str, values))}]" for name, values in genes.items()],
        f"{GENES}.batch_size=[1]",
        *takes,
        f"objectives={objectives}",
        "sampler=surrogate",
        "metrics=none",
        f"seed={seed}",
        f"budget.n_trials={args.budget}",
        "storage=memory",
        "export.onnx=false",
        "tensorboard=false",
        "report=false",
        "progress=false",
        f"data_dir={args.data_dir}",
    ]


def run(job: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """One search; its front's objective values and deployments, its wall time."""
    import logging
    import warnings

    import optuna

    from nas.cli.search import search_run

    logging.disable(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    cfg = compose(overrides_of(job["space"], job["seed"], job["genes"], args))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary = search_run(cfg, Path(tmp))
        with (Path(tmp) / "pareto.csv").open() as f:
            front = list(csv.DictReader(f))
    score = next(name for name in summary["objectives"] if name != "latency_ms")
    return {
        **job,
        "front": [[float(r[score]), float(r["latency_ms"])] for r in front],
        "deployments": [r["arch"].rsplit("@", 1)[1] for r in front],
        "evaluations": summary["trials"]["evaluated"],
        "wall_s": time.perf_counter() - started,
    }


def jobs_of(args: argparse.Namespace) -> list[dict[str, Any]]:
    joint = {
        "runtime": args.runtimes,
        "graph_optimization": args.graph_optimization,
        "precision": args.precision,
        "threads": args.threads,
    }
    jobs = []
    for space, seed in itertools.product(args.spaces, args.seeds):
        jobs.append({"space": space, "seed": seed, "name": "joint", "genes": joint})
        for fixed in deployments(args):
            name = ",".join(f"{k}={v}" for k, v in fixed.items())
            jobs.append({"space": space, "seed": seed, "name": name, "genes": {k: [v] for k, v in fixed.items()}})
    return jobs


def non_default(deployment: str) -> bool:
    values = dict(part.split("=", 1) for part in deployment.split(","))
    return any(str(values.get(k, v)) != str(v) for k, v in DEFAULT.items() if k in values)


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    default_name = ",".join(f"{k}={v}" for k, v in DEFAULT.items())
    lines = [
        f"Deployment search vs fixed deployments, {args.budget} measurements each, this CPU "
        f"(runtimes {args.runtimes}, graph optimisation {args.graph_optimization}, precision {args.precision}, "
        f"threads {args.threads}, batch 1)",
        "",
        "| space | seed | joint HV | best fixed HV (deployment) | default HV | mean fixed HV | union of fixed HV "
        "| joint / best fixed | joint / default | joint / mean fixed | joint front: non-default deployments |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ratios: dict[str, list[tuple[float, float, float]]] = {}
    for space, seed in itertools.product(args.spaces, args.seeds):
        runs = {r["name"]: r for r in rows if r["space"] == space and r["seed"] == seed}
        if "joint" not in runs or len(runs) < 2:
            continue
        points = np.array([p for r in runs.values() for p in r["front"]])
        directions = ["maximize", "minimize"]
        reference = default_reference(points, directions)
        volume = {name: hypervolume(np.array(r["front"]), directions, reference) for name, r in runs.items()}
        fixed = {n: v for n, v in volume.items() if n != "joint"}
        # Every fixed search's front pooled: what their measurements together found.
        union = hypervolume(
            np.array([p for n, r in runs.items() if n != "joint" for p in r["front"]]), directions, reference
        )
        best = max(fixed, key=fixed.__getitem__)
        joint = runs["joint"]
        other = sum(non_default(d) for d in joint["deployments"])
        ratio_best = volume["joint"] / fixed[best] if fixed[best] > 0 else float("nan")
        ratio_default = volume["joint"] / fixed[default_name] if fixed.get(default_name) else float("nan")
        mean_fixed = statistics.mean(fixed.values())
        ratio_mean = volume["joint"] / mean_fixed
        ratios.setdefault(space, []).append((ratio_best, ratio_default, ratio_mean))
        lines.append(
            f"| {space} | {seed} | {volume['joint']:.4g} | {fixed[best]:.4g} ({best}) | "
            f"{fixed.get(default_name, float('nan')):.4g} | {mean_fixed:.4g} | {union:.4g} | {ratio_best:.3f} | "
            f"{ratio_default:.3f} | {ratio_mean:.3f} | {other} of {len(joint['deployments'])} |"
        )
    for space, values in ratios.items():
        best, default, mean = (statistics.mean(column) for column in zip(*values))
        lines.append(
            f"\n{space}, mean over {len(values)} seeds: joint / best fixed {best:.3f}, joint / default {default:.3f}, "
            f"joint / mean fixed {mean:.3f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", nargs="+", default=["nb201", "fbnet"], choices=config_options("space"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--runtimes", nargs="+", default=["onnxruntime", "torch_eager"])
    parser.add_argument("--graph-optimization", nargs="+", default=["all", "disable"])
    parser.add_argument("--precision", nargs="+", default=["fp32", "int8"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", type=Path, default=REPO / "bench_results" / "deployment")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "runs.jsonl"
    done = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    key = ("space", "seed", "name")
    seen = {tuple(r[k] for k in key) for r in done}
    jobs = jobs_of(args)
    todo = [j for j in jobs if tuple(j[k] for k in key) not in seen]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already in {path}; running {len(todo)}", flush=True)
    with path.open("a") as f:
        for job in todo:
            row = run(job, args)
            f.write(json.dumps(row) + "\n")
            f.flush()
            done.append(row)
            print(
                f"{job['space']} seed {job['seed']} {job['name']}: front {len(row['front'])}, {row['wall_s']:.0f} s",
                flush=True,
            )
    wanted = {tuple(j[k] for k in key) for j in jobs}
    text = report([r for r in done if tuple(r[k] for k in key) in wanted], args)
    (args.out / "deployment.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
