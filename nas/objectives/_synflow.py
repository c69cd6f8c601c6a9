"""The synflow zero-cost proxy (Tanaka et al., NeurIPS 2020), computed as NASLib computes it."""

from __future__ import annotations

import math

import torch
from torch import nn

from nas._objective import Candidate, Cost, Direction, Objective


class Synflow(Objective):
    """Data-free synaptic flow of a freshly initialised network; larger is better.

    As in NASLib / zero-cost-nas (``compute_synflow_per_weight``, measure ``synflow``, bn=False):
    BatchNorm layers are bypassed, every state-dict tensor is replaced by its absolute value, the
    network runs in float64 on one all-ones input, ``sum(output)`` is back-propagated, and the
    score is the sum over every Conv2d and Linear weight (not biases) of ``|w * dR/dw|``.

    By default the value is the natural logarithm of the score, as NASLib publishes it (a score of
    0 stays 0): raw scores span about 1e15..1e50 on NB201, which would let the largest few
    dominate any hypervolume. ``log=False`` gives the raw score. A network whose output does not
    depend on its input (an NB201 cell with no input-to-output path) scores exactly 0.
    """

    direction = Direction.MAXIMIZE
    cost = Cost.PROXY

    def __init__(self, name: str = "synflow", *, log: bool = True) -> None:
        super().__init__(name)
        self.log = log

    def describe(self) -> str:
        if self.log:
            return "ln(synflow score): natural log of the data-free synflow proxy, as NASLib publishes it; higher is better"
        return "synflow score (data-free proxy, not logged); higher is better"

    def source(self) -> str:
        return "synflow ln(score)" if self.log else "synflow score"

    def __call__(self, candidate: Candidate) -> float:
        # fresh_model: the proxy overwrites weights with their absolute values.
        score = synflow_score(candidate.fresh_model(), candidate.space.input_shape_of(candidate.arch))
        return math.log(score) if self.log and score > 0 else score


def synflow_score(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """The synflow score of ``model``, which it consumes (weights and layers are changed)."""
    model = _bypass_batchnorm(model).double()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.abs_()
    model.zero_grad(set_to_none=True)
    ones = torch.ones(1, *input_shape, dtype=torch.float64)
    model(ones).sum().backward()
    score = torch.zeros((), dtype=torch.float64)
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)) and layer.weight.grad is not None:
                score += (layer.weight * layer.weight.grad).abs().sum()
    return float(score)


def _bypass_batchnorm(model: nn.Module) -> nn.Module:
    """The model with every BatchNorm replaced by the identity (NASLib's bn=False copy)."""
    if isinstance(model, nn.modules.batchnorm._BatchNorm):
        return nn.Identity()
    for name, child in model.named_children():
        setattr(model, name, _bypass_batchnorm(child))
    return model
