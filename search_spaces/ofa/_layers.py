"""OFA MobileNetV3 subnets as lookup-table layers, keyed as Once-for-All's Note10 tables key them.

A network's layer keys are exactly its Note10 LUT keys (OFA's ``MBv3LatencyTable``), in order:

* ``Conv-input:<H>x<W>x<C>-output:<h>x<w>x<c>``: the first conv (3x3, BN, hard swish; the
  stride is the ratio of the sizes);
* ``expanded_conv-input:...-output:...-expand:<mid>-kernel:<k>-stride:<s>-idskip:<0|1>-se:<0|1>-hs:<0|1>``:
  one MBConv layer (the expand-1 first block included: its ``expand`` equals its input width);
* ``Conv_1-input:...-output:...``: the final 1x1 expand conv (BN, hard swish);
* ``AvgPool2D-input:...-output:1x1x<C>``: global average pooling;
* ``Conv_2-input:1x1x<C>-output:1x1x<c>``: the feature-mix 1x1 conv (no BN, hard swish);
* ``Logits-input:1x1x<C>-output:<classes>``: dropout and the classifier.

Keys hold every size a layer's module needs, so :func:`build_layer` rebuilds a layer from its key
alone; each kind of key is a frozen value (:class:`ConvKey`, :class:`MBConvKey`...) and
:func:`parse_layer_key` the one parser of their strings. A key is its own lookup-table kind: the
Note10 tables hold no sizes apart from a kind, so a layer they lack borrows no other's cost. Per resolution a width-1.2 space has 1 + 1 + 5 x 2 x 9 + 4 = 96 keys (each stage's first
layer and its other layers, each with 3 kernels x 3 expand ratios); resolutions share the keys
of layers whose input sizes coincide.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import torch
from torch import nn

from nas import ArchitectureError, LayerSpec
from search_spaces._keys import LayerKey, build_keyed_layer, parse_key
from search_spaces.ofa._blocks import Activation, InvertedResidual
from search_spaces.ofa._model import (
    DROPOUT,
    MAX_DEPTH,
    NUM_LAYERS,
    NUM_STAGES,
    ConvSpec,
    MBConvLayer,
    NetworkSpec,
    OFAConfig,
    conv_module,
    network_spec,
)

_IN = r"(?P<in_height>\d+)x(?P<in_width>\d+)x(?P<in_channels>\d+)"
_OUT = r"(?P<out_height>\d+)x(?P<out_width>\d+)x(?P<out_channels>\d+)"
KEY_FORMATS = (
    "Conv-input:HxWxC-output:HxWxC, expanded_conv-input:HxWxC-output:HxWxC-expand:M-kernel:K-stride:S"
    "-idskip:0|1-se:0|1-hs:0|1, Conv_1-input:HxWxC-output:HxWxC, AvgPool2D-input:HxWxC-output:1x1xC, "
    "Conv_2-input:1x1xC-output:1x1xC, Logits-input:1x1xC-output:N (Once-for-All's Note10 LUT keys)"
)


def _size(*dims: int) -> str:
    return "x".join(str(d) for d in dims)


def _out_size(size: int, stride: int) -> int:
    # A conv with padding k//2: ceil(size / stride), written as OFA's LUT code writes it.
    return (size - 1) // stride + 1


class _OFAKey(LayerKey):
    """An OFA key is its own kind (see the module)."""

    @property
    def kind(self) -> str:
        return str(self)


@dataclass(frozen=True)
class _Mapped(_OFAKey):
    """A key from one (H, W, C) map to another."""

    in_height: int
    in_width: int
    in_channels: int
    out_height: int
    out_width: int
    out_channels: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_channels, self.in_height, self.in_width)

    def _sizes(self) -> str:
        return (
            f"input:{_size(self.in_height, self.in_width, self.in_channels)}"
            f"-output:{_size(self.out_height, self.out_width, self.out_channels)}"
        )

    def _check_stride(self, stride: int) -> None:
        out = (_out_size(self.in_height, stride), _out_size(self.in_width, stride))
        if stride not in (1, 2) or (self.out_height, self.out_width) != out:
            raise ArchitectureError(f"{str(self)!r}: its output size does not follow from its input size and stride")


@dataclass(frozen=True)
class ConvKey(_Mapped):
    """``Conv-input:...-output:...``: the first conv (3x3, BN, hard swish); the stride is the
    ratio of the sizes."""

    PATTERN = re.compile(rf"Conv-input:{_IN}-output:{_OUT}")

    def check(self) -> None:
        self._check_stride(self.stride)

    @property
    def stride(self) -> int:
        return 1 if self.in_height == self.out_height else 2

    def module(self) -> nn.Module:
        return conv_module(ConvSpec(self.in_channels, self.out_channels, 3, self.stride, Activation.HSWISH))

    def __str__(self) -> str:
        return f"Conv-{self._sizes()}"


@dataclass(frozen=True)
class MBConvKey(_Mapped):
    """``expanded_conv-input:...-output:...-expand:<mid>-kernel:<k>-stride:<s>-idskip:<0|1>-se:<0|1>-hs:<0|1>``:
    one MBConv layer (the expand-1 first block included: its ``expand`` equals its input width)."""

    expand: int
    kernel: int
    stride: int
    idskip: int
    se: int
    hs: int
    PATTERN = re.compile(
        rf"expanded_conv-input:{_IN}-output:{_OUT}-expand:(?P<expand>\d+)-kernel:(?P<kernel>\d+)"
        r"-stride:(?P<stride>\d+)-idskip:(?P<idskip>[01])-se:(?P<se>[01])-hs:(?P<hs>[01])"
    )

    def check(self) -> None:
        self._check_stride(self.stride)
        if self.idskip != int(self.stride == 1 and self.in_channels == self.out_channels):
            raise ArchitectureError(f"{str(self)!r}: idskip must be 1 exactly when stride is 1 and widths are equal")

    def module(self) -> nn.Module:
        activation = Activation.HSWISH if self.hs else Activation.RELU
        return InvertedResidual(
            self.in_channels, self.expand, self.out_channels, self.kernel, self.stride, activation, bool(self.se)
        )

    def __str__(self) -> str:
        return (
            f"expanded_conv-{self._sizes()}-expand:{self.expand}-kernel:{self.kernel}-stride:{self.stride}"
            f"-idskip:{self.idskip}-se:{self.se}-hs:{self.hs}"
        )


@dataclass(frozen=True)
class FinalExpandKey(_Mapped):
    """``Conv_1-input:...-output:...``: the final 1x1 expand conv (BN, hard swish)."""

    PATTERN = re.compile(rf"Conv_1-input:{_IN}-output:{_OUT}")

    def check(self) -> None:
        if (self.in_height, self.in_width) != (self.out_height, self.out_width):
            raise ArchitectureError(f"{str(self)!r}: Conv_1 is a 1x1 conv of stride 1; its sizes must be equal")

    def module(self) -> nn.Module:
        return conv_module(ConvSpec(self.in_channels, self.out_channels, 1, 1, Activation.HSWISH))

    def __str__(self) -> str:
        return f"Conv_1-{self._sizes()}"


@dataclass(frozen=True)
class PoolKey(_OFAKey):
    """``AvgPool2D-input:<H>x<W>x<C>-output:1x1x<C>``: global average pooling."""

    in_height: int
    in_width: int
    in_channels: int
    out_channels: int
    PATTERN = re.compile(rf"AvgPool2D-input:{_IN}-output:1x1x(?P<out_channels>\d+)")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_channels, self.in_height, self.in_width)

    def module(self) -> nn.Module:
        return GlobalAvgPool()

    def __str__(self) -> str:
        return (
            f"AvgPool2D-input:{_size(self.in_height, self.in_width, self.in_channels)}-output:1x1x{self.out_channels}"
        )


@dataclass(frozen=True)
class FeatureMixKey(_OFAKey):
    """``Conv_2-input:1x1x<C>-output:1x1x<c>``: the feature-mix 1x1 conv (no BN, hard swish)."""

    in_channels: int
    out_channels: int
    PATTERN = re.compile(r"Conv_2-input:1x1x(?P<in_channels>\d+)-output:1x1x(?P<out_channels>\d+)")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_channels, 1, 1)

    def module(self) -> nn.Module:
        return conv_module(ConvSpec(self.in_channels, self.out_channels, 1, 1, Activation.HSWISH, batch_norm=False))

    def __str__(self) -> str:
        return f"Conv_2-input:1x1x{self.in_channels}-output:1x1x{self.out_channels}"


@dataclass(frozen=True)
class LogitsKey(_OFAKey):
    """``Logits-input:1x1x<C>-output:<classes>``: dropout and the classifier."""

    in_channels: int
    num_classes: int
    PATTERN = re.compile(r"Logits-input:1x1x(?P<in_channels>\d+)-output:(?P<num_classes>\d+)")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_channels, 1, 1)

    def module(self) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Dropout(DROPOUT), nn.Linear(self.in_channels, self.num_classes))

    def __str__(self) -> str:
        return f"Logits-input:1x1x{self.in_channels}-output:{self.num_classes}"


OFALayerKey = ConvKey | MBConvKey | FinalExpandKey | PoolKey | FeatureMixKey | LogitsKey
_KINDS: tuple[type[LayerKey], ...] = (ConvKey, MBConvKey, FinalExpandKey, PoolKey, FeatureMixKey, LogitsKey)


def parse_layer_key(key: str) -> OFALayerKey:
    """The value of an OFA key string; refused naming the formats when it is none."""
    return parse_key(key, _KINDS, "OFA", KEY_FORMATS)  # type: ignore[return-value]


def _mbconv_key(layer: MBConvLayer, size: int) -> MBConvKey:
    out = _out_size(size, layer.stride)
    return MBConvKey(
        *(size, size, layer.in_channels, out, out, layer.out_channels),
        expand=layer.mid_channels,
        kernel=layer.kernel_size,
        stride=layer.stride,
        idskip=int(layer.residual),
        se=int(layer.se),
        hs=int(layer.activation is Activation.HSWISH),
    )


def _head_keys(spec: NetworkSpec, size: int) -> tuple[OFALayerKey, ...]:
    expand, mix = spec.final_expand, spec.feature_mix
    return (
        FinalExpandKey(size, size, expand.in_channels, size, size, expand.out_channels),
        PoolKey(size, size, expand.out_channels, expand.out_channels),
        FeatureMixKey(mix.in_channels, mix.out_channels),
        LogitsKey(mix.out_channels, spec.num_classes),
    )


def network_layers(spec: NetworkSpec, made: dict[tuple[object, int], LayerSpec] | None = None) -> tuple[LayerSpec, ...]:
    """The layers of a network, keyed as OFA's ``MBv3LatencyTable`` keys them: first conv, every
    MBConv layer (with its expanded width, kernel, stride, identity skip, SE and hard swish
    flags), final expand conv, global pooling, feature-mix conv and classifier.

    ``made`` (a space's own dict, kept across calls) holds each MBConv layer's entry by its spec
    and input size: networks share most of theirs, and a key value costs more to make than to
    look up."""
    made = {} if made is None else made
    first = spec.first_conv
    size = spec.resolution
    out = _out_size(size, first.stride)
    layers = [ConvKey(size, size, first.in_channels, out, out, first.out_channels).layer]
    size = out
    for layer in spec.layers:
        entry = made.get((layer, size))
        if entry is None:
            entry = made[(layer, size)] = _mbconv_key(layer, size).layer
        layers.append(entry)
        size = _out_size(size, layer.stride)
    layers += [key.layer for key in _head_keys(spec, size)]
    return tuple(layers)


def lut_keys(spec: NetworkSpec) -> list[str]:
    """The Note10 LUT keys of a network: the keys of :func:`network_layers`, in order."""
    return [layer.key for layer in network_layers(spec)]


def distinct_layers(
    resolutions: tuple[int, ...],
    kernel_sizes: tuple[int, ...],
    expand_ratios: tuple[int, ...],
    width_mult: float,
    num_classes: int,
) -> tuple[LayerSpec, ...]:
    """Every layer key of the space once: the full-depth networks with one kernel size and one
    expand ratio everywhere hold every (stage, first or later layer, kernel, expand) of a
    resolution, since a layer's input size depends on its stage and resolution alone."""
    seen: dict[str, LayerSpec] = {}
    for r, k, e in itertools.product(resolutions, kernel_sizes, expand_ratios):
        config = OFAConfig((k,) * NUM_LAYERS, (e,) * NUM_LAYERS, (MAX_DEPTH,) * NUM_STAGES, r)
        for layer in network_layers(network_spec(config, width_mult, num_classes)):
            seen.setdefault(layer.key, layer)
    return tuple(seen.values())


class GlobalAvgPool(nn.Module):
    """OFA's global pooling, as its head computes it (a mean kept 4-d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


def build_layer(layer: LayerSpec, seed: int = 0) -> nn.Module:
    """The module of one OFA layer key (the network's own blocks), weights from ``seed`` alone."""
    return build_keyed_layer(layer, parse_layer_key(layer.key), seed)
