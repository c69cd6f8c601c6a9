"""What int8 costs in accuracy where the weights are trained: networks of a trained supernet scored
as deployed in fp32 and in int8 (onnxruntime static QDQ), on the same validation images.

    hwnas-train-supernet ++space.instance.channels=8 ++space.instance.cells_per_stage=2 epochs=20 \\
        hydra.run.dir=runs/supernet_digits
    python scripts/bench_int8_accuracy.py --checkpoint runs/supernet_digits --n-archs 40

Every number is ``latency_predictors.DeployedAccuracy`` as ``hwnas-search deployment=cpu_stack
objectives=deployed_accuracy_latency`` composes and maximises it, of one network under an
onnxruntime fp32 deployment and under the int8 one: the subnet with the trained
weights, BN recalibrated on the training run's evaluation batches, and for int8 its file
calibrated on those images. Networks: ``--n-archs`` drawn uniformly with
``numpy.random.default_rng(seed)`` (disconnected NB201 cells, which ignore their input, skipped).
The space and data are the training run's (its .hydra/config.yaml). Each row also counts the
subnet's BN channels whose recalibrated variance is below 1e-3 (``dead_bn``): the drops measured
here concentrate on such networks.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from scipy.stats import spearmanr

from latency_predictors.measure import DEAD_VARIANCE, DeployedAccuracy
from nas import Candidate, DeployedSpace, Deployment, DisconnectedSpace
from nas.cli import CONFIG_DIR
from nas.cli._space import search_space


def compose_objective(checkpoint: Path, seed: int, bn_batches: int) -> tuple[DeployedSpace, DeployedAccuracy]:
    """hwnas-search's deployed space and accuracy objective as ``deployment=cpu_stack
    objectives=deployed_accuracy_latency`` composes them for the training run ``checkpoint``: its
    space and data overrides, its data seed."""
    run = OmegaConf.load(checkpoint / ".hydra" / "config.yaml")
    choices = OmegaConf.load(checkpoint / ".hydra" / "hydra.yaml").hydra.runtime.choices
    space_overrides = [o for o in OmegaConf.load(checkpoint / ".hydra" / "overrides.yaml") if "space." in o]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(
            "search",
            overrides=[
                f"space={choices.space}",
                *space_overrides,
                "deployment=cpu_stack",
                "objectives=deployed_accuracy_latency",
                f"data={choices.data}",
                f"data.seed={run.data.seed}",
                f"objectives.accuracy.accuracy.checkpoint={checkpoint}",
                f"objectives.accuracy.accuracy.bn_batches={bn_batches}",
                f"seed={seed}",
            ],
        )
    space = search_space(cfg)
    assert isinstance(space, DeployedSpace)
    return space, instantiate(cfg.objectives.accuracy, name="accuracy")


def measure(checkpoint: Path, n_archs: int, seed: int, bn_batches: int) -> list[dict[str, object]]:
    """fp32 and int8 accuracy (percent) of ``n_archs`` networks of the supernet at ``checkpoint``."""
    space, accuracy = compose_objective(checkpoint, seed, bn_batches)
    network_space = space.networks
    # the first onnxruntime deployment the config offers in each precision (accuracy depends on
    # the precision only)
    deployments: dict[str, Deployment] = {}
    for deployment in space.deployment.every():
        if deployment.get("runtime") == "onnxruntime":
            deployments.setdefault(str(deployment.get("precision")), deployment)
    print("deployments:", {p: d.string for p, d in deployments.items()})
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    while len(rows) < n_archs:
        network = network_space.sample(rng)
        if (
            isinstance(network_space, DisconnectedSpace)
            and network_space.disconnected_of(network_space.encoding.indices([network]))[0]
        ):
            continue
        scores = {}
        for precision, deployment in deployments.items():
            scores[precision] = accuracy(Candidate(space.deploy(network, deployment), space))
        subnet = accuracy.accuracy.subnet(network_space, network)
        rows.append(
            {"network": network.string, **scores, "drop": scores["fp32"] - scores["int8"], "dead_bn": dead_bn(subnet)}
        )
        print(f"{len(rows):3d} fp32 {scores['fp32']:6.2f}  int8 {scores['int8']:6.2f}  {network.string}", flush=True)
    return rows


def dead_bn(model: torch.nn.Module, below: float = DEAD_VARIANCE) -> int:
    """BN channels whose recalibrated variance is ~0 (what ``without_dead_channels`` silences
    before quantising): their scale 1/sqrt(var + eps), about 316 at eps 1e-5, amplifies whatever
    quantisation noise reaches a channel that fp32 keeps constant."""
    return sum(int((m.running_var < below).sum()) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def summary(rows: list[dict[str, object]]) -> dict[str, float | int | None]:
    fp32 = np.array([r["fp32"] for r in rows], dtype=float)
    int8 = np.array([r["int8"] for r in rows], dtype=float)
    drop = fp32 - int8
    dead = np.array([r["dead_bn"] for r in rows])
    return {
        "networks": len(rows),
        "mean_fp32": float(fp32.mean()),
        "mean_int8": float(int8.mean()),
        "mean_drop": float(drop.mean()),
        "median_drop": float(statistics.median(drop)),
        "max_drop": float(drop.max()),
        "min_drop": float(drop.min()),
        "share_drop_within_1pt": float(np.mean(np.abs(drop) <= 1.0)),
        "spearman_fp32_int8": float(spearmanr(fp32, int8).statistic),
        "networks_with_dead_bn": int(np.sum(dead > 0)),
        "mean_drop_with_dead_bn": float(drop[dead > 0].mean()) if np.any(dead > 0) else None,
        "mean_drop_without_dead_bn": float(drop[dead == 0].mean()) if np.any(dead == 0) else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="an hwnas-train-supernet run directory")
    parser.add_argument("--n-archs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bn-batches", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench_int8_accuracy.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = measure(args.checkpoint, args.n_archs, args.seed, args.bn_batches)
    result = {"summary": summary(rows), "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
