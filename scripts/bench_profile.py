"""Figures for measured profiles: noise floor, profiling throughput, agreement with the world.

    python scripts/bench_profile.py [--archs 50] [--out bench_profile.json]

1. Noise floor: the same ``--archs`` NB201 architectures (stratified over FLOPs, seed 0) are
   profiled in two separate ``hwnas-profile`` runs for each runtime/threads setting; reported is
   the median over architectures of |a - b| / mean(a, b).
2. Throughput: architectures profiled per minute at default settings (onnxruntime, 1 thread),
   from the profiler's own log line, and for the whole command including start-up and selection.
3. Agreement: Spearman between this machine's onnxruntime 1-thread latencies of those
   architectures and each CPU column (server and mobile) of the shared NB201 table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
SETTINGS = {
    "onnxruntime_t1": ["runtime=onnxruntime_cpu", "threads=1"],
    "onnxruntime_t2": ["runtime=onnxruntime_cpu", "threads=2"],
    "torch_eager_t1": ["runtime=torch_cpu", "threads=1"],
    "torch_eager_t2": ["runtime=torch_cpu", "threads=2"],
}
CPU_COLUMNS = (
    "gold_6226",
    "silver_4210r",
    "raspi4",
    "pi5_onnx",
    "pi5_litert",
    "pixel3",
    "pixel6a_litert",
    "samsung_a50",
    "samsung_s7",
)


def profile(run_dir: Path, overrides: list[str]) -> tuple[dict[str, float], float, float]:
    """(arch -> latency_ms, measured per minute, whole-command seconds) of one hwnas-profile run."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "nas.cli.profile", f"hydra.run.dir={run_dir}", "progress=false", *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    command_s = time.perf_counter() - started
    log = (run_dir / "profile.log").read_text() if (run_dir / "profile.log").exists() else result.stderr
    per_minute = float(re.search(r"\(([\d.]+) per minute\)", log).group(1))
    with (run_dir / "archs.csv").open() as f:
        archs = {row["index"]: row["arch"] for row in csv.DictReader(f)}
    with (run_dir / "latency_ms.csv").open() as f:
        reader = csv.DictReader(f)
        column = reader.fieldnames[1]
        latency = {archs[row["index"]]: float(row[column]) for row in reader}
    return latency, per_minute, command_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=50)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("HWNAS_DATA", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, object] = {"archs": args.archs}
    with tempfile.TemporaryDirectory() as tmp:
        first_dir = Path(tmp) / "select"
        selected, per_minute, command_s = profile(first_dir, [f"n_archs={args.archs}"])
        results["throughput"] = {
            "measured_archs_per_minute": per_minute,
            "whole_command_archs_per_minute": 60 * args.archs / command_s,
            "whole_command_s": command_s,
        }
        archs_file = Path(tmp) / "archs.txt"
        archs_file.write_text("\n".join(selected) + "\n")
        noise = {}
        measured = {}
        for label, overrides in SETTINGS.items():
            runs = [
                profile(
                    Path(tmp) / f"{label}_{i}",
                    [*overrides, "selection=list", f"selection.path={archs_file}", f"n_archs={args.archs}"],
                )[0]
                for i in (0, 1)
            ]
            measured[label] = runs[0]
            diffs = [abs(runs[0][a] - runs[1][a]) / ((runs[0][a] + runs[1][a]) / 2) for a in selected]
            noise[label] = {
                "median_rel_diff": statistics.median(diffs),
                "p90_rel_diff": float(np.percentile(diffs, 90)),
            }
            print(label, json.dumps(noise[label]))
        results["noise_floor"] = noise
    results["spearman_vs_table"] = agreement(measured["onnxruntime_t1"], args.data_dir)
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


def agreement(latency: dict[str, float], data_dir: Path) -> dict[str, float]:
    from nas.tables import BenchmarkTable

    table = BenchmarkTable.load(data_dir / "nb201")
    rows = [table.lookup(a) for a in latency]
    ours = np.array(list(latency.values()))
    return {
        device: float(spearmanr(ours, table.column("latency_ms", device)[rows]).statistic)
        for device in CPU_COLUMNS
        if device in table.devices("latency_ms")
    }


if __name__ == "__main__":
    main()
