"""FBNet networks: block names -> plain specs -> modules (HW-NAS-Bench's FBNet macro-architecture).

A network is a stem (3x3 conv + BN + ReLU), 22 searchable layers of fixed shape (channels and
stride come from the macro, the block from the architecture), and a head (1x1 conv + BN + ReLU,
global average pool, linear). Blocks are FBNet's inverted residuals ``kX_eY[_g2]`` or ``skip``.
Everything here is export-friendly: no in-place ops, static padding, shapes fixed at construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# ---------------------------------------------------------------------------------------------
# Plain data: no torch objects below until the modules.


@dataclass(frozen=True)
class InvertedResidualSpec:
    """FBNet's ``kX_eY[_g2]``: 1x1 expand, kxk depthwise, 1x1 project (both 1x1s in ``groups``)."""

    kernel: int
    expansion: int
    groups: int = 1


@dataclass(frozen=True)
class SkipSpec:
    """FBNet's ``skip``: identity, or a 1x1 conv + BN + ReLU where the layer changes shape."""


BlockSpec = InvertedResidualSpec | SkipSpec

#: The nine candidate blocks, in HELP's op_idx order (a gene's choices keep this order).
BLOCKS: dict[str, BlockSpec] = {
    "k3_e1": InvertedResidualSpec(3, 1),
    "k3_e1_g2": InvertedResidualSpec(3, 1, groups=2),
    "k3_e3": InvertedResidualSpec(3, 3),
    "k3_e6": InvertedResidualSpec(3, 6),
    "k5_e1": InvertedResidualSpec(5, 1),
    "k5_e1_g2": InvertedResidualSpec(5, 1, groups=2),
    "k5_e3": InvertedResidualSpec(5, 3),
    "k5_e6": InvertedResidualSpec(5, 6),
    "skip": SkipSpec(),
}
OPS: tuple[str, ...] = tuple(BLOCKS)


@dataclass(frozen=True)
class LayerShape:
    """One searchable position of the macro: its channels and stride, whatever block fills it."""

    in_channels: int
    out_channels: int
    stride: int


@dataclass(frozen=True)
class FBNetMacro:
    """The fixed skeleton around the 22 searchable layers."""

    stem_channels: int
    stem_stride: int
    layers: tuple[LayerShape, ...]
    head_channels: int
    num_classes: int
    resolution: int

    def __post_init__(self) -> None:
        widths = [self.stem_channels] + [layer.out_channels for layer in self.layers]
        for position, layer in enumerate(self.layers):
            if layer.in_channels != widths[position]:
                raise ValueError(
                    f"layer {position} takes {layer.in_channels} channels but its input has {widths[position]}"
                )
            if layer.stride not in (1, 2):
                raise ValueError(f"layer {position} has stride {layer.stride}; FBNet uses 1 or 2")
            # A g2 block splits both 1x1 convs into two groups, so every width must be even.
            if layer.in_channels % 2 or layer.out_channels % 2:
                raise ValueError(f"layer {position} has an odd width; g2 blocks need even ones")
        if self.num_classes < 1 or self.resolution < 1:
            raise ValueError(
                f"FBNetMacro needs positive sizes, got num_classes={self.num_classes}, resolution={self.resolution}"
            )

    @property
    def last_channels(self) -> int:
        return self.layers[-1].out_channels if self.layers else self.stem_channels

    def input_sizes(self) -> tuple[int, ...]:
        """Spatial size (square) of each layer's input, then of the head's input: FLOPs are
        counted from these without running anything."""
        sizes = [_strided(self.resolution, self.stem_stride)]
        for layer in self.layers:
            sizes.append(_strided(sizes[-1], layer.stride))
        return tuple(sizes)


def _strided(size: int, stride: int) -> int:
    # Output size of a kxk conv with odd k, padding k // 2 and this stride.
    return (size - 1) // stride + 1


def _layers(first_stride: int) -> tuple[LayerShape, ...]:
    # (in, out, stride, repeats) of HW-NAS-Bench's FBNet stages; only layer 1's stride differs.
    stages = (
        (16, 16, 1, 1),
        (16, 24, first_stride, 4),
        (24, 32, 2, 4),
        (32, 64, 2, 4),
        (64, 112, 1, 4),
        (112, 184, 2, 4),
        (184, 352, 1, 1),
    )
    layers = []
    for in_channels, out_channels, stride, repeats in stages:
        layers.append(LayerShape(in_channels, out_channels, stride))
        layers.extend(LayerShape(out_channels, out_channels, 1) for _ in range(repeats - 1))
    return tuple(layers)


#: HW-NAS-Bench's CIFAR-100 variant: the one the fbnet benchmark tables measured.
CIFAR100 = FBNetMacro(
    stem_channels=16,
    stem_stride=1,
    layers=_layers(1),
    head_channels=1504,
    num_classes=100,
    resolution=32,
)
#: The ImageNet variant: stride 2 in the stem and in layer 1, a wider head, 224x224 inputs.
IMAGENET = FBNetMacro(
    stem_channels=16,
    stem_stride=2,
    layers=_layers(2),
    head_channels=1984,
    num_classes=1000,
    resolution=224,
)
#: Macros by the names configuration files use.
MACROS: dict[str, FBNetMacro] = {"cifar100": CIFAR100, "imagenet": IMAGENET}


