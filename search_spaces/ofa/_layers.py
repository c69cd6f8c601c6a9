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
alone. Per resolution a width-1.2 space has 1 + 1 + 5 x 2 x 9 + 4 = 96 keys (each stage's first
layer and its other layers, each with 3 kernels x 3 expand ratios); resolutions share the keys
of layers whose input sizes coincide.
"""

from __future__ import annotations

import itertools
import re

import torch
from torch import nn

from nas import ArchitectureError, LayerSpec
from search_spaces._init import build_keyed_layer
from search_spaces.ofa._blocks import Activation, InvertedResidual
from search_spaces.ofa._model import (
    DROPOUT,
    MAX_DEPTH,
    NUM_LAYERS,
    NUM_STAGES,
    ConvSpec,
    NetworkSpec,
    OFAConfig,
    conv_module,
    network_spec,
)

_SIZE = r"(?P<{0}h>\d+)x(?P<{0}w>\d+)x(?P<{0}c>\d+)"
_IN, _OUT = _SIZE.format("i"), _SIZE.format("o")
_PATTERNS: dict[str, re.Pattern[str]] = {
    "Conv": re.compile(rf"Conv-input:{_IN}-output:{_OUT}"),
    "expanded_conv": re.compile(
        rf"expanded_conv-input:{_IN}-output:{_OUT}-expand:(?P<mid>\d+)-kernel:(?P<k>\d+)"
        r"-stride:(?P<s>\d+)-idskip:(?P<idskip>[01])-se:(?P<se>[01])-hs:(?P<hs>[01])"
    ),
    "Conv_1": re.compile(rf"Conv_1-input:{_IN}-output:{_OUT}"),
    "AvgPool2D": re.compile(rf"AvgPool2D-input:{_IN}-output:1x1x(?P<oc>\d+)"),
    "Conv_2": re.compile(r"Conv_2-input:1x1x(?P<ic>\d+)-output:1x1x(?P<oc>\d+)"),
    "Logits": re.compile(r"Logits-input:1x1x(?P<ic>\d+)-output:(?P<n>\d+)"),
}
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


def network_layers(spec: NetworkSpec) -> tuple[LayerSpec, ...]:
    """The layers of a network, keyed as OFA's ``MBv3LatencyTable`` keys them: first conv, every
    MBConv layer (with its expanded width, kernel, stride, identity skip, SE and hard swish
    flags), final expand conv, global pooling, feature-mix conv and classifier."""
    first = spec.first_conv
    size = spec.resolution
    out = _out_size(size, first.stride)
    layers = [
        LayerSpec(
            f"Conv-input:{_size(size, size, first.in_channels)}-output:{_size(out, out, first.out_channels)}",
            (first.in_channels, size, size),
        )
    ]
    size = out
    for layer in spec.layers:
        out = _out_size(size, layer.stride)
        layers.append(
            LayerSpec(
                f"expanded_conv-input:{_size(size, size, layer.in_channels)}"
                f"-output:{_size(out, out, layer.out_channels)}"
                f"-expand:{layer.mid_channels}-kernel:{layer.kernel_size}-stride:{layer.stride}"
                f"-idskip:{int(layer.residual)}-se:{int(layer.se)}"
                f"-hs:{int(layer.activation is Activation.HSWISH)}",
                (layer.in_channels, size, size),
            )
        )
        size = out
    expand, mix = spec.final_expand, spec.feature_mix
    layers += [
        LayerSpec(
            f"Conv_1-input:{_size(size, size, expand.in_channels)}-output:{_size(size, size, expand.out_channels)}",
            (expand.in_channels, size, size),
        ),
        LayerSpec(
            f"AvgPool2D-input:{_size(size, size, expand.out_channels)}-output:{_size(1, 1, expand.out_channels)}",
            (expand.out_channels, size, size),
        ),
        LayerSpec(
            f"Conv_2-input:{_size(1, 1, mix.in_channels)}-output:{_size(1, 1, mix.out_channels)}",
            (mix.in_channels, 1, 1),
        ),
        LayerSpec(f"Logits-input:{_size(1, 1, mix.out_channels)}-output:{spec.num_classes}", (mix.out_channels, 1, 1)),
    ]
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


def _parse(key: str) -> tuple[str, dict[str, int]]:
    kind = key.split("-", 1)[0]
    pattern = _PATTERNS.get(kind)
    match = pattern.fullmatch(key) if pattern is not None else None
    if match is None:
        raise ArchitectureError(f"{key!r} is not an OFA layer key; keys are {KEY_FORMATS}")
    f = {name: int(value) for name, value in match.groupdict().items()}
    if kind in ("Conv", "expanded_conv"):
        stride = f.get("s", 1 if f["ih"] == f["oh"] else 2)
        if stride not in (1, 2) or (f["oh"], f["ow"]) != (_out_size(f["ih"], stride), _out_size(f["iw"], stride)):
            raise ArchitectureError(f"{key!r}: its output size does not follow from its input size and stride")
        f["s"] = stride
        if kind == "expanded_conv" and f["idskip"] != int(stride == 1 and f["ic"] == f["oc"]):
            raise ArchitectureError(f"{key!r}: idskip must be 1 exactly when stride is 1 and widths are equal")
    elif kind == "Conv_1" and (f["ih"], f["iw"]) != (f["oh"], f["ow"]):
        raise ArchitectureError(f"{key!r}: Conv_1 is a 1x1 conv of stride 1; its sizes must be equal")
    return kind, f


def layer_of_key(key: str) -> LayerSpec:
    """The layer a key names, its input shape derived from the key (keys are data)."""
    kind, f = _parse(key)
    if kind in ("Conv_2", "Logits"):
        return LayerSpec(key, (f["ic"], 1, 1))
    return LayerSpec(key, (f["ic"], f["ih"], f["iw"]))


def _module(key: str) -> nn.Module:
    kind, f = _parse(key)
    if kind == "Conv":
        return conv_module(ConvSpec(f["ic"], f["oc"], 3, f["s"], Activation.HSWISH))
    if kind == "expanded_conv":
        activation = Activation.HSWISH if f["hs"] else Activation.RELU
        return InvertedResidual(f["ic"], f["mid"], f["oc"], f["k"], f["s"], activation, bool(f["se"]))
    if kind == "Conv_1":
        return conv_module(ConvSpec(f["ic"], f["oc"], 1, 1, Activation.HSWISH))
    if kind == "AvgPool2D":
        return GlobalAvgPool()
    if kind == "Conv_2":
        return conv_module(ConvSpec(f["ic"], f["oc"], 1, 1, Activation.HSWISH, batch_norm=False))
    return nn.Sequential(nn.Flatten(), nn.Dropout(DROPOUT), nn.Linear(f["ic"], f["n"]))


def build_layer(layer: LayerSpec, seed: int = 0) -> nn.Module:
    """The module of one OFA layer key (the network's own blocks), weights from ``seed`` alone."""
    return build_keyed_layer(layer, layer_of_key, _module, seed)
