"""NAS-Bench-201 networks as lookup-table layers: every edge op, cell sum, reduction, stem and head.

The unit a lookup table can hold for NB201 is not the cell (15,625 of them per stage) but its
parts: a cell applies six independent ops to tensors of one shape and adds them up at its nodes.
A network is therefore listed as

* ``stem:c<C>:h<H>``: 3x3 conv 3 -> C + BN on a (3, H, H) input;
* per cell, its six edge ops in NB201's string order, ``op:<op>:c<C>:h<H>`` (``none``,
  ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``), each (C, H, H) ->
  (C, H, H), then ``cell_sum:c<C>:h<H>``: the cell's three additions (node 2 adds two tensors,
  node 3 three), which every cell has whatever its ops;
* ``reduction:c<Cin>-<Cout>:h<H>``: the residual reduction block, input (Cin, H, H);
* ``head:c<C>:h<H>:n<classes>``: BN, ReLU, global pooling and the classifier.

A network's cost in a lookup table is the sum over these layers: its edge ops' costs plus a
per-cell overhead (``cell_sum``), plus stem, reductions and head. The published C=16, N=5
networks at 32x32 have 22 distinct keys: 1 stem, 5 ops x 3 stages, 3 cell sums, 2 reductions,
1 head. Keys name everything a layer's module needs, so :func:`build_layer` rebuilds a layer from
its key alone; each kind of key is a frozen value (:class:`StemKey`, :class:`OpKey`...) and
:func:`parse_layer_key` the one parser of their strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from nas import ArchitectureError, LayerSpec
from search_spaces._keys import LayerKey, build_keyed_layer, parse_key
from search_spaces.nb201._ops import OPS, ResidualReduction, make_op

#: Nodes of an NB201 cell (input node 0 to output node 3).
_NUM_NODES = 4

KEY_FORMATS = (
    "stem:c<C>:h<H>, op:<op>:c<C>:h<H>, cell_sum:c<C>:h<H>, reduction:c<Cin>-<Cout>:h<H>, head:c<C>:h<H>:n<classes>"
)


@dataclass(frozen=True)
class StemKey(LayerKey):
    """``stem:c<C>:h<H>``: 3x3 conv 3 -> C + BN."""

    channels: int
    size: int
    PATTERN = re.compile(r"stem:c(?P<channels>\d+):h(?P<size>\d+)")

    kind = "stem"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, self.size, self.size)

    def module(self) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, self.channels, 3, padding=1, bias=False), nn.BatchNorm2d(self.channels))

    def __str__(self) -> str:
        return f"stem:c{self.channels}:h{self.size}"


@dataclass(frozen=True)
class OpKey(LayerKey):
    """``op:<op>:c<C>:h<H>``: one edge op, (C, H, H) -> (C, H, H)."""

    op: str
    channels: int
    size: int
    PATTERN = re.compile(r"op:(?P<op>[a-z0-9_]+):c(?P<channels>\d+):h(?P<size>\d+)")

    def check(self) -> None:
        if self.op not in OPS:
            raise ArchitectureError(f"{str(self)!r} has unknown op {self.op!r}; allowed ops: {', '.join(OPS)}")

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> OpKey:
        return cls(fields["op"], int(fields["channels"]), int(fields["size"]))

    @property
    def kind(self) -> str:
        return f"op:{self.op}"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.channels, self.size, self.size)

    def module(self) -> nn.Module:
        return make_op(self.op, self.channels)

    def __str__(self) -> str:
        return f"op:{self.op}:c{self.channels}:h{self.size}"


@dataclass(frozen=True)
class CellSumKey(LayerKey):
    """``cell_sum:c<C>:h<H>``: a cell's three node additions."""

    channels: int
    size: int
    PATTERN = re.compile(r"cell_sum:c(?P<channels>\d+):h(?P<size>\d+)")

    kind = "cell_sum"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.channels, self.size, self.size)

    def module(self) -> nn.Module:
        return CellSum()

    def __str__(self) -> str:
        return f"cell_sum:c{self.channels}:h{self.size}"


