"""The building blocks of NAS-Bench-201 networks, as in the published benchmark's code."""

from __future__ import annotations

import torch
from torch import nn

#: NAS-Bench-201's candidate operations, in the benchmark's own order.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class Zero(nn.Module):
    """The ``none`` op: a zero tensor of the input's shape.

    Written as ``x.mul(0.0)`` rather than ``torch.zeros_like`` so ONNX export keeps a real
    data dependency (and the published networks compute it this way too); never in place.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


class ReLUConvBN(nn.Sequential):
    """ReLU, then a bias-free convolution, then BatchNorm (NB201's ``nor_conv_kxk``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
        )


class ResidualReduction(nn.Module):
    """NB201's stage transition: halves the resolution, changes the width, no activation after."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(in_channels, out_channels, 3, stride=2)
        self.conv_b = ReLUConvBN(out_channels, out_channels, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


def make_op(name: str, channels: int) -> nn.Module:
    """The module of one cell edge; every op keeps the channel count and the resolution."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {name!r}; allowed ops: {', '.join(OPS)}")
