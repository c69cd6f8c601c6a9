"""ZiCo: how large and how consistent each layer's weight gradients are across mini-batches."""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.proxies._batch import ProxyBatch, ProxyError, weight_layers


def zico(model: nn.Module, batch: ProxyBatch, *, parts: int = 2) -> float:
    """ZiCo (Li et al., ICLR 2023): ``sum over layers of ln(sum over weights of mean|g| / std(g))``,
    the statistics of each weight's gradient ``g`` taken over ``parts`` mini-batches.

    As the reference code (``SLDGroup/ZiCo``, ``ZeroShotProxy/compute_zico.py``): the batch is cut
    into ``parts`` consecutive mini-batches (``ProxyBatch.chunks``; the reference's NB201 runs use
    2); for each, the gradients are zeroed, the cross-entropy of the network's logits against the
    labels is back-propagated, and every Conv2d and Linear weight's gradient is kept (float64).
    Per weight, ``mean|g|`` and the population ``std(g)`` (ddof 0, as ``np.std``) over the
    mini-batches; a weight with ``std == 0`` (no gradient, or the same gradient in every
    mini-batch) is left out, as the reference does, so a division by zero cannot happen; a layer
    whose remaining sum is 0 (no weight left) is left out too. A network where no layer is left
    raises :class:`ProxyError` (the reference would return 0, a silently ranked value). The ratio
    is heavy-tailed by definition (with 2 mini-batches it is ``(|g1| + |g2|) / |g1 - g2|``: one
    weight whose two gradients nearly agree can carry most of its layer's sum); float rounding
    (relative 1e-7, which could fake such agreement) stays far below the closest agreement seen
    on NB201 cells (``std / mean|g|`` about 1e-3), so no tolerance is added to the reference's rule.

    Where hwnas differs: a layer whose weight got no gradient at all (``grad is None``: not on
    any path to the loss) counts as all-zero gradients, i.e. it is left out, where the reference
    would fail on it; the labels are the batch's own (with hwnas's default packaged photographs,
    labels drawn at random; the paper uses CIFAR labels, and ZiCo depends on them).
    """
    if not 2 <= parts <= len(batch):
        raise ValueError(f"zico(parts={parts}): the std over mini-batches needs 2 to {len(batch)} parts")
    layers = weight_layers(model)
    gradients: list[list[torch.Tensor]] = [[] for _ in layers]
    for part in batch.chunks(parts):
        model.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(part.images), part.labels)
        loss.backward()
        for kept, layer in zip(gradients, layers):
            grad = layer.weight.grad
            kept.append(
                torch.zeros(layer.weight.numel(), dtype=torch.float64) if grad is None else grad.double().flatten()
            )
    model.zero_grad(set_to_none=True)
    terms = [term for term in map(layer_term, gradients) if term is not None]
    if not terms:
        raise ProxyError("no weight's gradient varies across mini-batches: ZiCo has no layer to score")
    return math.fsum(terms)


def layer_term(per_batch: list[torch.Tensor]) -> float | None:
    """``ln(sum of mean|g| / std(g))`` over one layer's weights with ``std > 0`` (``None`` when
    there is none, or the sum is 0)."""
    grads = torch.stack(per_batch)
    std = grads.std(dim=0, correction=0)
    varying = std > 0
    total = float((grads.abs().mean(dim=0)[varying] / std[varying]).sum())
    return math.log(total) if total > 0 else None
