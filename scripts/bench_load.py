"""Load: a long predictor-only search, a large table, several workers on one study.

    python scripts/bench_load.py --part search --trials 100000 --storage journal   # the README's row
    python scripts/bench_load.py --part table --rows 200000
    python scripts/bench_load.py --part workers --storage journal --workers 4 --seconds 600
    python scripts/bench_load.py --part workers --storage url --url postgresql://... --workers 4 --seconds 600

Every part runs the commands a user runs (``hwnas-fit``, ``hwnas-search``) as subprocesses, each
in its own run directory under ``--out-dir``, and measures from outside: the peak resident memory
of each process (``wait4``'s ``ru_maxrss``) and what its run directory holds.

**search**: ``hwnas-fit space=fbnet device=<device>`` fits the device's latency predictor, then
``hwnas-search space=fbnet device=predicted objectives=params_latency budget.n_trials=<trials>
storage=<storage>`` runs NSGA-II (the default sampler) with every output on (TensorBoard,
HParams, ONNX of the front). The per-trial time is the median gap between consecutive trials'
starts (``trials.csv``'s ``datetime_start``) in each tenth of the run; the growth is the last
tenth's over the first's. Checked: the study holds exactly ``trials`` evaluations, none RUNNING.

**table**: a table folder in the shared format with ``rows`` distinct random FBNet networks whose
latency column is the fitted predictor's values (synthetic: the load, not the values, is under
test), read by ``hwnas-fit device=table`` (every reader's checks) and fitted on 900 rows.

**workers**: ``workers`` ``hwnas-search`` processes (``worker=0..n-1``) on one new study, one run
directory, for ``seconds`` (``budget.timeout_s``, with a budget they cannot reach), NB201 table
latency of raspi4 and synflow computed per trial (so trials take ~0.1 s and the storage is busy).
Checked after all exit: no trial RUNNING or WAITING, trial numbers unique, no architecture
evaluated twice, every trial tagged by one of the workers, and each worker's finished trials
(counted in its own log) all in the study.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATA = Path(os.environ.get("HWNAS_DATA", REPO.parent / "shared" / "data"))


def run(command: str, *overrides: str, log: Path) -> dict[str, Any]:
    """Run ``command`` to completion; its wall time and peak resident memory (MiB)."""
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen([str(BIN / command), *overrides], stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{command} {' '.join(overrides)} exited {code}; see {log}")
    return {"wall_s": round(time.monotonic() - started, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def storage_overrides(args: argparse.Namespace) -> list[str]:
    return [f"storage={args.storage}", *([f"storage.url={args.url}"] if args.storage == "url" else [])]


def fit(out: Path, device: str) -> Path:
    run_dir = out / f"fit_{device}"
    if not (run_dir / "predictor.npz").exists():
        run(
            "hwnas-fit",
            "space=fbnet",
            f"device={device}",
            f"data_dir={DATA}",
            f"hydra.run.dir={run_dir}",
            log=out / "fit.log",
        )
    return run_dir


def per_trial_ms(trials_csv: Path, parts: int = 10) -> list[float]:
    """Median milliseconds between consecutive trial starts, per tenth of the run."""
    from datetime import datetime

    with trials_csv.open(newline="") as handle:
        starts = sorted(
            datetime.fromisoformat(r["datetime_start"]) for r in csv.DictReader(handle) if r["datetime_start"]
        )
    gaps = np.diff([s.timestamp() for s in starts]) * 1000
    return [round(float(np.median(chunk)), 2) for chunk in np.array_split(gaps, parts)]


def part_search(args: argparse.Namespace) -> dict[str, Any]:
    predictor = fit(args.out_dir, args.device)
    run_dir = args.out_dir / f"search_{args.storage}_{args.trials}"
    measured = run(
        "hwnas-search",
        "space=fbnet",
        "device=predicted",
        f"device.latency={predictor}",
        "objectives=params_latency",
        f"budget.n_trials={args.trials}",
        *storage_overrides(args),
        "progress=false",
        f"data_dir={DATA}",
        f"hydra.run.dir={run_dir}",
        log=args.out_dir / "search.log",
    )
    summary = json.loads((run_dir / "summary.json").read_text())
    tenths = per_trial_ms(run_dir / "trials.csv")
    trials = summary["trials"]
    assert trials["evaluated"] == args.trials and not trials.get("RUNNING"), trials
    return {
        **measured,
        "study_trials": trials,
        "per_trial_ms_by_tenth": tenths,
        "growth": round(tenths[-1] / tenths[0] - 1, 3),
        "run_dir_mib": round(sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) / 2**20, 1),
    }


def part_table(args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from hydra.utils import instantiate

    from latency_predictors.predictors import load_predictor
    from nas.cli.fit import compose_fit

    predictor_dir = fit(args.out_dir, args.device)
    table = args.out_dir / f"table_{args.rows}"
    if not (table / "latency_ms.csv").exists():
        table.mkdir(exist_ok=True)
        space, rng = instantiate(compose_fit("space=fbnet").space.instance), np.random.default_rng(0)
        sampled: dict[str, Any] = {}  # canonical string -> architecture, each network once
        while len(sampled) < args.rows:
            arch = space.sample(rng)
            sampled.setdefault(arch.string, arch)
        latency = load_predictor(predictor_dir, space).predict(list(sampled.values()))
        with (table / "archs.csv").open("w") as handle:
            handle.write("index,arch\n" + "".join(f"{i},{s}\n" for i, s in enumerate(sampled)))
        with (table / "latency_ms.csv").open("w") as handle:
            handle.write("index,synthetic\n" + "".join(f"{i},{v!r}\n" for i, v in enumerate(map(float, latency))))
    return run(
        "hwnas-fit",
        "space=fbnet",
        f"space.table_dir={table}",
        "device=table",
        "device.name=synthetic",
        "n_train=900",
        f"hydra.run.dir={args.out_dir / f'fit_table_{args.rows}'}",
        log=args.out_dir / "table.log",
    )


def part_workers(args: argparse.Namespace) -> dict[str, Any]:
    import optuna

    run_dir = args.out_dir / f"workers_{args.storage}_{int(time.time())}"
    common = [
        "device=raspi4",
        "budget.n_trials=1000000",
        f"budget.timeout_s={args.seconds}",
        *storage_overrides(args),
        f"study_name=load_{run_dir.name}",
        "progress=false",
        "hydra.verbose=nas.search",  # a line per finished trial, counted below
        f"data_dir={DATA}",
        f"hydra.run.dir={run_dir}",
    ]
    started = time.monotonic()
    processes = []
    for worker in range(args.workers):
        log = (args.out_dir / f"worker{worker}.log").open("w")
        command = [str(BIN / "hwnas-search"), *common, f"worker={worker}"]
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    peaks = []
    for process in processes:
        _, status, usage = os.wait4(process.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, f"a worker exited {status}"
        peaks.append(round(usage.ru_maxrss / 1024, 1))
    if args.storage == "journal":
        store = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "journal.log")))
    else:
        store = optuna.storages.RDBStorage(args.url)
    study = optuna.load_study(study_name=f"load_{run_dir.name}", storage=store)
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    evaluated = [t for t in trials if t.state.name == "COMPLETE" and "reused_from_trial" not in t.user_attrs]
    keys = Counter(t.user_attrs.get("dedup_key") for t in evaluated)
    logged = sum(
        line.count(" COMPLETE ") + line.count(" FAIL ") + line.count(" PRUNED ")
        for worker in range(args.workers)
        for line in (args.out_dir / f"worker{worker}.log").read_text().splitlines()
        if "nas.search][DEBUG] - trial " in line
    )
    result = {
        "wall_s": round(time.monotonic() - started, 1),
        "peak_rss_mib": peaks,
        "states": dict(states),
        "trials": len(trials),
        "numbers_unique": len({t.number for t in trials}) == len(trials),
        "evaluated": len(evaluated),
        "architectures_evaluated_twice": sum(1 for n in keys.values() if n > 1),
        "untagged": sum(1 for t in trials if "worker" not in t.user_attrs),
        "finished_in_logs": logged,
        "finished_in_study": sum(states[s] for s in ("COMPLETE", "FAIL", "PRUNED")),
    }
    result["lost_or_duplicated"] = (
        states.get("RUNNING", 0)
        + states.get("WAITING", 0)
        + result["architectures_evaluated_twice"]
        + abs(result["finished_in_logs"] - result["finished_in_study"])
        + (not result["numbers_unique"])
    )
    return result


PARTS = {"search": part_search, "table": part_table, "workers": part_workers}
PART_ARGS = {
    "search": ("device", "trials", "storage"),
    "table": ("device", "rows"),
    "workers": ("storage", "workers", "seconds"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=sorted(PARTS), required=True)
    parser.add_argument("--out-dir", type=Path, default=REPO / "outputs" / "bench_load")
    parser.add_argument("--device", default="raspi4", help="the FBNet table column the predictor is fitted on")
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--storage", default="journal", choices=["journal", "sqlite", "memory", "url"])
    parser.add_argument("--url", help="with --storage url: the database the workers share")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=600)
    args = parser.parse_args()
    if args.part == "workers" and args.storage not in ("journal", "url"):
        parser.error("--part workers shares a study: --storage journal, or --storage url with --url")
    if args.storage == "url" and not args.url:
        parser.error("--storage url needs --url (e.g. postgresql://user@host/db)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    result = {"part": args.part, **{k: getattr(args, k) for k in PART_ARGS[args.part]}}
    result.update(PARTS[args.part](args))
    print(json.dumps(result, indent=1))
    with (args.out_dir / "results.jsonl").open("a") as handle:
        handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
