"""Supernet training with resumable checkpoints, and inherited-accuracy evaluation.

Every random draw comes from two generators the trainer owns and checkpoints: a numpy Generator
for the architectures a strategy samples and a torch Generator for the DataLoader's shuffling.
A checkpoint is written atomically after every epoch, so a run killed at any moment restarts
from its last finished epoch and ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from nas._architecture import Architecture
from nas._supernet import Supernet
from nas.errors import HwnasError
from nas.training._bn import recalibrated_subnet
from nas.training._data import ImageDataset
from nas.training._sampling import SamplingStrategy, fit_input

log = logging.getLogger("hwnas.training")

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class OptimizerConfig:
    """SGD with momentum and a cosine learning-rate decay to zero over all steps of the run."""

    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True


@dataclass(frozen=True)
class TrainingResult:
    """What :meth:`SupernetTrainer.fit` did; throughput counts this call's epochs only."""

    epochs: int
    #: Mean training loss of every epoch, those of resumed-from checkpoints included.
    losses: tuple[float, ...]
    #: Epochs already finished (read from the checkpoint) when this call started.
    resumed_from: int
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


class CheckpointMismatchError(HwnasError, ValueError):
    """A checkpoint written by a run with other settings than the one asked to resume it."""


class TrainingDivergedError(HwnasError, ValueError):
    """A training loss that is no longer finite: the run stops at once, not after its epochs."""