@dataclass(frozen=True)
class ReductionKey(LayerKey):
    """``reduction:c<Cin>-<Cout>:h<H>``: the residual reduction block."""

    in_channels: int
    out_channels: int
    size: int
    PATTERN = re.compile(r"reduction:c(?P<in_channels>\d+)-(?P<out_channels>\d+):h(?P<size>\d+)")

    kind = "reduction"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_channels, self.size, self.size)

    def module(self) -> nn.Module:
        return ResidualReduction(self.in_channels, self.out_channels)

    def __str__(self) -> str:
        return f"reduction:c{self.in_channels}-{self.out_channels}:h{self.size}"


@dataclass(frozen=True)
class HeadKey(LayerKey):
    """``head:c<C>:h<H>:n<classes>``: BN, ReLU, global pooling and the classifier."""

    channels: int
    size: int
    num_classes: int
    PATTERN = re.compile(r"head:c(?P<channels>\d+):h(?P<size>\d+):n(?P<num_classes>\d+)")

    kind = "head"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.channels, self.size, self.size)

    def module(self) -> nn.Module:
        return nn.Sequential(
            nn.BatchNorm2d(self.channels),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(self.channels, self.num_classes),
        )

    def __str__(self) -> str:
        return f"head:c{self.channels}:h{self.size}:n{self.num_classes}"


NB201LayerKey = StemKey | OpKey | CellSumKey | ReductionKey | HeadKey
_KINDS: tuple[type[LayerKey], ...] = (StemKey, OpKey, CellSumKey, ReductionKey, HeadKey)


def parse_layer_key(key: str) -> NB201LayerKey:
    """The value of an NB201 key string; refused naming the formats when it is none."""
    return parse_key(key, _KINDS, "NB201", KEY_FORMATS)  # type: ignore[return-value]


def network_layers(
    ops: tuple[str, ...], channels: int, cells_per_stage: int, resolution: int, num_classes: int
) -> tuple[LayerSpec, ...]:
    """The layers of the network whose cell has ``ops`` on its edges (NB201's string order)."""
    layers = [StemKey(channels, resolution).layer]
    size = resolution
    for stage in range(3):
        width = channels * 2**stage
        if stage > 0:
            layers.append(ReductionKey(width // 2, width, size).layer)
            size //= 2
        cell = [*(OpKey(op, width, size).layer for op in ops), CellSumKey(width, size).layer]
        layers.extend(cell * cells_per_stage)  # the cells of a stage are one configuration
    layers.append(HeadKey(channels * 4, size, num_classes).layer)
    return tuple(layers)


def distinct_layers(channels: int, resolution: int, num_classes: int) -> tuple[LayerSpec, ...]:
    """Every layer any network of the space has, once each (in network order, ops in OPS order)."""
    keys: list[LayerKey] = [StemKey(channels, resolution)]
    size = resolution
    for stage in range(3):
        width = channels * 2**stage
        if stage > 0:
            keys.append(ReductionKey(width // 2, width, size))
            size //= 2
        keys.extend(OpKey(op, width, size) for op in OPS)
        keys.append(CellSumKey(width, size))
    keys.append(HeadKey(channels * 4, size, num_classes))
    return tuple(key.layer for key in keys)


class CellSum(nn.Module):
    """The additions of an NB201 cell alone: each node sums what reaches it from every earlier
    node (here the tensors themselves, as if every edge were ``skip_connect``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in range(1, _NUM_NODES):
            total = nodes[0]
            for term in nodes[1:node]:
                total = total + term
            nodes.append(total)
        return nodes[-1]


def build_layer(layer: LayerSpec, seed: int = 0) -> nn.Module:
    """The module of one NB201 layer key (the network's own blocks), weights from ``seed`` alone."""
    return build_keyed_layer(layer, parse_layer_key(layer.key), seed)


__all__ = [
    "KEY_FORMATS",
    "CellSum",
    "CellSumKey",
    "HeadKey",
    "NB201LayerKey",
    "OpKey",
    "ReductionKey",
    "StemKey",
    "build_layer",
    "distinct_layers",
    "network_layers",
    "parse_layer_key",
]
