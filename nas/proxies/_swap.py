"""SWAP: how many distinct sample-wise activation patterns a network's ReLUs produce on a batch."""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.proxies._batch import ProxyBatch, ProxyError, relu_layers
from nas.proxies._hooks import visit_feature_maps

#: Sign bits packed per int64 word (all 64: a sum of distinct powers of two never carries, and
#: 2**63 wraps to a distinct negative code).
_WORD_BITS = 64


def swap(
    model: nn.Module,
    batch: ProxyBatch,
    *,
    samples: int = 16,
    repeats: int = 1,
    gaussian_init: bool = True,
    seed: int = 0,
    mu_kparams: float | None = None,
    sigma_kparams2: float | None = None,
) -> float:
    """SWAP-Score (Peng et al., ICLR 2024), as ``ln`` of the paper's score: a network whose ReLUs
    tell the samples apart in more distinct ways is more expressive.

    As the reference code (``pym1024/SWAP``, ``src/metrics/swap.py``): the first ``samples``
    images (the reference's default 16) go through the network once; every ``nn.ReLU`` with a
    4-D input contributes its output units ("neurons"), and each neuron's pattern is its sign
    (> 0) across the samples; the score is the number of distinct patterns among all neurons.
    With ``gaussian_init`` every Conv2d and Linear weight is first redrawn from N(0, 1) (biases
    0, BatchNorm scale 1 and shift 0), as the reference's evaluation script does before each
    repeat; ``repeats`` such draws are averaged (the reference: 32; the draws come from
    ``seed``). The paper's regularisation multiplies by ``exp(-(P - mu)^2 / sigma)``, ``P`` the
    parameter count in thousands (``mu_kparams``, ``sigma_kparams2``; both or neither).

    Where hwnas differs: the score is returned as its natural log, ``ln(mean count) - (P -
    mu)^2 / sigma``, the same ranking without the factor underflowing to 0 (and ties) for
    networks far from ``mu``; patterns are packed 64 samples to an integer before counting, the
    same count as the reference's ``unique`` over sign rows, at a fraction of the cost. ``P``
    counts every parameter, BatchNorm's included, as the reference does (for NB201 it is the
    benchmark's published count, e.g. 0.615386 M for NASLib's cell (0, 2, 3, 2, 3, 1)). The settings of configs/proxy/swap.yaml were chosen on 200 random
    NB201 cells and confirmed on 200 others (see its comment).
    """
    relus = relu_layers(model)
    if not 1 <= samples <= len(batch):
        raise ValueError(f"swap(samples={samples}): give between 1 and the batch's {len(batch)} images")
    if repeats < 1:
        raise ValueError(f"swap(repeats={repeats}): give at least 1")
    if (mu_kparams is None) != (sigma_kparams2 is None) or (sigma_kparams2 is not None and sigma_kparams2 <= 0):
        raise ValueError(
            f"swap(mu_kparams={mu_kparams}, sigma_kparams2={sigma_kparams2}): give both (sigma > 0) "
            "to regularise by parameter count, or neither"
        )
    generator = torch.Generator().manual_seed(seed)
    counts = []
    for _ in range(repeats):
        if gaussian_init:
            gaussian_reinit(model, generator)
        counts.append(distinct_patterns(model, relus, batch.images[:samples]))
    score = math.log(sum(counts) / repeats)
    if mu_kparams is not None and sigma_kparams2 is not None:
        kparams = sum(p.numel() for p in model.parameters()) / 1e3
        score -= (kparams - mu_kparams) ** 2 / sigma_kparams2
    return score


def distinct_patterns(model: nn.Module, relus: list[nn.ReLU], images: torch.Tensor) -> int:
    """The number of distinct sign patterns, over ``images``, among all output units of
    ``relus`` with 4-D inputs (SWAP's count before regularisation)."""
    samples = images.shape[0]
    weights = torch.ones(samples, dtype=torch.int64) << (torch.arange(samples) % _WORD_BITS)
    words = [slice(start, start + _WORD_BITS) for start in range(0, samples, _WORD_BITS)]
    codes: list[torch.Tensor] = []

    def visit(module: nn.Module, output: torch.Tensor) -> None:
        signs = (output.reshape(samples, -1) > 0).long().T * weights
        codes.append(torch.stack([signs[:, word].sum(dim=1) for word in words], dim=1))

    visit_feature_maps(model, relus, images, visit)
    if not codes:
        raise ProxyError("no nn.ReLU of the network sees a 4-D feature map")
    patterns = torch.cat(codes)
    if patterns.shape[1] == 1:
        return int(torch.unique(patterns[:, 0]).numel())
    return int(torch.unique(patterns, dim=0).shape[0])


def gaussian_reinit(model: nn.Module, generator: torch.Generator) -> None:
    """The reference's ``network_weight_gaussian_init``: Conv2d and Linear weights from N(0, 1)
    (drawn from ``generator``), their biases 0, BatchNorm/GroupNorm scale 1 and shift 0."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and module.affine:
                module.weight.fill_(1.0)
                module.bias.zero_()
