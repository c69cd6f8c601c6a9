"""How often a correct ONNX export fails hwnas-search's parity check, over random architectures.

    python scripts/bench_onnx_parity.py [--space nb201] [--archs 600] [--seed 0]

Draws architectures with ``space.sample`` and runs them through ``nas.cli.search.export_front``
(the function hwnas-search exports its Pareto set with, on hwnas-search's composed config: its
space and ``export`` settings), then prints how many rows failed, the largest scaled difference (the figure
parity is judged on) and, for comparison, how many rows have an elementwise relative difference
above rtol (and an absolute one above atol): the rows the elementwise rule used before issue 12
could fail (it failed about 1 in 150 NB201 cells).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from nas.cli import CONFIG_DIR
from nas.cli._onnx import export_front


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="nb201", help="a configs/space option")
    parser.add_argument("--archs", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    # hwnas-search's own composed config: the space and export settings a user's run gets.
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("search", overrides=[f"space={args.space}"])
    export_cfg = cfg.export
    space = instantiate(cfg.space.instance)
    rng = np.random.default_rng(args.seed)
    archs = list(dict.fromkeys(space.sample(rng).string for _ in range(args.archs)))
    front = [{"arch": a} for a in archs]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        failures = export_front(space, front, Path(tmp) / "onnx", export_cfg, progress=True)
    elapsed = time.perf_counter() - started
    scaled = np.array([r["onnx_max_scaled_diff"] for r in front if r["onnx_max_scaled_diff"] is not None])
    rel = np.array([r["onnx_max_rel_diff"] for r in front if r["onnx_max_rel_diff"] is not None])
    abs_ = np.array([r["onnx_max_abs_diff"] for r in front if r["onnx_max_abs_diff"] is not None])
    elementwise = int(np.sum((rel > export_cfg.parity_rtol) & (abs_ > export_cfg.parity_atol)))
    report = {
        "space": args.space,
        "architectures": len(front),
        "failures": failures,
        "errors": sorted({r["onnx_error"] for r in front if r["onnx_error"]})[:5],
        "max_scaled_diff": float(scaled.max()),
        "median_scaled_diff": float(np.median(scaled)),
        "max_rel_diff_elementwise": float(rel.max()),
        "rel_above_rtol_and_abs_above_atol": elementwise,
        "rtol": export_cfg.parity_rtol,
        "atol": export_cfg.parity_atol,
        "seconds": elapsed,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
