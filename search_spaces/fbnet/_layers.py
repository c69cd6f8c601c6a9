"""FBNet networks as lookup-table layers: stem, the 22 searchable layers, head.

HW-NAS-Bench's FBNet latencies for raspi4, pixel3, eyeriss and fpga are sums of per-layer lookup
tables over exactly these layers. A layer's key names its configuration, not its position, so
identical configurations at different positions (layers 2-4, 6-8, ...) share one key:

* ``stem:c3-<C>:s<stride>:h<H>``: 3x3 conv 3 -> C + BN + ReLU on a (3, H, H) input;
* ``<block>:c<Cin>-<Cout>:s<stride>:h<H>``: one searchable layer, ``<block>`` one of
  ``k3_e1 ... k5_e6, skip`` (FBNet's names), input (Cin, H, H);
* ``head:c<Cin>-<Chead>:h<H>:n<classes>``: 1x1 conv + BN + ReLU, global pooling, classifier.

The CIFAR-100 macro has 12 distinct layer shapes x 9 blocks + stem + head = 110 keys
(the ImageNet macro too).
"""

from __future__ import annotations

import re

from torch import nn

from nas import ArchitectureError, LayerSpec
from search_spaces._init import build_keyed_layer
from search_spaces.fbnet._blocks import (
    BLOCKS,
    OPS,
    FBNetMacro,
    LayerShape,
    conv_bn,
    make_block,
)
from search_spaces.fbnet._blocks import LayerSpec as BlockLayerSpec

_PATTERNS: dict[str, re.Pattern[str]] = {
    "stem": re.compile(r"stem:c3-(?P<cout>\d+):s(?P<s>\d+):h(?P<h>\d+)"),
    "block": re.compile(r"(?P<op>[a-z0-9_]+):c(?P<cin>\d+)-(?P<cout>\d+):s(?P<s>\d+):h(?P<h>\d+)"),
    "head": re.compile(r"head:c(?P<cin>\d+)-(?P<cout>\d+):h(?P<h>\d+):n(?P<n>\d+)"),
}
KEY_FORMATS = (
    "stem:c3-<C>:s<stride>:h<H>, <block>:c<Cin>-<Cout>:s<stride>:h<H> (block one of "
    + ", ".join(OPS)
    + "), head:c<Cin>-<Chead>:h<H>:n<classes>"
)


def stem_layer(channels: int, stride: int, size: int) -> LayerSpec:
    return LayerSpec(f"stem:c3-{channels}:s{stride}:h{size}", (3, size, size))


def block_layer(op: str, shape: LayerShape, size: int) -> LayerSpec:
    return LayerSpec(
        f"{op}:c{shape.in_channels}-{shape.out_channels}:s{shape.stride}:h{size}",
        (shape.in_channels, size, size),
    )


def head_layer(in_channels: int, head_channels: int, size: int, num_classes: int) -> LayerSpec:
    return LayerSpec(f"head:c{in_channels}-{head_channels}:h{size}:n{num_classes}", (in_channels, size, size))


def network_layers(macro: FBNetMacro, ops: tuple[str, ...]) -> tuple[LayerSpec, ...]:
    """Stem, one layer per block of ``ops`` (at the macro's positions), head."""
    if len(ops) != len(macro.layers):
        raise ValueError(f"{len(ops)} block(s) for a macro of {len(macro.layers)} layers")
    sizes = macro.input_sizes()
    return (
        stem_layer(macro.stem_channels, macro.stem_stride, macro.resolution),
        *(block_layer(op, shape, size) for op, shape, size in zip(ops, macro.layers, sizes)),
        head_layer(macro.last_channels, macro.head_channels, sizes[-1], macro.num_classes),
    )


def distinct_layers(macro: FBNetMacro) -> tuple[LayerSpec, ...]:
    """Every layer key of the macro's networks once (network order, blocks in OPS order)."""
    sizes = macro.input_sizes()
    seen: dict[str, LayerSpec] = {}
    for layer in (
        stem_layer(macro.stem_channels, macro.stem_stride, macro.resolution),
        *(block_layer(op, shape, size) for shape, size in zip(macro.layers, sizes) for op in OPS),
        head_layer(macro.last_channels, macro.head_channels, sizes[-1], macro.num_classes),
    ):
        seen.setdefault(layer.key, layer)
    return tuple(seen.values())


def _parse(key: str) -> tuple[str, dict[str, str]]:
    kind = key.split(":", 1)[0]
    pattern = _PATTERNS.get(kind if kind in ("stem", "head") else "block")
    match = pattern.fullmatch(key) if pattern is not None else None
    if match is None or (kind not in ("stem", "head") and match["op"] not in BLOCKS):
        raise ArchitectureError(f"{key!r} is not an FBNet layer key; keys are {KEY_FORMATS}")
    fields = match.groupdict()
    if "s" in fields and fields["s"] not in ("1", "2"):
        raise ArchitectureError(f"{key!r} has stride {fields['s']}; FBNet layers have stride 1 or 2")
    return ("block" if kind not in ("stem", "head") else kind), fields


def layer_of_key(key: str) -> LayerSpec:
    """The layer a key names, its input shape derived from the key (keys are data)."""
    kind, f = _parse(key)
    if kind == "stem":
        return stem_layer(int(f["cout"]), int(f["s"]), int(f["h"]))
    if kind == "head":
        return head_layer(int(f["cin"]), int(f["cout"]), int(f["h"]), int(f["n"]))
    return block_layer(f["op"], LayerShape(int(f["cin"]), int(f["cout"]), int(f["s"])), int(f["h"]))


def _module(key: str) -> nn.Module:
    kind, f = _parse(key)
    if kind == "stem":
        return conv_bn(3, int(f["cout"]), 3, stride=int(f["s"]))
    if kind == "head":
        return nn.Sequential(
            conv_bn(int(f["cin"]), int(f["cout"]), 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(int(f["cout"]), int(f["n"])),
        )
    shape = LayerShape(int(f["cin"]), int(f["cout"]), int(f["s"]))
    return make_block(BlockLayerSpec(shape, BLOCKS[f["op"]]))


def build_layer(layer: LayerSpec, seed: int = 0) -> nn.Module:
    """The module of one FBNet layer key (the network's own blocks), weights from ``seed`` alone."""
    return build_keyed_layer(layer, layer_of_key, _module, seed)
