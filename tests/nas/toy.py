"""A tiny but real search space and objectives for testing the search machinery quickly."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nas import Architecture, ArchitectureError, Candidate, Cost, Direction, Gene, Objective, SearchSpace


class ToySpace(SearchSpace):
    """Two conv layers whose widths and kernel sizes are genes: 4*4*2*2 = 64 architectures."""

    name = "toy"
    input_shape = (3, 8, 8)
    num_classes = 10

    def genes(self) -> tuple[Gene, ...]:
        return (
            Gene("width_0", (4, 8, 16, 32)),
            Gene("width_1", (4, 8, 16, 32)),
            Gene("kernel_0", (1, 3)),
            Gene("kernel_1", (1, 3)),
        )

    def format(self, genes: Mapping[str, object]) -> str:
        return "-".join(f"{genes[g.name]}" for g in self.genes())

    def parse_genes(self, string: str) -> dict[str, object]:
        parts = string.split("-")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise ArchitectureError(f"toy architecture {string!r} is not four '-'-joined integers")
        return {g.name: int(p) for g, p in zip(self.genes(), parts)}

    def build(self, arch: Architecture, seed: int = 0) -> nn.Module:
        w0, w1, k0, k1 = (arch[g.name] for g in self.genes())
        with torch.random.fork_rng():  # deterministic weights, global RNG left as it was
            torch.manual_seed(seed)
            return nn.Sequential(
                nn.Conv2d(3, w0, k0, padding=k0 // 2),
                nn.ReLU(),
                nn.Conv2d(w0, w1, k1, padding=k1 // 2),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(w1, self.num_classes),
            )


class Capacity(Objective):
    """A deterministic stand-in for accuracy: more capacity, higher score (maximise)."""

    direction = Direction.MAXIMIZE
    cost = Cost.LOOKUP

    def __call__(self, candidate: Candidate) -> float:
        a = candidate.arch
        return float(a["width_0"] * a["kernel_0"] ** 2 + a["width_1"] * a["kernel_1"] ** 2)


class ParamCount(Objective):
    """A deterministic stand-in for latency (minimise): the parameter count of the built model."""

    cost = Cost.STATIC

    def __call__(self, candidate: Candidate) -> float:
        return float(sum(p.numel() for p in candidate.model.parameters()))


class NanFor(Objective):
    """Returns NaN for architectures whose first width is ``width``: a broken objective."""

    cost = Cost.LOOKUP

    def __init__(self, name: str, width: int) -> None:
        super().__init__(name)
        self.width = width

    def __call__(self, candidate: Candidate) -> float:
        return float("nan") if candidate.arch["width_0"] == self.width else 1.0
