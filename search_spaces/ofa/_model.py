"""OFA MobileNetV3 subnets: genes -> plain frozen specs -> a static module.

The macro skeleton is Once-for-All's ``OFAMobileNetV3`` (mit-han-lab/once-for-all): a 3x3 stride-2
conv with hard swish; one MBConv of expand ratio 1; five stages of up to four MBConv layers
(widths 24, 40, 80, 112, 160, strides 2, 2, 2, 1, 2, SE in the 40, 112 and 160 stages, ReLU in the
first two stages and hard swish after); a 1x1 conv to 960, global average pooling, a 1x1 conv
without BN to 1280 with hard swish, dropout and a linear classifier. Every width is multiplied by
``width_mult`` and rounded with :func:`make_divisible`; the published tables use 1.2.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from search_spaces._init import materialise
from search_spaces.ofa._blocks import Activation, ConvBNAct, InvertedResidual, make_divisible, squeeze_channels

NUM_STAGES = 5
MAX_DEPTH = 4
NUM_LAYERS = NUM_STAGES * MAX_DEPTH

# OFA's base_stage_width: first conv, first block, the five stages, final expand, feature mix.
_FIRST_CONV_WIDTH = 16
_FIRST_BLOCK_WIDTH = 16
_STAGE_WIDTHS = (24, 40, 80, 112, 160)
_FINAL_EXPAND_WIDTH = 960
_FEATURE_MIX_WIDTH = 1280
_STAGE_STRIDES = (2, 2, 2, 1, 2)
_STAGE_ACTIVATIONS = (Activation.RELU, Activation.RELU, Activation.HSWISH, Activation.HSWISH, Activation.HSWISH)
_STAGE_SE = (False, True, False, True, True)
#: OFA's default dropout before the classifier.
DROPOUT = 0.1


@dataclass(frozen=True)
class OFAConfig:
    """The genes in OFA's own form: per-layer kernel sizes and expand ratios, per-stage depths."""

    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    r: int

    def active_layers(self) -> Iterator[tuple[int, int]]:
        """(stage, global layer index) of each layer that exists: stage s keeps its first d[s]."""
        for stage, depth in enumerate(self.d):
            for j in range(depth):
                yield stage, stage * MAX_DEPTH + j


@dataclass(frozen=True)
class StageMacro:
    width: int
    stride: int
    activation: Activation
    se: bool


@dataclass(frozen=True)
class Macro:
    """The fixed widths of one width multiplier (OFA's ``width_list`` and head widths)."""

    first_conv: int
    first_block: int
    stages: tuple[StageMacro, ...]
    final_expand: int
    feature_mix: int


def macro(width_mult: float) -> Macro:
    def scaled(width: int) -> int:
        return make_divisible(width * width_mult)

    stages = tuple(
        StageMacro(scaled(w), s, a, se)
        for w, s, a, se in zip(_STAGE_WIDTHS, _STAGE_STRIDES, _STAGE_ACTIVATIONS, _STAGE_SE)
    )
    return Macro(
        scaled(_FIRST_CONV_WIDTH),
        scaled(_FIRST_BLOCK_WIDTH),
        stages,
        scaled(_FINAL_EXPAND_WIDTH),
        scaled(_FEATURE_MIX_WIDTH),
    )


def mid_channels(in_channels: int, expand_ratio: float) -> int:
    """The expanded width of an MBConv layer (OFA's DynamicMBConvLayer.active_middle_channel)."""
    return make_divisible(round(in_channels * expand_ratio))


@dataclass(frozen=True)
class ConvSpec:
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    activation: Activation
    batch_norm: bool = True


