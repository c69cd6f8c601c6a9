"""Proof on a machine with an NVIDIA GPU: CUDA-event latency, CPU latency and NVML energy.

Measures a few NB201 networks (or a local CNN if the search space cannot be imported) with
``TorchCUDA`` (CUDA events) at batch 1 and 256, with ``TorchEagerCPU`` at batch 1, and reads NVML
energy per inference on the GPU at both batch sizes. Prints the host metadata and a JSON summary,
and writes the summary to ``$OUT/gpu_proof.json`` when ``$OUT`` is set.

Needs torch, onnxruntime, onnx, numpy and nvidia-ml-py; not optuna or hydra. Run from the
repository root::

    PYTHONPATH=. python3 scripts/gpu_proof.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from torch import nn

from latency_predictors import (
    CudaEventRun,
    EnergyMeterUnavailable,
    NvmlMeter,
    TorchCUDA,
    TorchEagerCPU,
    host_metadata,
    measure_energy_mj,
    measure_until_stable,
    reference_input,
    reference_model,
)

NB201_CELLS = {
    "nb201_light": "|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|",
    "nb201_mixed": "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "nb201_largest": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
}


def networks() -> dict[str, tuple[nn.Module, Any]]:
    """name -> (model, function batch_size -> input)."""
    try:
        from search_spaces.nb201 import NB201Space
    except ImportError as error:
        print(f"search_spaces.nb201 not importable ({error}); using the drift reference CNN", file=sys.stderr)
        return {"reference_cnn": (reference_model(), reference_input)}
    space = NB201Space()
    nets: dict[str, tuple[nn.Module, Any]] = {}
    for name, cell in NB201_CELLS.items():
        arch = space.parse(cell)
        nets[name] = (space.build(arch).eval(), lambda b, space=space: space.example_input(b))
    nets["reference_cnn"] = (reference_model(), reference_input)
    return nets


def warm_up(run: Any, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        run()


def paired_times(run: CudaEventRun, calls: int) -> tuple[list[float], list[float]]:
    """Each call timed by its CUDA events and by the host clock around it."""
    events_ms, host_ms = [], []
    for _ in range(calls):
        start = time.perf_counter_ns()
        events_ms.append(run.timed_ms())
        host_ms.append((time.perf_counter_ns() - start) / 1e6)
    return events_ms, host_ms


def stats_dict(stats: Any) -> dict[str, Any]:
    return {key: getattr(stats, key) for key in stats.__dataclass_fields__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--energy-seconds", type=float, default=2.0)
    parser.add_argument("--rel-tolerance", type=float, default=0.02)
    args = parser.parse_args()

    host = host_metadata()
    print(json.dumps(host, indent=2))
    cuda = TorchCUDA()  # raises the clear no-GPU error before anything is measured
    try:
        meter: NvmlMeter | None = NvmlMeter(cuda.device_index)
        energy_note = meter.describe()
    except EnergyMeterUnavailable as error:
        meter, energy_note = None, f"no GPU energy: {error}"
        print(energy_note, file=sys.stderr)
    summary: dict[str, Any] = {"host": host, "cuda_runtime": cuda.describe(), "energy_meter": energy_note, "rows": []}
    cpu = TorchEagerCPU(threads=1)
    with tempfile.TemporaryDirectory(prefix="hwnas-gpu-proof-") as workdir:
        for name, (model, example) in networks().items():
            for batch in args.batch_sizes:
                x = example(batch)
                run = cuda.prepare(model, x, Path(workdir))
                started = time.perf_counter()
                warm_up(run, seconds=1.0)  # GPU clocks ramp up under load; time at steady clocks
                gpu = measure_until_stable(
                    run, warmup=20, min_repeats=20, max_repeats=5000, rel_tolerance=args.rel_tolerance, max_time_s=30.0
                )
                events_ms, host_ms = paired_times(run, calls=50)
                row: dict[str, Any] = {
                    "network": name,
                    "batch_size": batch,
                    "torch_cuda_events": stats_dict(gpu),
                    # The same calls timed both ways: events bound the kernels, the host clock adds
                    # launch and synchronisation overhead, so events <= host on every call.
                    "paired_events_median_ms": statistics.median(events_ms),
                    "paired_host_clock_median_ms": statistics.median(host_ms),
                    "paired_events_le_host_fraction": sum(e <= h for e, h in zip(events_ms, host_ms)) / len(host_ms),
                    "seconds": round(time.perf_counter() - started, 2),
                }
                if meter is not None:
                    energy = measure_energy_mj(run, meter, warmup=5, min_time_s=args.energy_seconds, min_repeats=20)
                    row["nvml_energy"] = {
                        **stats_dict(energy),
                        "mean_power_w": energy.mean_power_w,
                        "energy_mj_per_sample": energy.energy_mj / batch,
                    }
                else:
                    row["nvml_energy"] = None
                if batch == 1:
                    cpu_stats = measure_until_stable(
                        cpu.prepare(model, x, Path(workdir)),
                        warmup=5,
                        min_repeats=10,
                        max_repeats=1000,
                        rel_tolerance=args.rel_tolerance,
                        max_time_s=20.0,
                    )
                    row["torch_eager_cpu_t1"] = stats_dict(cpu_stats)
                del run
                summary["rows"].append(row)
                energy_text = (
                    f"{row['nvml_energy']['energy_mj']:.3f} mJ/call ({row['nvml_energy']['energy_mj_per_sample']:.3f}/sample) at {row['nvml_energy']['mean_power_w']:.0f} W"
                    if row["nvml_energy"]
                    else "no energy"
                )
                cpu_text = f", cpu t1 {row['torch_eager_cpu_t1']['median_ms']:.3f} ms" if batch == 1 else ""
                print(
                    f"{name:15s} b{batch:<4d} gpu {gpu.median_ms:.4f} ms (ci {gpu.ci_rel:.3%}, n={gpu.repeats}, "
                    f"outliers {gpu.outliers}, stable {gpu.stable}), paired events/host "
                    f"{row['paired_events_median_ms']:.4f}/{row['paired_host_clock_median_ms']:.4f} ms "
                    f"(events<=host {row['paired_events_le_host_fraction']:.0%}), "
                    f"{energy_text}{cpu_text}",
                    file=sys.stderr,
                )
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if os.environ.get("OUT"):
        path = Path(os.environ["OUT"]) / "gpu_proof.json"
        path.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
