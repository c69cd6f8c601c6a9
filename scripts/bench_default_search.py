"""Time the built-in default search (`hwnas-search` with no arguments) and summarise its output.

    python scripts/bench_default_search.py [--runs 1] [extra Hydra overrides...]

Runs the search in a fresh temporary run directory each time and prints, per run, the wall time
of the whole command (start-up, search, ONNX export, TensorBoard), the search's own wall time,
the trial throughput and the Pareto set size, read back from summary.json and trials.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_once(overrides: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "nas.cli.search", f"hydra.run.dir={run_dir}", "progress=false", *overrides],
            check=True, capture_output=True,
        )  # fmt: skip
        command_s = time.perf_counter() - started
        summary = json.loads((run_dir / "summary.json").read_text())
        with (run_dir / "trials.csv").open() as f:
            durations = [float(r["duration_s"]) for r in csv.DictReader(f) if r["duration_s"]]
        onnx_files = len(list((run_dir / "onnx").glob("*.onnx")))
    return {
        "command_s": command_s,
        "search_wall_s": summary["wall_time_s"],
        "trials": summary["trials"]["total"],
        "median_trial_s": statistics.median(durations),
        "pareto_size": summary["pareto_size"],
        "onnx_files": onnx_files,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    args, overrides = parser.parse_known_args()
    results = [run_once(overrides) for _ in range(args.runs)]
    for i, r in enumerate(results):
        print(
            f"run {i}: command {r['command_s']:.1f} s, search {r['search_wall_s']:.1f} s, "
            f"{r['trials']} trials, median trial {r['median_trial_s']:.3f} s, Pareto set {r['pareto_size']}, "
            f"{r['onnx_files']} ONNX files"
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