@dataclass(frozen=True)
class FBNetLayer:
    """One searchable layer of a network: its macro shape and the block chosen for it (a block
    configuration, not a lookup-table key: those are :mod:`._layers`')."""

    shape: LayerShape
    block: BlockSpec


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to build one network, with no torch objects in it."""

    macro: FBNetMacro
    layers: tuple[FBNetLayer, ...]


def network_spec(macro: FBNetMacro, ops: tuple[str, ...]) -> NetworkSpec:
    if len(ops) != len(macro.layers):
        raise ValueError(f"{len(ops)} block(s) for a macro of {len(macro.layers)} layers")
    return NetworkSpec(macro, tuple(FBNetLayer(s, BLOCKS[op]) for s, op in zip(macro.layers, ops)))


def layer_flops(layer: FBNetLayer, input_size: int) -> int:
    """FLOPs (2 x multiply-accumulates of convolutions, as ``nas.objectives.Flops`` counts) of one
    layer at batch 1 on a square input of ``input_size``; BN, ReLU and additions are not counted."""
    shape, block = layer.shape, layer.block
    out_pixels = _strided(input_size, shape.stride) ** 2
    if isinstance(block, SkipSpec):
        changes = shape.in_channels != shape.out_channels or shape.stride != 1
        return 2 * shape.in_channels * shape.out_channels * out_pixels if changes else 0
    mid = shape.in_channels * block.expansion
    expand = shape.in_channels // block.groups * mid * input_size**2
    depthwise = block.kernel**2 * mid * out_pixels
    project = mid // block.groups * shape.out_channels * out_pixels
    return 2 * (expand + depthwise + project)


def network_flops(spec: NetworkSpec) -> int:
    """FLOPs of the whole network at batch 1, counted as :func:`layer_flops` counts them."""
    macro = spec.macro
    sizes = macro.input_sizes()
    stem = 3 * 9 * macro.stem_channels * sizes[0] ** 2
    head = macro.last_channels * macro.head_channels * sizes[-1] ** 2
    classifier = macro.head_channels * macro.num_classes
    layers = sum(layer_flops(layer, size) for layer, size in zip(spec.layers, sizes))
    return 2 * (stem + head + classifier) + layers


# ---------------------------------------------------------------------------------------------
# Modules.


def conv_bn(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1, relu: bool = True
) -> nn.Sequential:
    """Bias-free conv (padding k // 2) + BN, then ReLU unless ``relu=False``."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            padding=kernel // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: lets the two groups of the next grouped 1x1 conv see each
    other's channels. Reshape-transpose-reshape (no ``aten::channel_shuffle``) so it exports."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x.reshape(batch, self.groups, channels // self.groups, height, width)
        return x.transpose(1, 2).reshape(batch, channels, height, width)


class InvertedResidual(nn.Module):
    def __init__(self, shape: LayerShape, spec: InvertedResidualSpec) -> None:
        super().__init__()
        mid = shape.in_channels * spec.expansion
        self.expand = conv_bn(shape.in_channels, mid, 1, groups=spec.groups)
        self.shuffle = ChannelShuffle(spec.groups) if spec.groups > 1 else nn.Identity()
        self.depthwise = conv_bn(mid, mid, spec.kernel, stride=shape.stride, groups=mid)
        self.project = conv_bn(mid, shape.out_channels, 1, groups=spec.groups, relu=False)
        self.residual = shape.in_channels == shape.out_channels and shape.stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.shuffle(self.expand(x))))
        return out + x if self.residual else out


def make_block(layer: FBNetLayer) -> nn.Module:
    shape, block = layer.shape, layer.block
    if isinstance(block, InvertedResidualSpec):
        return InvertedResidual(shape, block)
    if shape.in_channels == shape.out_channels and shape.stride == 1:
        return nn.Identity()
    return conv_bn(shape.in_channels, shape.out_channels, 1, stride=shape.stride)


def make_stem(macro: FBNetMacro) -> nn.Sequential:
    return conv_bn(3, macro.stem_channels, 3, stride=macro.stem_stride)


def make_head(macro: FBNetMacro) -> nn.Sequential:
    return nn.Sequential(
        conv_bn(macro.last_channels, macro.head_channels, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


class FBNetNetwork(nn.Module):
    """One FBNet network; the supernet's subnets are of this class too, with equal state keys."""

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.stem = make_stem(spec.macro)
        self.layers = nn.Sequential(*(make_block(layer) for layer in spec.layers))
        self.head = make_head(spec.macro)
        self.classifier = nn.Linear(spec.macro.head_channels, spec.macro.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.head(self.layers(self.stem(x))))