@dataclass(frozen=True)
class MBConvLayer:
    """One MBConv layer, everything that its module and its LUT key need."""

    in_channels: int
    mid_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    activation: Activation
    se: bool

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    def module(self) -> InvertedResidual:
        return InvertedResidual(
            self.in_channels,
            self.mid_channels,
            self.out_channels,
            self.kernel_size,
            self.stride,
            self.activation,
            self.se,
        )


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to build one subnet, with no torch objects in it."""

    resolution: int
    first_conv: ConvSpec
    layers: tuple[MBConvLayer, ...]  # the expand-1 first block, then the active stage layers
    final_expand: ConvSpec
    feature_mix: ConvSpec  # 1x1, no BN (OFA's feature_mix_layer)
    num_classes: int
    dropout: float = DROPOUT


def first_conv_spec(m: Macro) -> ConvSpec:
    return ConvSpec(3, m.first_conv, 3, 2, Activation.HSWISH)


def first_block_spec(m: Macro) -> MBConvLayer:
    return MBConvLayer(m.first_conv, m.first_conv, m.first_block, 3, 1, Activation.RELU, False)


def stage_layer_spec(m: Macro, stage: int, index_in_stage: int, kernel_size: int, expand_ratio: float) -> MBConvLayer:
    """Layer ``index_in_stage`` of ``stage``: the first takes the previous width and the stride."""
    sm = m.stages[stage]
    previous = m.first_block if stage == 0 else m.stages[stage - 1].width
    in_channels = previous if index_in_stage == 0 else sm.width
    stride = sm.stride if index_in_stage == 0 else 1
    return MBConvLayer(
        in_channels, mid_channels(in_channels, expand_ratio), sm.width, kernel_size, stride, sm.activation, sm.se
    )


def head_specs(m: Macro) -> tuple[ConvSpec, ConvSpec]:
    final_expand = ConvSpec(m.stages[-1].width, m.final_expand, 1, 1, Activation.HSWISH)
    feature_mix = ConvSpec(m.final_expand, m.feature_mix, 1, 1, Activation.HSWISH, batch_norm=False)
    return final_expand, feature_mix


def network_spec(config: OFAConfig, width_mult: float, num_classes: int) -> NetworkSpec:
    m = macro(width_mult)
    layers = [first_block_spec(m)]
    for stage, index in config.active_layers():
        layers.append(stage_layer_spec(m, stage, index % MAX_DEPTH, config.ks[index], config.e[index]))
    final_expand, feature_mix = head_specs(m)
    return NetworkSpec(
        resolution=config.r,
        first_conv=first_conv_spec(m),
        layers=tuple(layers),
        final_expand=final_expand,
        feature_mix=feature_mix,
        num_classes=num_classes,
    )


def _out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1  # padding k // 2


def conv_flops(conv: ConvSpec, input_size: int) -> int:
    """FLOPs (2 x multiply-accumulates, as ``nas.objectives.Flops`` counts) of a dense conv at
    batch 1 on a square input of ``input_size``; BN, activations and biases are not counted."""
    return 2 * conv.in_channels * conv.out_channels * conv.kernel_size**2 * _out_size(input_size, conv.stride) ** 2


def layer_flops(layer: MBConvLayer, input_size: int) -> int:
    """FLOPs of one MBConv layer, counted as :func:`conv_flops` counts: the 1x1 expand (absent
    at expand ratio 1), the depthwise conv, squeeze-excite's two 1x1 convs on the pooled vector
    and the 1x1 projection."""
    out_pixels = _out_size(input_size, layer.stride) ** 2
    mid = layer.mid_channels
    expand = layer.in_channels * mid * input_size**2 if mid != layer.in_channels else 0
    se = 2 * mid * squeeze_channels(mid) if layer.se else 0
    return 2 * (expand + layer.kernel_size**2 * mid * out_pixels + se + mid * layer.out_channels * out_pixels)


def flops_by_part(spec: NetworkSpec) -> tuple[int, ...]:
    """FLOPs of the first conv, of each of ``spec.layers`` (the first block first) and of the
    head (final expand, feature mix, classifier), at batch 1."""
    size = spec.resolution
    parts = [conv_flops(spec.first_conv, size)]
    size = _out_size(size, spec.first_conv.stride)
    for layer in spec.layers:
        parts.append(layer_flops(layer, size))
        size = _out_size(size, layer.stride)
    head = conv_flops(spec.final_expand, size) + conv_flops(spec.feature_mix, 1)
    return (*parts, head + 2 * spec.feature_mix.out_channels * spec.num_classes)


def network_flops(spec: NetworkSpec) -> int:
    """FLOPs of the whole network at batch 1: what ``nas.objectives.Flops`` counts on the built
    module (the space's tests check it against torch's FLOP counter)."""
    return sum(flops_by_part(spec))


def conv_module(spec: ConvSpec) -> ConvBNAct:
    return ConvBNAct(
        spec.in_channels,
        spec.out_channels,
        spec.kernel_size,
        spec.stride,
        activation=spec.activation,
        batch_norm=spec.batch_norm,
    )


class OFAHead(nn.Module):
    """Final expand conv, global average pooling, feature-mix conv, dropout, linear classifier."""

    def __init__(self, final_expand: ConvSpec, feature_mix: ConvSpec, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.final_expand = conv_module(final_expand)
        self.feature_mix = conv_module(feature_mix)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(feature_mix.out_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        x = self.feature_mix(x).flatten(1)
        return self.classifier(self.dropout(x))


class OFANetwork(nn.Module):
    """A static OFA MobileNetV3 subnet; it accepts any input size (its spec's resolution is the
    one it was chosen for, and the one its tables measured)."""

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        self.first_conv = conv_module(spec.first_conv)
        self.blocks = nn.Sequential(*(layer.module() for layer in spec.layers))
        self.head = OFAHead(spec.final_expand, spec.feature_mix, spec.num_classes, spec.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.first_conv(x)))


def build_network(spec: NetworkSpec, seed: int) -> OFANetwork:
    """A network with PyTorch's default initialisation drawn from ``seed`` alone (see
    :func:`search_spaces._init.materialise`)."""
    return materialise(lambda: OFANetwork(spec), seed)
