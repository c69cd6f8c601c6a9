"""The building blocks of OFA MobileNetV3 subnets (torchvision MobileNetV3 style, OFA's layer order).

Every block is static: its shapes are fixed at construction, so a built subnet traces and exports
to ONNX with static shapes. The elastic supernet keeps its shared weights in these same blocks at
their largest size and slices them (see ``_supernet.py``).
"""

from __future__ import annotations

import enum
from collections import OrderedDict

import torch
from torch import nn


class Activation(enum.Enum):
    """The two activations of OFA's MobileNetV3 (its names: ``relu``, ``h_swish``)."""

    RELU = "relu"
    HSWISH = "h_swish"

    def module(self) -> nn.Module:
        return _ACTIVATION_MODULES[self]()


_ACTIVATION_MODULES: dict[Activation, type[nn.Module]] = {
    Activation.RELU: nn.ReLU,
    Activation.HSWISH: nn.Hardswish,
}


def make_divisible(value: float, divisor: int = 8) -> int:
    """OFA's (and MobileNet's) channel rounding: nearest multiple of ``divisor``, never more than
    10% below ``value`` (so 16 x 1.2 = 19.2 becomes 24, as the Note10 LUT's first conv shows)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def squeeze_channels(channels: int) -> int:
    """Hidden width of the squeeze-excite block on ``channels`` (OFA's SEModule, reduction 4)."""
    return make_divisible(channels // 4)


class ConvBNAct(nn.Sequential):
    """Convolution (padding k//2), then optional BatchNorm, then optional activation.

    Children are named ``conv``, ``bn``, ``act`` so state dicts read as the network's structure.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        activation: Activation | None = None,
        batch_norm: bool = True,
        bias: bool = False,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=bias,
        )
        if batch_norm:
            layers["bn"] = nn.BatchNorm2d(out_channels)
        if activation is not None:
            layers["act"] = activation.module()
        super().__init__(layers)


class SqueezeExcite(nn.Module):
    """Channel gating: global mean -> 1x1 conv -> ReLU -> 1x1 conv -> hard sigmoid -> scale."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = self.gate(self.expand(self.relu(self.reduce(scale))))
        return x * scale


class InvertedResidual(nn.Module):
    """MBConv: 1x1 expand (absent when it would keep the width), kxk depthwise, optional SE after
    the depthwise activation, linear 1x1 projection, identity shortcut when shapes allow."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        activation: Activation,
        se: bool,
    ) -> None:
        super().__init__()
        self.expand = (
            ConvBNAct(in_channels, mid_channels, activation=activation) if mid_channels != in_channels else None
        )
        self.depthwise = ConvBNAct(
            mid_channels, mid_channels, kernel_size, stride=stride, groups=mid_channels, activation=activation
        )
        self.se = SqueezeExcite(mid_channels, squeeze_channels(mid_channels)) if se else None
        self.project = ConvBNAct(mid_channels, out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.expand is None else self.expand(x)
        h = self.depthwise(h)
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)
        return x + h if self.residual else h
