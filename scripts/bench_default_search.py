"""Time the built-in default search (`hwnas-search` with no arguments) and summarise its output.

    python scripts/bench_default_search.py [--runs 1] [extra Hydra overrides...]
    python scripts/bench_default_search.py --runs 20      # issue 12: 20 runs in a row, none may fail

Runs the search in a fresh temporary run directory each time and prints, per run, the exit code,
the wall time of the whole command (start-up, search, ONNX export, TensorBoard), the search's own
wall time, the trial throughput, the Pareto set size, ONNX files written and export failures, and
unstable latency measurements, read back from summary.json and trials.csv. A failed run is
reported (with the end of its stderr) and the next one starts; the script exits non-zero if any
run failed.
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


def run_once(overrides: list[str]) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "nas.cli.search", f"hydra.run.dir={run_dir}", "progress=false", *overrides],
            capture_output=True,
            text=True,
        )
        command_s = time.perf_counter() - started
        if result.returncode != 0 or not (run_dir / "summary.json").is_file():
            return {"returncode": result.returncode, "command_s": command_s, "stderr_tail": result.stderr[-2000:]}
        summary = json.loads((run_dir / "summary.json").read_text())
        with (run_dir / "trials.csv").open() as f:
            durations = [float(r["duration_s"]) for r in csv.DictReader(f) if r["duration_s"]]
        onnx_files = len(list((run_dir / "onnx").glob("*.onnx")))
    return {
        "returncode": result.returncode,
        "command_s": command_s,
        "search_wall_s": summary["wall_time_s"],
        "trials": summary["trials"]["total"],
        "median_trial_s": statistics.median(durations),
        "pareto_size": summary["pareto_size"],
        "onnx_files": onnx_files,
        "onnx_export_failures": summary.get("onnx_export_failures"),
        "unstable_measurements": summary.get("unstable_measurements"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1)
    args, overrides = parser.parse_known_args()
    results = []
    for i in range(args.runs):
        r = run_once(overrides)
        results.append(r)
        if r["returncode"] != 0:
            print(
                f"run {i}: FAILED (exit {r['returncode']}) after {r['command_s']:.1f} s\n{r['stderr_tail']}", flush=True
            )
            continue
        print(
            f"run {i}: command {r['command_s']:.1f} s, search {r['search_wall_s']:.1f} s, "
            f"{r['trials']} trials, median trial {r['median_trial_s']:.3f} s, Pareto set {r['pareto_size']}, "
            f"{r['onnx_files']} ONNX files, {r['onnx_export_failures']} export failures, "
            f"{r['unstable_measurements']} unstable latencies",
            flush=True,
        )
    failed = sum(r["returncode"] != 0 for r in results)
    print(f"{len(results) - failed} of {len(results)} runs exited 0 with every output written")
    print(json.dumps(results, indent=2))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
