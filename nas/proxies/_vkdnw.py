"""VKDNW (Tybl & Neumann, CVPR 2025): how evenly the Fisher information of an untrained network
spreads over its weights, from one weight of each parameter tensor.

Follows github.com/ondratybl/VKDNW (``NB201/ZeroShotProxy/compute_vkdnw_score.py`` and the
ranking in its ``tss_utils.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, jvp

from nas.proxies._aznas import rescale_to_kaiming_fan_in
from nas.proxies._batch import ProxyBatch, ProxyError, weight_layers

#: The reference's label smoothing of the softmax before its covariance is taken.
_SMOOTHING = 0.05
#: The deciles of the eigenvalue spectrum whose spread VKDNW measures (the reference's 0.1 ... 0.9).
_DECILES = tuple(k / 10 for k in range(1, 10))


def vkdnw(
    model: nn.Module,
    batch: ProxyBatch,
    *,
    max_tensors: int = 128,
    weights_per_tensor: int = 1,
    kaiming_fan_in: bool = True,
) -> float:
    """VKDNW (Tybl & Neumann, CVPR 2025): entropy of the nine deciles of the Fisher information
    matrix's eigenvalues, normalised to sum 1 (``ln 9``, the maximum, when the information is
    spread evenly: every direction of the weights is about equally hard to estimate).

    As the reference: weights at Kaiming-normal fan-in scale (``kaiming_fan_in``, see
    :func:`~nas.proxies._aznas.rescale_to_kaiming_fan_in`), the network in eval mode, the Fisher
    matrix of the first ``max_tensors`` parameter tensors (module order) with
    ``weights_per_tensor`` evenly spaced elements of each (the first element when 1; the
    reference's ``params_grad_len=128`` with one element per tensor), from the per-image
    Jacobians J of the logits and the covariance of the label-smoothed softmax p
    (``p = 0.95 softmax + 0.05 / C``): ``F = mean_n J_n^T (diag p_n - p_n p_n^T) J_n`` (the
    reference forms the same product through a Cholesky factor); deciles by linear
    interpolation, as ``torch.quantile``.

    Numerics and rules (where hwnas differs): F and its eigenvalues in float64
    (``eigvalsh``; the reference takes singular values, equal for this symmetric positive
    semi-definite matrix), eigenvalues below zero (round-off) read as zero; the entropy uses
    ``0 ln 0 = 0`` (the reference adds 1e-10 inside the logarithm and the normaliser); when every
    decile is zero (most sampled weights do not reach the output) the score is 0, the entropy of
    no spread, as the reference's formula gives. A network without a conv or linear layer is
    refused.

    Cost: one forward pass, one backward pass per class (10 on NB201, 100 on FBNet, 1,000 on
    Once-for-All) and a forward-mode pass of one layer per sampled weight: on this CPU about 20x
    a forward pass on NB201, and impractical on Once-for-All's 1,000 classes.
    """
    return fisher_decile_entropy(
        model,
        batch,
        max_tensors=max_tensors,
        weights_per_tensor=weights_per_tensor,
        kaiming_fan_in=kaiming_fan_in,
    )


def vkdnw_single(
    model: nn.Module,
    batch: ProxyBatch,
    *,
    max_tensors: int = 128,
    weights_per_tensor: int = 1,
    kaiming_fan_in: bool = True,
) -> float:
    """VKDNW's single-proxy ranking (Tybl & Neumann, CVPR 2025): networks ordered by their number
    of parameter tensors (the reference's ``vkdnw_dim``), then by VKDNW's entropy.

    The reference ranks the pairs ``(tensors, entropy)`` lexicographically; one number with the
    same order is ``tensors + entropy / (1 + ln 9)`` (the entropy is at most ``ln 9``, so the
    fraction stays below 1). Settings and rules as :func:`vkdnw`.
    """
    entropy = fisher_decile_entropy(
        model,
        batch,
        max_tensors=max_tensors,
        weights_per_tensor=weights_per_tensor,
        kaiming_fan_in=kaiming_fan_in,
    )
    return sum(1 for _ in model.parameters()) + entropy / (1.0 + math.log(len(_DECILES)))


def fisher_decile_entropy(
    model: nn.Module, batch: ProxyBatch, *, max_tensors: int, weights_per_tensor: int, kaiming_fan_in: bool
) -> float:
    """The computation behind :func:`vkdnw` (see there)."""
    if max_tensors < 1 or weights_per_tensor < 1:
        raise ValueError(
            f"VKDNW needs max_tensors >= 1 and weights_per_tensor >= 1, got {max_tensors} and {weights_per_tensor}"
        )
    weight_layers(model)
    if kaiming_fan_in:
        rescale_to_kaiming_fan_in(model)
    model.eval()
    return decile_entropy(
        torch.linalg.eigvalsh(fisher_information(model, batch.images, max_tensors, weights_per_tensor))
    )


def decile_entropy(eigenvalues: torch.Tensor) -> float:
    """Entropy of the nine deciles of ``eigenvalues`` normalised to sum 1: ``ln 9`` for a flat
    spectrum; eigenvalues below zero (round-off) count as zero, ``0 ln 0 = 0``, and a spectrum
    whose deciles are all zero scores 0."""
    deciles = torch.quantile(eigenvalues.double().clamp(min=0.0), torch.tensor(_DECILES, dtype=torch.float64))
    total = deciles.sum()
    if not total > 0:
        return 0.0
    p = deciles / total
    return float(-torch.special.xlogy(p, p).sum())


def fisher_information(
    model: nn.Module, images: torch.Tensor, max_tensors: int, weights_per_tensor: int
) -> torch.Tensor:
    """Float64 Fisher information ``mean_n J_n^T (diag p_n - p_n p_n^T) J_n`` of the sampled
    weights (see :func:`vkdnw`), J_n the Jacobian of image n's logits.

    The model must be in eval mode, so each image's logits depend on that image alone: then one
    backward pass per class gives every image's gradient at each layer's output, and the
    derivative of a layer's output by one of its weights is a forward-mode derivative of that
    layer alone, so the Jacobians cost a forward pass per sampled weight *of its layer* and a
    backward pass per class, whatever the layer types.
    """
    samples = _sampled_weights(model, max_tensors, weights_per_tensor)
    owners = list(dict.fromkeys(sample.module for sample in samples))
    calls: dict[nn.Module, list[tuple[tuple[torch.Tensor, ...], torch.Tensor]]] = {m: [] for m in owners}

    def keep(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        calls[module].append((tuple(x.detach() for x in inputs), output))

    handles = [module.register_forward_hook(keep) for module in owners]
    try:
        logits = model(images)
    finally:
        for handle in handles:
            handle.remove()
    for module, seen in calls.items():
        if len(seen) != 1 or not isinstance(seen[0][1], torch.Tensor):
            raise ProxyError(f"a {type(module).__name__} runs {len(seen)} times per forward pass; VKDNW needs one")
    outputs = [calls[m][0][1] for m in owners]
    tangents = [_Tangent.of(_weight_tangent(sample, calls[sample.module][0][0])) for sample in samples]
    owner_of = [owners.index(sample.module) for sample in samples]

    columns = []
    for c in range(logits.shape[1]):
        grads = torch.autograd.grad(logits[:, c].sum(), outputs, retain_graph=True, allow_unused=True)
        columns.append(
            torch.stack(
                [
                    t.dot(grads[o]) if grads[o] is not None else torch.zeros(len(images))
                    for o, t in zip(owner_of, tangents)
                ],
                dim=1,
            )
        )
    jacobians = torch.stack(columns, dim=1).double()  # (images, classes, weights)
    if not torch.isfinite(jacobians).all():
        raise ProxyError("the logits' Jacobian is not finite: the untrained network overflows")
    classes = logits.shape[1]
    p = torch.softmax(logits.detach().double(), dim=1) * (1.0 - _SMOOTHING) + _SMOOTHING / classes
    covariance = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    return torch.einsum("nci,ncd,ndj->ij", jacobians, covariance, jacobians) / len(images)


@dataclass(frozen=True)
class _Weight:
    """One sampled weight: element ``index`` of ``module``'s own parameter ``name``."""

    module: nn.Module
    name: str
    index: int


def _sampled_weights(model: nn.Module, max_tensors: int, weights_per_tensor: int) -> list[_Weight]:
    owned = [(module, name, p) for module in model.modules() for name, p in module.named_parameters(recurse=False)]
    # named_parameters() lists a shared tensor once; keep that first owner, in the same order.
    order = {id(p): k for k, (_, p) in enumerate(model.named_parameters())}
    firsts = {}
    for module, name, p in owned:
        firsts.setdefault(id(p), (module, name, p))
    chosen = sorted(firsts.values(), key=lambda entry: order[id(entry[2])])[:max_tensors]
    samples = []
    for module, name, p in chosen:
        steps = min(weights_per_tensor, p.numel())
        samples += [_Weight(module, name, int(i)) for i in torch.linspace(0, p.numel() - 1, steps=steps).long()]
    return samples


def _weight_tangent(weight: _Weight, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The derivative of the module's output by the one weight (forward mode, that module alone)."""
    params = dict(weight.module.named_parameters(recurse=False))
    base = params[weight.name].detach()
    direction = torch.zeros_like(base).reshape(-1)
    direction[weight.index] = 1.0

    def run(value: torch.Tensor) -> torch.Tensor:
        replaced = {name: p.detach() for name, p in params.items()}
        replaced[weight.name] = value
        return functional_call(weight.module, replaced, inputs)

    with torch.no_grad():
        _, tangent = jvp(run, (base,), (direction.reshape(base.shape),))
    return tangent


@dataclass(frozen=True)
class _Tangent:
    """A layer output's derivative by one weight, kept on the output channels it touches (one
    channel for a conv, linear or BatchNorm weight), so the per-class products stay cheap."""

    channels: torch.Tensor
    values: torch.Tensor

    @staticmethod
    def of(tangent: torch.Tensor) -> _Tangent:
        if tangent.ndim < 2:
            return _Tangent(torch.zeros(0, dtype=torch.long), tangent[:, None])
        channels = tangent.transpose(0, 1).reshape(tangent.shape[1], -1).ne(0).any(dim=1).nonzero().flatten()
        return _Tangent(channels, tangent.index_select(1, channels))

    def dot(self, gradient: torch.Tensor) -> torch.Tensor:
        """Per image: the sum over the output of ``gradient`` times this derivative."""
        picked = gradient[:, None] if gradient.ndim < 2 else gradient.index_select(1, self.channels)
        return (picked * self.values).reshape(len(gradient), -1).sum(dim=1)
