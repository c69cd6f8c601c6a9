"""NAS-Bench-201 networks: genes -> plain block specs -> modules (torchvision MobileNetV3 style).

The macro skeleton is the published one (HW-NAS-Bench / HELP / NATS-Bench code): a 3x3 stem conv
with BN, three stages of ``cells_per_stage`` cells at C, 2C, 4C channels joined by residual
reduction blocks, and a BN-ReLU-pool-linear head. Every op of a cell is computed, including ops
on edges that cannot reach the output, because the published latencies were measured that way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from search_spaces._init import materialise
from search_spaces.nb201._ops import ResidualReduction, make_op


@dataclass(frozen=True)
class EdgeSpec:
    """One cell edge: ``op`` applied to node ``from_node`` and summed into node ``to_node``."""

    to_node: int
    from_node: int
    op: str


@dataclass(frozen=True)
class CellSpec:
    channels: int
    edges: tuple[EdgeSpec, ...]


@dataclass(frozen=True)
class ReductionSpec:
    in_channels: int
    out_channels: int


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to build one network, with no torch objects in it."""

    stem_channels: int
    blocks: tuple[CellSpec | ReductionSpec, ...]
    head_channels: int
    num_classes: int


def network_spec(edges: tuple[EdgeSpec, ...], num_classes: int, channels: int, cells_per_stage: int) -> NetworkSpec:
    """The published macro skeleton around one cell (the same cell is repeated everywhere)."""
    blocks: list[CellSpec | ReductionSpec] = []
    for stage in range(3):
        width = channels * 2**stage
        if stage > 0:
            blocks.append(ReductionSpec(width // 2, width))
        blocks.extend(CellSpec(width, edges) for _ in range(cells_per_stage))
    return NetworkSpec(channels, tuple(blocks), channels * 4, num_classes)


class Cell(nn.Module):
    """Node j is the sum of its incoming edges' ops; the cell's output is the last node."""

    def __init__(self, spec: CellSpec) -> None:
        super().__init__()
        self.routes = tuple((e.to_node, e.from_node) for e in spec.edges)
        self.num_nodes = 1 + max(to for to, _ in self.routes)
        self.edges = nn.ModuleList(make_op(e.op, spec.channels) for e in spec.edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in range(1, self.num_nodes):
            incoming = [op(nodes[src]) for (to, src), op in zip(self.routes, self.edges) if to == node]
            total = incoming[0]
            for term in incoming[1:]:
                total = total + term
            nodes.append(total)
        return nodes[-1]


class NB201Network(nn.Module):
    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, spec.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(spec.stem_channels),
        )
        self.cells = nn.Sequential(*(_block(b) for b in spec.blocks))
        self.head = nn.Sequential(
            nn.BatchNorm2d(spec.head_channels),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(spec.head_channels, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.cells(self.stem(x))))


def _block(spec: CellSpec | ReductionSpec) -> nn.Module:
    if isinstance(spec, CellSpec):
        return Cell(spec)
    return ResidualReduction(spec.in_channels, spec.out_channels)


def build_network(spec: NetworkSpec, seed: int) -> NB201Network:
    """A network with PyTorch's default initialisation drawn from ``seed`` alone (see
    :func:`search_spaces._init.materialise`)."""
    return materialise(lambda: NB201Network(spec), seed)
