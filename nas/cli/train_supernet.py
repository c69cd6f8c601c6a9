"""hwnas-train-supernet: train a supernet, then measure inherited accuracies, all in the run directory.

Read top to bottom: compose the config -> instantiate data, space (with the data's classes) and
sampling strategy -> train with a checkpoint after every epoch (resumed when the run directory
already holds one) -> recalibrate BN and evaluate sampled architectures -> write
inherited_accuracy.csv and summary.json (with the Spearman rank correlation against the space's
benchmark table when that table is on disk).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from nas import Architecture, SupernetSpace
from nas.cli import CONFIG_DIR
from nas.cli._explain import explained
from nas.cli._options import TRAIN_SUPERNET, check_options
from nas.results import write_csv, write_json
from nas.tables import BenchmarkTable
from nas.tensorboard import last_steps
from nas.training import OptimizerConfig, SupernetTrainer, TrainingResult, evaluate

log = logging.getLogger("hwnas.train_supernet")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train_supernet")
@explained
def main(cfg: DictConfig) -> float | None:
    check_options(cfg, TRAIN_SUPERNET)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    started = time.time()
    torch.set_num_threads(cfg.torch_threads)

    data = instantiate(cfg.data)
    # The classifier's width follows the data, whatever the space's config says.
    space = instantiate(cfg.space.instance, num_classes=data.num_classes)
    if not isinstance(space, SupernetSpace):
        raise TypeError(f"space {space!r} has no supernet (it is no nas.SupernetSpace); choose one that has")
    if tuple(data.input_shape) != tuple(space.input_shape):
        log.warning(
            "data gives %s inputs, %s expects %s: images are resized per architecture",
            tuple(data.input_shape),
            space,
            tuple(space.input_shape),
        )
    strategy = instantiate(cfg.strategy)
    # Said before training, so a user who meant to get the Spearman check can stop and fix it.
    missing = missing_table(cfg)
    if missing:
        (log.warning if cfg.space.get("accuracy_column") else log.info)(
            "%s; the summary's Spearman rho will be null", missing
        )
    log.info("training a %r supernet on %r with %r for %d epochs", space, data, strategy, cfg.epochs)
    trainer = SupernetTrainer(
        space.supernet(seed=cfg.seed),
        data,
        strategy,
        optimizer=OptimizerConfig(**OmegaConf.to_container(cfg.optimizer, resolve=True)),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        checkpoint_dir=run_dir,
        device=cfg.torch_device,
        num_workers=cfg.num_workers,
        progress=cfg.progress,
        on_epoch=training_board(run_dir / "tensorboard"),
    )
    training = trainer.fit()

    archs = evaluation_archs(space, cfg.evaluation.archs, cfg.seed)
    evaluation_started = time.time()
    accuracies = evaluate(
        trainer.supernet,
        archs,
        data,
        bn_batches=cfg.evaluation.bn_batches,
        batch_size=cfg.evaluation.batch_size,
        seed=cfg.seed,
        progress=cfg.progress,
    )
    published = {} if missing else published_accuracies(cfg, archs)
    rows = [
        {
            "arch": arch.string,
            "accuracy": accuracies[arch.string],
            "params": sum(p.numel() for p in trainer.supernet.subnet(arch).parameters()),
            "published_accuracy": published.get(arch.string),
        }
        for arch in archs
    ]
    write_csv(run_dir / "inherited_accuracy.csv", ["arch", "accuracy", "params", "published_accuracy"], rows)
    summary = {
        "space": repr(space),
        "data": repr(data),
        "strategy": repr(strategy),
        "training": training_summary(training, cfg),
        "evaluation": {
            "archs": len(archs),
            "bn_batches": cfg.evaluation.bn_batches,
            "seconds": time.time() - evaluation_started,
            "mean_accuracy": float(np.mean(list(accuracies.values()))),
            "smallest_accuracy": accuracies[space.smallest().string],
            "largest_accuracy": accuracies[space.largest().string],
        },
        "spearman_vs_published": spearman_summary(cfg, rows, missing),
        "host": {"logical_cores": os.cpu_count(), "torch_threads": cfg.torch_threads, "device": cfg.torch_device},
        "run_dir": str(run_dir),
        "wall_time_s": time.time() - started,
    }
    write_json(run_dir / "summary.json", summary)
    write_evaluation_board(run_dir / "tensorboard", rows, summary, cfg.epochs)
    log.info(
        "inherited accuracy of %d architectures written to %s (Spearman vs published: %s)",
        len(archs),
        run_dir,
        summary["spearman_vs_published"]["rho"],
    )
    return summary["evaluation"]["mean_accuracy"]


def training_board(logdir: Path) -> Callable[[int, dict[str, float]], None]:
    """TensorBoard curves of training, one point per epoch trained (``train/loss``, ``train/lr``,
    ``train/images_per_s``): a resumed run continues them."""

    def write(epoch: int, values: dict[str, float]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(log_dir=str(logdir)) as writer:
            for key, value in values.items():
                writer.add_scalar(f"train/{key}", value, global_step=epoch)

    return write


def write_evaluation_board(logdir: Path, rows: list[dict[str, Any]], summary: dict[str, Any], epoch: int) -> None:
    """The inherited accuracies after training, at the last epoch's step: their histogram, mean,
    smallest and largest network, and the Spearman against the published accuracies (once per
    epoch: a rerun that trained nothing more adds nothing)."""
    from torch.utils.tensorboard import SummaryWriter

    if logdir.is_dir() and last_steps(logdir).get("eval/mean_accuracy", -1) >= epoch:
        return

    evaluation, rho = summary["evaluation"], summary["spearman_vs_published"]["rho"]
    with SummaryWriter(log_dir=str(logdir)) as writer:
        writer.add_histogram("eval/inherited_accuracy", np.array([r["accuracy"] for r in rows]), global_step=epoch)
        for key in ("mean_accuracy", "smallest_accuracy", "largest_accuracy"):
            writer.add_scalar(f"eval/{key}", evaluation[key], global_step=epoch)
        if rho is not None:
            writer.add_scalar("eval/spearman_vs_published", rho, global_step=epoch)


def evaluation_archs(space: SupernetSpace, count: int, seed: int) -> list[Architecture]:
    """``count`` distinct sampled architectures, then the smallest and the largest."""
    rng = np.random.default_rng(seed)
    chosen = {space.smallest(): None, space.largest(): None}
    sampled: dict[Architecture, None] = {}
    for _ in range(100 * count):  # a bound, for spaces with fewer distinct networks than count
        if len(sampled) == count:
            break
        arch = space.sample(rng)
        if arch not in chosen:
            sampled[arch] = None
    return [*sampled, *chosen]


def training_summary(training: TrainingResult, cfg: DictConfig) -> dict[str, Any]:
    return {
        "epochs": training.epochs,
        "resumed_from_epoch": training.resumed_from,
        "batch_size": cfg.batch_size,
        "losses": list(training.losses),
        "images": training.images,
        "seconds": training.seconds,
        # Images per second of the batches stepped through (a sandwich step runs each several times).
        "images_per_s": None if training.images == 0 else training.images_per_s,
    }


def missing_table(cfg: DictConfig) -> str | None:
    """Why there is no published accuracy to compare with, or None when the space's table is there."""
    table_dir, column = cfg.space.get("table_dir"), cfg.space.get("accuracy_column")
    if table_dir is None or column is None:
        return f"the space {cfg.space.name} names no benchmark table with an accuracy column"
    archs = Path(table_dir).expanduser().resolve() / "archs.csv"
    if not archs.is_file():
        return (
            f"no benchmark table at {archs.parent} ({archs.name} not found; data_dir is {cfg.data_dir}): "
            "set HWNAS_DATA=/path/to/data or data_dir=/path/to/data to compare with published accuracies"
        )
    return None


