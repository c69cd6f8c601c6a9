"""The closed loop scored without hardware: hwnas-pipeline with each shared NB201 table column
playing the device (a lookup per "measurement", counted), or on this machine's CPU.

    python scripts/bench_pipeline.py                          # every NB201 latency column
    python scripts/bench_pipeline.py --devices raspi4 pixel3 -- budget.n_trials=100
    python scripts/bench_pipeline.py --devices cpu            # the live default, timed

Each device runs ``python -m nas.cli.pipeline device=<d> export.onnx=false <overrides>`` in a fresh
run directory (a subprocess, so a crash is that device's alone) and the script prints, per
device: rounds run and whether the measured front's hypervolume converged, device answers (the
table's counted lookups), the final round's predicted-against-measured Spearman and MAPE of
latency on the returned front (and the median APE), the hypervolume as predicted and as measured, and the command's
wall time; then the means. ``--out`` keeps the run directories.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def nb201_latency_devices() -> list[str]:
    from nas.cli import data_dir
    from nas.tables import BenchmarkTable

    return list(BenchmarkTable.load(data_dir() / "nb201").devices("latency_ms"))


def run_device(device: str, overrides: list[str], out: Path) -> dict[str, object]:
    run_dir = out / device
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nas.cli.pipeline",
            f"device={device}",
            "export.onnx=false",
            "progress=false",
            *overrides,
        ]
        + [f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    command_s = time.perf_counter() - started
    if result.returncode != 0:
        return {"device": device, "returncode": result.returncode, "stderr_tail": result.stderr[-1500:]}
    summary = json.loads((run_dir / "summary.json").read_text())
    last = summary["rounds"][-1]
    latency = last["predicted_vs_measured"]["latency_ms"] or {}
    return {
        "device": device,
        "returncode": 0,
        "rounds": summary["rounds_run"],
        "converged": summary["converged"],
        "device_answers": summary["device_answers"],
        "front_size": last["front_size"],
        "spearman": latency.get("spearman"),
        "mape": latency.get("mape"),
        # NB201's cells without an input-output path run in microseconds: a small absolute miss
        # there is a huge relative one, so the median says more than the mean
        "median_ape": latency.get("median_ape"),
        "hv_predicted": last["hypervolume_predicted"],
        "hv_measured": last["hypervolume_measured"],
        "command_s": command_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--devices", nargs="*", default=None, help="device configs (default: every NB201 latency column)"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the run directories here")
    args, overrides = parser.parse_known_args()
    overrides = [o for o in overrides if o != "--"]
    devices = args.devices or nb201_latency_devices()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        results = []
        for device in devices:
            row = run_device(device, overrides, out)
            results.append(row)
            print(json.dumps(row), flush=True)
    ok = [r for r in results if r["returncode"] == 0]
    if ok:
        means = {
            key: statistics.fmean(float(r[key]) for r in ok if r[key] is not None)
            for key in ("rounds", "device_answers", "spearman", "mape", "median_ape", "command_s")
            if any(r[key] is not None for r in ok)
        }
        print(json.dumps({"devices": len(ok), "converged": sum(bool(r["converged"]) for r in ok), "mean": means}))
    sys.exit(0 if len(ok) == len(results) else 1)


if __name__ == "__main__":
    main()