class SupernetTrainer:
    """Trains ``supernet`` on ``data`` with ``strategy``; :meth:`fit` resumes from a checkpoint.

    With ``checkpoint_dir`` set, ``checkpoint_dir/checkpoint.pt`` holds the supernet, optimizer,
    scheduler, finished epochs, losses and both generators' states after every epoch.
    """

    def __init__(
        self,
        supernet: Supernet,
        data: ImageDataset,
        strategy: SamplingStrategy,
        optimizer: OptimizerConfig = OptimizerConfig(),
        epochs: int = 5,
        batch_size: int = 64,
        seed: int = 0,
        checkpoint_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        num_workers: int = 0,
        progress: bool = True,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        if epochs < 1 or batch_size < 1:
            raise ValueError(f"SupernetTrainer needs epochs >= 1 and batch_size >= 1, got {epochs}, {batch_size}")
        self.supernet = supernet.to(device)
        self.data = data
        self.strategy = strategy
        self.optimizer_config = optimizer
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.progress = progress
        #: Called after each epoch this call trains (not those resumed from a checkpoint) with the
        #: epoch's number (from 1) and its loss, last learning rate and images/s: curves
        #: (TensorBoard) that a resumed run continues without repeating an epoch.
        self.on_epoch = on_epoch

    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_FILE

    def settings(self) -> dict[str, Any]:
        """What must match for a checkpoint to be resumed (anything else changes the run)."""
        return {
            "space": repr(self.supernet.space),
            "data": repr(self.data),
            "strategy": repr(self.strategy),
            "optimizer": dataclasses.asdict(self.optimizer_config),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    def fit(self) -> TrainingResult:
        train, _ = self.data.splits()
        arch_rng = np.random.default_rng(self.seed)
        # A separate stream for shuffling, so the number of architectures a strategy draws per
        # step cannot change the order of the data.
        shuffle_generator = torch.Generator().manual_seed(self.seed + 1)
        loader = self._loader(train, shuffle_generator)
        optimizer = torch.optim.SGD(
            self.supernet.parameters(),
            lr=self.optimizer_config.lr,
            momentum=self.optimizer_config.momentum,
            weight_decay=self.optimizer_config.weight_decay,
            nesterov=self.optimizer_config.nesterov,
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.epochs * len(loader))
        done, losses = self._resume(optimizer, scheduler, arch_rng, shuffle_generator)
        images, seconds = 0, 0.0
        for epoch in range(done, self.epochs):
            started = time.perf_counter()
            loss, seen = self._epoch(epoch, loader, optimizer, scheduler, arch_rng)
            seconds += time.perf_counter() - started
            images += seen
            losses.append(loss)
            rate = seen / max(time.perf_counter() - started, 1e-9)
            log.info(
                "epoch %d/%d: loss %.4f, lr %.4g, %.1f images/s",
                epoch + 1,
                self.epochs,
                loss,
                scheduler.get_last_lr()[0],
                rate,
            )
            self._save(epoch + 1, losses, optimizer, scheduler, arch_rng, shuffle_generator)
            if self.on_epoch is not None:
                self.on_epoch(epoch + 1, {"loss": loss, "lr": scheduler.get_last_lr()[0], "images_per_s": rate})
        return TrainingResult(self.epochs, tuple(losses), done, images, seconds)

    def _loader(self, train: Dataset, generator: torch.Generator) -> DataLoader:
        # drop_last: a final batch of one image would break BatchNorm in train mode.
        return DataLoader(
            train,
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
            drop_last=len(train) > self.batch_size,  # type: ignore[arg-type]
            num_workers=self.num_workers,
        )

    def _epoch(
        self,
        epoch: int,
        loader: DataLoader,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        rng: np.random.Generator,
    ) -> tuple[float, int]:
        self.supernet.train()
        total, seen = 0.0, 0
        batches = tqdm(loader, desc=f"epoch {epoch + 1}/{self.epochs}", disable=not self.progress, leave=False)
        for batch, (images, labels) in enumerate(batches, start=1):
            images, labels = images.to(self.device), labels.to(self.device)
            # set_to_none: ops a step did not run keep grad None, and SGD then leaves them alone
            # (no weight decay or momentum on weights the sampled architectures did not use).
            optimizer.zero_grad(set_to_none=True)
            loss = self.strategy.step(self.supernet, images, labels, rng)
            if not math.isfinite(loss):  # before the step: the weights stay those of the last finite loss
                kept = f"the checkpoint of epoch {epoch} is kept" if epoch else "no epoch had finished"
                raise TrainingDivergedError(
                    f"epoch {epoch + 1}, batch {batch}: the training loss is {loss}; the learning rate "
                    f"(optimizer.lr={self.optimizer_config.lr:g}) is likely too high for this data ({kept}): "
                    "lower optimizer.lr and train into a new directory"
                )
            optimizer.step()
            scheduler.step()
            total += loss * len(labels)
            seen += len(labels)
            batches.set_postfix(loss=f"{loss:.3f}")
        return total / max(seen, 1), seen

    def _resume(
        self,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        arch_rng: np.random.Generator,
        shuffle_generator: torch.Generator,
    ) -> tuple[int, list[float]]:
        path = self.checkpoint_path
        if path is None or not path.is_file():
            return 0, []
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("settings") != self.settings():
            raise CheckpointMismatchError(
                f"checkpoint {path} was written by a run with other settings "
                f"({state.get('settings')}); this run has {self.settings()}. "
                "Move the checkpoint away or train in another directory."
            )
        self.supernet.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        arch_rng.bit_generator.state = state["numpy_rng"]
        shuffle_generator.set_state(state["torch_rng"].cpu())
        log.info("resumed from %s after epoch %d of %d", path, state["epoch"], self.epochs)
        return int(state["epoch"]), list(state["losses"])

    def _save(
        self,
        epoch: int,
        losses: list[float],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        arch_rng: np.random.Generator,
        shuffle_generator: torch.Generator,
    ) -> None:
        path = self.checkpoint_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": CHECKPOINT_FORMAT,
            "settings": self.settings(),
            "epoch": epoch,
            "losses": list(losses),
            "model": self.supernet.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "numpy_rng": arch_rng.bit_generator.state,
            "torch_rng": shuffle_generator.get_state(),
        }
        # Written beside the target and renamed over it: a kill mid-write leaves the previous
        # checkpoint intact, never a truncated one.
        temporary = path.with_name(path.name + ".tmp")
        with temporary.open("wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)


@torch.no_grad()
def evaluate(
    supernet: Supernet,
    archs: Sequence[Architecture],
    data: ImageDataset,
    bn_batches: int = 4,
    batch_size: int = 128,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Inherited top-1 accuracy (percent, on the validation split) of each architecture, after
    recalibrating its BN statistics on ``bn_batches`` training batches (the same for every
    architecture: a seeded shuffle)."""
    train, val = data.splits()
    shuffled = DataLoader(train, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    calibration = list(itertools.islice(shuffled, bn_batches))
    val_loader = DataLoader(val, batch_size=batch_size)
    accuracies: dict[str, float] = {}
    for arch in tqdm(archs, desc="inherited accuracy", disable=not progress, leave=False):
        accuracies[arch.string] = subnet_accuracy(supernet, arch, calibration, val_loader)
    return accuracies


@torch.no_grad()
def subnet_accuracy(supernet: Supernet, arch: Architecture, calibration: list[Any], val: DataLoader) -> float:
    """Top-1 accuracy (percent) of ``arch``'s subnet on ``val``, BN recalibrated on ``calibration``."""
    return top1_percent(recalibrated_subnet(supernet, arch, calibration), supernet, arch, val)


@torch.no_grad()
def top1_percent(
    classify: Callable[[torch.Tensor], torch.Tensor], supernet: Supernet, arch: Architecture, val: DataLoader
) -> float:
    """Top-1 accuracy (percent) on ``val`` of ``classify`` (``arch``'s subnet, or a deployed file of
    it), given the images at ``arch``'s input resolution on the supernet's device."""
    device = next(supernet.parameters()).device
    correct, total = 0, 0
    for images, labels in val:
        logits = classify(fit_input(images.to(device), supernet, arch))
        correct += int((logits.argmax(dim=-1) == labels.to(device)).sum())
        total += len(labels)
    return 100.0 * correct / max(total, 1)
