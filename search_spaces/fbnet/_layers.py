"""FBNet networks as lookup-table layers: stem, the 22 searchable layers, head.

HW-NAS-Bench's FBNet latencies for raspi4, pixel3, eyeriss and fpga are sums of per-layer lookup
tables over exactly these layers. A layer's key names its configuration, not its position, so
identical configurations at different positions (layers 2-4, 6-8, ...) share one key:

* ``stem:c3-<C>:s<stride>:h<H>``: 3x3 conv 3 -> C + BN + ReLU on a (3, H, H) input;
* ``<block>:c<Cin>-<Cout>:s<stride>:h<H>``: one searchable layer, ``<block>`` one of
  ``k3_e1 ... k5_e6, skip`` (FBNet's names), input (Cin, H, H);
* ``head:c<Cin>-<Chead>:h<H>:n<classes>``: 1x1 conv + BN + ReLU, global pooling, classifier.

The CIFAR-100 macro has 12 distinct layer shapes x 9 blocks + stem + head = 110 keys
(the ImageNet macro too). Each kind of key is a frozen value (:class:`StemKey`,
:class:`BlockKey`, :class:`HeadKey`) and :func:`parse_layer_key` the one parser of their strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from nas import ArchitectureError, LayerSpec
from search_spaces._keys import LayerKey, build_keyed_layer, parse_key
from search_spaces.fbnet._blocks import (
    BLOCKS,
    OPS,
    FBNetLayer,
    FBNetMacro,
    LayerShape,
    conv_bn,
    make_block,
)

KEY_FORMATS = (
    "stem:c3-<C>:s<stride>:h<H>, <block>:c<Cin>-<Cout>:s<stride>:h<H> (block one of "
    + ", ".join(OPS)
    + "), head:c<Cin>-<Chead>:h<H>:n<classes>"
)


def _check_stride(key: LayerKey, stride: int) -> None:
    if stride not in (1, 2):
        raise ArchitectureError(f"{str(key)!r} has stride {stride}; FBNet layers have stride 1 or 2")


@dataclass(frozen=True)
class StemKey(LayerKey):
    """``stem:c3-<C>:s<stride>:h<H>``: 3x3 conv 3 -> C + BN + ReLU."""

    channels: int
    stride: int
    size: int
    PATTERN = re.compile(r"stem:c3-(?P<channels>\d+):s(?P<stride>\d+):h(?P<size>\d+)")

    kind = "stem"

    def check(self) -> None:
        _check_stride(self, self.stride)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, self.size, self.size)

    def module(self) -> nn.Module:
        return conv_bn(3, self.channels, 3, stride=self.stride)

    def __str__(self) -> str:
        return f"stem:c3-{self.channels}:s{self.stride}:h{self.size}"


@dataclass(frozen=True)
class HeadKey(LayerKey):
    """``head:c<Cin>-<Chead>:h<H>:n<classes>``: 1x1 conv + BN + ReLU, global pooling, classifier."""

    in_channels: int
    head_channels: int
    size: int
    num_classes: int
    PATTERN = re.compile(r"head:c(?P<in_channels>\d+)-(?P<head_channels>\d+):h(?P<size>\d+):n(?P<num_classes>\d+)")

    kind = "head"

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_channels, self.size, self.size)

    def module(self) -> nn.Module:
        return nn.Sequential(
            conv_bn(self.in_channels, self.head_channels, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(self.head_channels, self.num_classes),
        )

    def __str__(self) -> str:
        return f"head:c{self.in_channels}-{self.head_channels}:h{self.size}:n{self.num_classes}"


@dataclass(frozen=True)
class BlockKey(LayerKey):
    """``<block>:c<Cin>-<Cout>:s<stride>:h<H>``: one searchable layer with FBNet's block ``op``."""

    op: str
    shape: LayerShape
    size: int
    PATTERN = re.compile(r"(?P<op>[a-z0-9_]+):c(?P<cin>\d+)-(?P<cout>\d+):s(?P<s>\d+):h(?P<h>\d+)")

    def check(self) -> None:
        if self.op not in BLOCKS:
            raise ArchitectureError(f"{str(self)!r} is not an FBNet layer key; keys are {KEY_FORMATS}")
        _check_stride(self, self.shape.stride)

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> BlockKey:
        shape = LayerShape(int(fields["cin"]), int(fields["cout"]), int(fields["s"]))
        return cls(fields["op"], shape, int(fields["h"]))

    @property
    def kind(self) -> str:
        return self.op

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.shape.in_channels, self.size, self.size)

    def module(self) -> nn.Module:
        return make_block(FBNetLayer(self.shape, BLOCKS[self.op]))

    def __str__(self) -> str:
        shape = self.shape
        return f"{self.op}:c{shape.in_channels}-{shape.out_channels}:s{shape.stride}:h{self.size}"


FBNetLayerKey = StemKey | HeadKey | BlockKey
#: Stem and head first: their strings also match the block pattern (whose op then is no block).
_KINDS: tuple[type[LayerKey], ...] = (StemKey, HeadKey, BlockKey)


def parse_layer_key(key: str) -> FBNetLayerKey:
    """The value of an FBNet key string; refused naming the formats when it is none."""
    return parse_key(key, _KINDS, "FBNet", KEY_FORMATS)  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class LayerTable:
    """Every layer of a macro's networks by position: a layer is a function of its position and
    block alone, so a space lists a network from this table (made once) without building keys."""

    stem: LayerSpec
    #: Per searchable layer, its layer for each block name.
    blocks: tuple[dict[str, LayerSpec], ...]
    head: LayerSpec

    @classmethod
    def of(cls, macro: FBNetMacro) -> LayerTable:
        sizes = macro.input_sizes()
        return cls(
            StemKey(macro.stem_channels, macro.stem_stride, macro.resolution).layer,
            tuple({op: BlockKey(op, shape, size).layer for op in OPS} for shape, size in zip(macro.layers, sizes)),
            HeadKey(macro.last_channels, macro.head_channels, sizes[-1], macro.num_classes).layer,
        )

    def network(self, ops: tuple[str, ...]) -> tuple[LayerSpec, ...]:
        """Stem, one layer per block of ``ops`` (at the macro's positions), head."""
        if len(ops) != len(self.blocks):
            raise ValueError(f"{len(ops)} block(s) for a macro of {len(self.blocks)} layers")
        return (self.stem, *(by_op[op] for by_op, op in zip(self.blocks, ops)), self.head)

    def distinct(self) -> tuple[LayerSpec, ...]:
        """Every layer key of the macro's networks once (network order, blocks in OPS order)."""
        seen: dict[str, LayerSpec] = {}
        for layer in (self.stem, *(layer for by_op in self.blocks for layer in by_op.values()), self.head):
            seen.setdefault(layer.key, layer)
        return tuple(seen.values())


def build_layer(layer: LayerSpec, seed: int = 0) -> nn.Module:
    """The module of one FBNet layer key (the network's own blocks), weights from ``seed`` alone."""
    return build_keyed_layer(layer, parse_layer_key(layer.key), seed)
