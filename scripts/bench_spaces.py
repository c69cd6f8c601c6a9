"""Per search space: time to build and to extract a subnet, supernet forward per architecture,
and supernet-training throughput, on this machine's CPU.

    python scripts/bench_spaces.py [--spaces nb201 fbnet ofa] [--archs 10] [--threads 1] [--out bench_spaces.json]

Each space is built from its config (configs/space), as hwnas-search builds it. Each figure is
the median over ``--archs`` architectures sampled with a fixed seed (after one untimed warm-up
call); training throughput runs a few steps of uniform sampling and of the sandwich rule on
random images of the space's input size (batch 32 for 32x32 spaces, 8 above).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from nas import SearchSpace
from nas.cli import CONFIG_DIR, config_options


def configured_space(name: str) -> SearchSpace:
    """The space as hwnas-search builds it (configs/space/<name>.yaml)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("search", overrides=[f"space={name}"])
    return instantiate(cfg.space.instance)


def median_s(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first calls pay for allocation and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_space(space: SearchSpace, n_archs: int, train_steps: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(n_archs)]
    started = time.perf_counter()
    supernet = space.supernet().eval()
    supernet_build_s = time.perf_counter() - started
    build, extract, forward, subnet_forward = [], [], [], []
    with torch.inference_mode():
        for arch in archs:
            x = space.example_input(1, arch=arch)
            build.append(median_s(lambda: space.build(arch), 1))
            extract.append(median_s(lambda: supernet.subnet(arch), 1))
            forward.append(median_s(lambda: supernet(x, arch), 3))
            subnet = supernet.subnet(arch).eval()
            subnet_forward.append(median_s(lambda: subnet(x), 3))
    return {
        "supernet_build_s": supernet_build_s,
        "supernet_params": sum(p.numel() for p in supernet.parameters()),
        "build_subnet_ms": 1e3 * statistics.median(build),
        "extract_subnet_ms": 1e3 * statistics.median(extract),
        "supernet_forward_ms": 1e3 * statistics.median(forward),
        "subnet_forward_ms": 1e3 * statistics.median(subnet_forward),
        **training_throughput(space, supernet, train_steps),
    }


def training_throughput(space: SearchSpace, supernet: torch.nn.Module, steps: int) -> dict[str, float]:
    from nas.training import SandwichRule, UniformSampling

    results = {}
    for label, strategy in (("uniform", UniformSampling()), ("sandwich", SandwichRule())):
        supernet.train()
        optimizer = torch.optim.SGD(supernet.parameters(), lr=0.01, momentum=0.9)
        rng = np.random.default_rng(0)
        shape = space.input_shape_of(space.largest())
        batch = 32 if shape[-1] <= 32 else 8
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(batch, *shape, generator=generator)
        labels = torch.randint(0, space.num_classes, (batch,), generator=generator)

        def train_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            strategy.step(supernet, images, labels, rng)
            optimizer.step()

        train_step()  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            train_step()
        results[f"train_{label}_images_per_s"] = steps * batch / (time.perf_counter() - start)
    supernet.eval()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", nargs="+", default=config_options("space"), choices=config_options("space"))
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for name in args.spaces:
        results[name] = bench_space(configured_space(name), args.archs, args.train_steps)
        print(name, json.dumps({k: round(v, 3) for k, v in results[name].items()}))
    if args.out:
        args.out.write_text(json.dumps({"threads": args.threads, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
