"""Static objectives: parameters and FLOPs, counted from the space's genes where it can.

A search records both for every trial; building the network only to count it was most of a table
search's loop time. A :class:`~nas.LayeredSpace` knows each layer's parameters (each distinct
layer built once per space and remembered) and a :class:`~nas.FlopsSpace` counts FLOPs from the
genes, so neither builds the network; other spaces count the built module. The space contracts
(``nas.testing``) tie both counts to the built network.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from nas._capabilities import FlopsSpace, LayeredSpace
from nas._objective import Candidate, Cost, Direction, Objective


class Params(Objective):
    """Number of trainable and frozen parameters of the module (BN affine included, buffers not).

    The value is a count (an integer, returned as float); with ``mega=True`` it is in millions,
    the unit NAS-Bench-201 and NASLib publish (1.531546 for NB201's all-nor_conv_3x3 cell).
    """

    direction = Direction.MINIMIZE
    cost = Cost.STATIC

    def __init__(self, name: str = "params", *, mega: bool = False) -> None:
        super().__init__(name)
        self.mega = mega
        self.integer = not mega

    def describe(self) -> str:
        return f"parameters of the built network ({'millions' if self.mega else 'a count'}; BN affine included)"

    def source(self) -> str:
        return "parameters in millions" if self.mega else "parameters"

    def __call__(self, candidate: Candidate) -> float:
        count = count_params(candidate)
        return count / 1e6 if self.mega else float(count)


class Flops(Objective):
    """Floating-point operations of one forward pass at batch size 1, in FLOPs (not MACs).

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` on the space's example input: each
    convolution and matrix multiply counts 2 x its multiply-accumulates (so 2 x Cin/groups x Cout
    x k x k x Hout x Wout for a conv, 2 x in x out for a linear layer). Bias additions, BatchNorm,
    activations, pooling, element-wise additions and multiplications are *not* counted.

    NAS-Bench-201 publishes multiply-accumulates under the name "FLOPs": its all-nor_conv_3x3
    cell's 220.12 M is 440.24 M here. ``mega=True`` reports millions of FLOPs.
    """

    direction = Direction.MINIMIZE
    cost = Cost.STATIC

    def __init__(self, name: str = "flops", *, mega: bool = False) -> None:
        super().__init__(name)
        self.mega = mega
        self.integer = not mega

    def describe(self) -> str:
        unit = "millions of FLOPs" if self.mega else "FLOPs, a count"
        return f"floating-point operations of one forward pass at batch 1 ({unit}; 2 x multiply-accumulates of convs and linears)"

    def source(self) -> str:
        return "FLOPs in millions" if self.mega else "FLOPs"

    def __call__(self, candidate: Candidate) -> float:
        space = candidate.space
        if isinstance(space, FlopsSpace):
            flops = space.flops(candidate.arch)
        else:
            flops = count_flops(candidate.model, space.example_input(batch_size=1, arch=candidate.arch))
        return flops / 1e6 if self.mega else float(flops)


def count_params(candidate: Candidate) -> int:
    """Parameters of the candidate's network: summed over its layers where the space lists them
    (no network is built), else counted on the built module."""
    space = candidate.space
    if isinstance(space, LayeredSpace):
        return sum(stats.params for stats in space.layer_stats(space.layers(candidate.arch)))
    return sum(p.numel() for p in candidate.model.parameters())


def count_flops(model: torch.nn.Module, example: torch.Tensor) -> int:
    """FLOPs of ``model(example)`` as :class:`Flops` counts them (2 x multiply-accumulates of
    convolutions and matrix multiplies), forward only."""
    # no_grad: counting must not build a graph, nor count backward FLOPs.
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example)
    return counter.get_total_flops()
