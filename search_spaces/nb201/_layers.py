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
its key alone.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from nas import ArchitectureError, LayerSpec
from search_spaces._init import build_keyed_layer
from search_spaces.nb201._ops import OPS, ResidualReduction, make_op

#: Nodes of an NB201 cell (input node 0 to output node 3).
_NUM_NODES = 4

_PATTERNS: dict[str, re.Pattern[str]] = {
    "stem": re.compile(r"stem:c(?P<c>\d+):h(?P<h>\d+)"),
    "op": re.compile(r"op:(?P<op>[a-z0-9_]+):c(?P<c>\d+):h(?P<h>\d+)"),
    "cell_sum": re.compile(r"cell_sum:c(?P<c>\d+):h(?P<h>\d+)"),
    "reduction": re.compile(r"reduction:c(?P<cin>\d+)-(?P<cout>\d+):h(?P<h>\d+)"),
    "head": re.compile(r"head:c(?P<c>\d+):h(?P<h>\d+):n(?P<n>\d+)"),
}
KEY_FORMATS = (
    "stem:c<C>:h<H>, op:<op>:c<C>:h<H>, cell_sum:c<C>:h<H>, reduction:c<Cin>-<Cout>:h<H>, head:c<C>:h<H>:n<classes>"
)


def stem_layer(channels: int, size: int) -> LayerSpec:
    return LayerSpec(f"stem:c{channels}:h{size}", (3, size, size))


def op_layer(op: str, channels: int, size: int) -> LayerSpec:
    return LayerSpec(f"op:{op}:c{channels}:h{size}", (channels, size, size))


def cell_sum_layer(channels: int, size: int) -> LayerSpec:
    return LayerSpec(f"cell_sum:c{channels}:h{size}", (channels, size, size))


def reduction_layer(in_channels: int, out_channels: int, size: int) -> LayerSpec:
    return LayerSpec(f"reduction:c{in_channels}-{out_channels}:h{size}", (in_channels, size, size))


def head_layer(channels: int, size: int, num_classes: int) -> LayerSpec:
    return LayerSpec(f"head:c{channels}:h{size}:n{num_classes}", (channels, size, size))


def network_layers(
    ops: tuple[str, ...], channels: int, cells_per_stage: int, resolution: int, num_classes: int
) -> tuple[LayerSpec, ...]:
    """The layers of the network whose cell has ``ops`` on its edges (NB201's string order)."""
    layers = [stem_layer(channels, resolution)]
    size = resolution
    for stage in range(3):
        width = channels * 2**stage
        if stage > 0:
            layers.append(reduction_layer(width // 2, width, size))
            size //= 2
        for _ in range(cells_per_stage):
            layers.extend(op_layer(op, width, size) for op in ops)
            layers.append(cell_sum_layer(width, size))
    layers.append(head_layer(channels * 4, size, num_classes))
    return tuple(layers)


def distinct_layers(channels: int, resolution: int, num_classes: int) -> tuple[LayerSpec, ...]:
    """Every layer any network of the space has, once each (in network order, ops in OPS order)."""
    layers = [stem_layer(channels, resolution)]
    size = resolution
    for stage in range(3):
        width = channels * 2**stage
        if stage > 0:
            layers.append(reduction_layer(width // 2, width, size))
            size //= 2
        layers.extend(op_layer(op, width, size) for op in OPS)
        layers.append(cell_sum_layer(width, size))
    layers.append(head_layer(channels * 4, size, num_classes))
    return tuple(layers)


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


def _parse(key: str) -> tuple[str, dict[str, str]]:
    kind = key.split(":", 1)[0]
    pattern = _PATTERNS.get(kind)
    match = pattern.fullmatch(key) if pattern is not None else None
    if match is None:
        raise ArchitectureError(f"{key!r} is not an NB201 layer key; keys are {KEY_FORMATS}")
    return kind, match.groupdict()


def layer_of_key(key: str) -> LayerSpec:
    """The layer a key names, its input shape derived from the key (keys are data)."""
    kind, f = _parse(key)
    if kind == "stem":
        return stem_layer(int(f["c"]), int(f["h"]))
    if kind == "op":
        if f["op"] not in OPS:
            raise ArchitectureError(f"{key!r} has unknown op {f['op']!r}; allowed ops: {', '.join(OPS)}")
        return op_layer(f["op"], int(f["c"]), int(f["h"]))
    if kind == "cell_sum":
        return cell_sum_layer(int(f["c"]), int(f["h"]))
    if kind == "reduction":
        return reduction_layer(int(f["cin"]), int(f["cout"]), int(f["h"]))
    return head_layer(int(f["c"]), int(f["h"]), int(f["n"]))


def _module(key: str) -> nn.Module:
    kind, f = _parse(key)
    if kind == "stem":
        channels = int(f["c"])
        return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
    if kind == "op":
        return make_op(f["op"], int(f["c"]))
    if kind == "cell_sum":
        return CellSum()
    if kind == "reduction":
        return ResidualReduction(int(f["cin"]), int(f["cout"]))
    channels = int(f["c"])
    return nn.Sequential(
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, int(f["n"])),
    )


def build_layer(layer: LayerSpec, seed: int = 0) -> nn.Module:
    """The module of one NB201 layer key (the network's own blocks), weights from ``seed`` alone."""
    return build_keyed_layer(layer, layer_of_key, _module, seed)


__all__ = [
    "KEY_FORMATS",
    "CellSum",
    "build_layer",
    "distinct_layers",
    "layer_of_key",
    "network_layers",
]
