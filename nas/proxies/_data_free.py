"""Proxies that read no data: synflow, and the parameter and FLOP counts every paper compares to."""

from __future__ import annotations

import math

from torch import nn

from nas.objectives._model_stats import count_flops
from nas.objectives._synflow import synflow_score
from nas.proxies._batch import ProxyBatch, ProxyError, weight_layers


def synflow(model: nn.Module, batch: ProxyBatch) -> float:
    """ln of the data-free synaptic flow (Tanaka et al., NeurIPS 2020), computed as NASLib does."""
    weight_layers(model)
    score = synflow_score(model, tuple(batch.images.shape[1:]))
    if score <= 0:
        raise ProxyError("synflow is 0: no weight lies on a path from input to output")
    return math.log(score)


def params(model: nn.Module, batch: ProxyBatch) -> float:
    """Parameters of the network in millions (BN affine included), the baseline every proxy must beat."""
    count = sum(p.numel() for p in model.parameters())
    if count == 0:
        raise ProxyError("the network has no parameters")
    return count / 1e6


def flops(model: nn.Module, batch: ProxyBatch) -> float:
    """Millions of FLOPs of one forward pass at batch 1 (2 x multiply-accumulates of convs and linears)."""
    total = count_flops(model, batch.images[:1])
    if total == 0:
        raise ProxyError("the network has no convolution or matrix multiply to count")
    return total / 1e6