def published_accuracies(cfg: DictConfig, archs: list[Architecture]) -> dict[str, float]:
    """The space table's accuracy of each architecture it holds."""
    table = BenchmarkTable.load(cfg.space.table_dir)
    column = cfg.space.accuracy_column
    values = table.accuracy(column)
    found = {}
    for arch in archs:
        try:
            found[arch.string] = float(values[table.lookup(arch.string)])
        except KeyError:  # sampled tables hold only some architectures
            continue
    return {arch: value for arch, value in found.items() if math.isfinite(value)}


def spearman_summary(cfg: DictConfig, rows: list[dict[str, Any]], missing: str | None) -> dict[str, Any]:
    """Rank correlation of inherited with published accuracy, reported as found (never asserted)."""
    pairs = [(r["accuracy"], r["published_accuracy"]) for r in rows if r["published_accuracy"] is not None]
    column = cfg.space.get("accuracy_column")
    if missing:
        return {"rho": None, "n": 0, "column": column, "reason": missing}
    if len(pairs) < 3:
        where = cfg.space.get("table_dir")
        return {
            "rho": None,
            "n": len(pairs),
            "column": column,
            "reason": f"fewer than 3 evaluated architectures have a published accuracy in {where}",
        }
    from scipy.stats import spearmanr  # scikit-learn's dependency

    inherited, published = zip(*pairs)
    rho = spearmanr(inherited, published).statistic
    return {
        "rho": None if not math.isfinite(rho) else float(rho),
        "n": len(pairs),
        "column": column,
        "table_dir": str(Path(cfg.space.table_dir).resolve()),
    }


if __name__ == "__main__":
    main()
