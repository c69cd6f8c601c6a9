"""Which architectures a supernet training step trains, and against which targets.

A strategy runs the forward and backward passes of one batch (gradients accumulate in the
supernet); the trainer owns the optimizer step. Architectures are drawn from the numpy Generator
the trainer passes in, which it checkpoints, so a resumed run draws the same architectures.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nas._architecture import Architecture
from nas._capabilities import BoundedSpace
from nas._supernet import Supernet


class SamplingStrategy(ABC):
    """One training step's choice of architectures and losses."""

    @abstractmethod
    def step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator) -> float:
        """Forward and backward passes for one batch; returns the mean of the losses taken."""


@dataclass(frozen=True)
class UniformSampling(SamplingStrategy):
    """Single-path uniform sampling (SPOS; NB201's own supernet training): ``n_per_step``
    architectures drawn uniformly, cross-entropy on the labels, gradients averaged so the
    learning rate means the same for any ``n_per_step``."""

    n_per_step: int = 1

    def __post_init__(self) -> None:
        if self.n_per_step < 1:
            raise ValueError(f"UniformSampling needs n_per_step >= 1, got {self.n_per_step}")

    def step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator) -> float:
        total = 0.0
        for _ in range(self.n_per_step):
            arch = supernet.space.sample(rng)
            loss = F.cross_entropy(supernet(fit_input(images, supernet, arch), arch), labels)
            (loss / self.n_per_step).backward()
            total += loss.item()
        return total / self.n_per_step


@dataclass(frozen=True)
class SandwichRule(SamplingStrategy):
    """The sandwich rule with in-place distillation (BigNAS; OFA's progressive shrinking too).

    Each step trains the largest architecture on the labels, then the smallest and ``n_random``
    uniform ones on the largest's soft predictions (detached, via KL divergence), so the small
    subnets learn from the best teacher at hand with no extra model. Gradients of all the
    architectures are summed, as published. The returned loss is the mean of the largest's
    cross-entropy and the students' KL terms; the KL terms can grow while the teacher sharpens,
    so it need not fall over epochs the way a plain cross-entropy does.
    """

    n_random: int = 2

    def __post_init__(self) -> None:
        if self.n_random < 0:
            raise ValueError(f"SandwichRule needs n_random >= 0, got {self.n_random}")

    def step(self, supernet: Supernet, images: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator) -> float:
        space = supernet.space
        if not isinstance(space, BoundedSpace):
            raise TypeError(
                f"the sandwich rule trains the smallest and largest architectures, and {space!r} names "
                "neither (it is no nas.BoundedSpace); train with UniformSampling"
            )
        largest = space.largest()
        logits = supernet(fit_input(images, supernet, largest), largest)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        teacher = logits.detach().softmax(dim=-1)
        losses = [loss.item()]
        for arch in [space.smallest(), *(space.sample(rng) for _ in range(self.n_random))]:
            student = supernet(fit_input(images, supernet, arch), arch)
            loss = F.kl_div(student.log_softmax(dim=-1), teacher, reduction="batchmean")
            loss.backward()
            losses.append(loss.item())
        return sum(losses) / len(losses)


def fit_input(images: torch.Tensor, supernet: Supernet, arch: Architecture) -> torch.Tensor:
    """``images`` resized to ``arch``'s input resolution when the space gives it one of its own
    (elastic resolution, as OFA trains it); unchanged otherwise."""
    size = tuple(supernet.space.input_shape_of(arch)[-2:])
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)
