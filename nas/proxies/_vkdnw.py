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
from torch.autograd import forward_ad
from torch.func import functional_call

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
    images: int = 64,
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
    refused. The Fisher matrix is taken over the batch's first ``images`` (all of a smaller
    batch), 64 by default as the reference. The batch matters: the reference feeds Gaussian noise,
    and so does ``configs/proxy/vkdnw.yaml`` (:class:`nas.training.GaussianImages`); on 150 random
    NB201 cells, Spearman with CIFAR-10 accuracy 0.611 on noise against 0.255 on the packaged
    photographs (on another 200 with the photographs: 0.142). Fewer images do not keep the ranking
    (noise, the same 150 cells: 0.442 at 16 images), so VKDNW stays above a second per NB201 cell
    on this CPU (2.2 s on a quiet machine, from 4.5 s before the speed-ups below).

    Cost: one forward pass, one backward pass per class but one (9 on NB201, 99 on FBNet, 999 on
    Once-for-All: impractical there) and one run of one layer per sampled weight, all in
    channels-last memory format (the same function; faster convolutions and pooling on CPU).
    """
    return fisher_decile_entropy(
        model,
        batch,
        max_tensors=max_tensors,
        weights_per_tensor=weights_per_tensor,
        kaiming_fan_in=kaiming_fan_in,
        images=images,
    )


def vkdnw_single(
    model: nn.Module,
    batch: ProxyBatch,
    *,
    max_tensors: int = 128,
    weights_per_tensor: int = 1,
    kaiming_fan_in: bool = True,
    images: int = 16,
) -> float:
    """VKDNW's single-proxy ranking (Tybl & Neumann, CVPR 2025): networks ordered by their number
    of parameter tensors (the reference's ``vkdnw_dim``), then by VKDNW's entropy.

    The reference ranks the pairs ``(tensors, entropy)`` lexicographically; one number with the
    same order is ``tensors + entropy / (1 + ln 9)`` (the entropy is at most ``ln 9``, so the
    fraction stays below 1). Settings and rules as :func:`vkdnw`, but on the batch's first 16
    images by default (the reference: 64), which brings it under a second per NB201 cell on this
    CPU: the tensor count decides most of the order, and on 200 random NB201 cells with the
    packaged images its Spearman with CIFAR-10 accuracy was 0.794 at 16 images and 0.800 at 64
    (within the sample's noise), though VKDNW's entropy alone ranks worse at 16 (see
    :func:`vkdnw`). Give ``images=64`` for the reference's setting; its config, as :func:`vkdnw`'s,
    feeds Gaussian noise.
    """
    entropy = fisher_decile_entropy(
        model,
        batch,
        max_tensors=max_tensors,
        weights_per_tensor=weights_per_tensor,
        kaiming_fan_in=kaiming_fan_in,
        images=images,
    )
    return sum(1 for _ in model.parameters()) + entropy / (1.0 + math.log(len(_DECILES)))


def fisher_decile_entropy(
    model: nn.Module,
    batch: ProxyBatch,
    *,
    max_tensors: int,
    weights_per_tensor: int,
    kaiming_fan_in: bool,
    images: int,
) -> float:
    """The computation behind :func:`vkdnw` (see there)."""
    if max_tensors < 1 or weights_per_tensor < 1 or images < 1:
        raise ValueError(
            f"VKDNW needs max_tensors, weights_per_tensor and images >= 1, got {max_tensors}, "
            f"{weights_per_tensor} and {images}"
        )
    weight_layers(model)
    if kaiming_fan_in:
        rescale_to_kaiming_fan_in(model)
    model.eval()
    # The same function in channels-last memory format: on this CPU it halves the cost of the
    # convolutions' and pooling's backward passes, which are most of VKDNW's cost.
    model.to(memory_format=torch.channels_last)
    inputs = batch.images[:images].contiguous(memory_format=torch.channels_last)
    return decile_entropy(torch.linalg.eigvalsh(fisher_information(model, inputs, max_tensors, weights_per_tensor)))


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

    Computed as ``mean_n (L_n^T J_n)^T (L_n^T J_n)`` with L_n a factor of the covariance (see
    :func:`_covariance_factor`). The model must be in eval mode, so each image's logits depend on
    that image alone: then one backward pass per column of L (classes - 1) gives every image's
    projected gradient at each layer's output, and the
    derivative of a layer's output by one of its weights is a forward-mode derivative of that
    layer alone, so the Jacobians cost a forward pass per sampled weight *of its layer* and a
    backward pass per class but one, whatever the layer types.
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

    if not torch.isfinite(logits).all():
        raise ProxyError("the logits are not finite: the untrained network overflows")
    factor = _covariance_factor(logits.detach())
    projected = []  # row k: the Jacobians' image under the factor's column k, per image and weight
    for k in range(factor.shape[2]):
        grads = torch.autograd.grad(
            logits, outputs, grad_outputs=factor[:, :, k].to(logits.dtype), retain_graph=True, allow_unused=True
        )
        projected.append(
            torch.stack(
                [
                    t.dot(grads[o]) if grads[o] is not None else torch.zeros(len(images))
                    for o, t in zip(owner_of, tangents)
                ],
                dim=1,
            )
        )
    rows = torch.stack(projected, dim=1).double()  # (images, classes - 1, weights)
    if not torch.isfinite(rows).all():
        raise ProxyError("the logits' Jacobian is not finite: the untrained network overflows")
    return torch.einsum("nki,nkj->ij", rows, rows) / len(images)


def _covariance_factor(logits: torch.Tensor) -> torch.Tensor:
    """Per image, a (classes, classes - 1) factor L with ``L L^T = diag p - p p^T`` (p the
    label-smoothed softmax), in float64: the covariance's null direction (all classes alike)
    is left out, so the Jacobian needs one backward pass fewer than there are classes, as the
    reference's Cholesky factor (whose last column is zero)."""
    classes = logits.shape[1]
    p = torch.softmax(logits.double(), dim=1) * (1.0 - _SMOOTHING) + _SMOOTHING / classes
    covariance = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    eigenvalues, vectors = torch.linalg.eigh(covariance)  # ascending: the null direction first
    return vectors[:, :, 1:] * eigenvalues[:, None, 1:].clamp(min=0.0).sqrt()


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


#: Module types whose output is linear in their parameters taken together (zero when all are
#: zero: a conv or linear layer's weight and bias, BatchNorm's scale and shift): the derivative
#: by one weight is the module run with that weight's direction and its other parameters zero.
#: Exact types only: a subclass may reparametrise its weight.
_LINEAR_IN_PARAMETERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _weight_tangent(weight: _Weight, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The derivative of the module's output by the one weight (that module alone): one run of
    the module for the layer types in ``_LINEAR_IN_PARAMETERS``, forward-mode AD for any other.

    Neither goes through ``torch.func.jvp``, whose Python decompositions (mostly BatchNorm's)
    were a third of VKDNW's cost on NB201."""
    params = dict(weight.module.named_parameters(recurse=False))
    base = params[weight.name].detach()
    direction = torch.zeros_like(base).reshape(-1)
    direction[weight.index] = 1.0
    direction = direction.reshape(base.shape)
    with torch.no_grad():
        if type(weight.module) in _LINEAR_IN_PARAMETERS:
            zeroed = {name: torch.zeros_like(p) for name, p in params.items()}
            return functional_call(weight.module, {**zeroed, weight.name: direction}, inputs)
        with forward_ad.dual_level():
            replaced = {name: p.detach() for name, p in params.items()}
            replaced[weight.name] = forward_ad.make_dual(base, direction)
            output, tangent = forward_ad.unpack_dual(functional_call(weight.module, replaced, inputs))
            # No tangent: the output does not depend on this weight.
            return torch.zeros_like(output) if tangent is None else tangent


@dataclass(frozen=True)
class _Tangent:
    """A layer output's derivative by one weight, kept on the range of output channels it
    touches (one channel for a conv, linear or BatchNorm weight), so the per-class products
    read a view of the gradient and stay cheap."""

    channels: slice
    values: torch.Tensor

    @staticmethod
    def of(tangent: torch.Tensor) -> _Tangent:
        if tangent.ndim < 2:
            return _Tangent(slice(None), tangent[:, None])
        # Reduced over every dimension but the channels, in place: no copy of a channels-last tensor.
        touched = tangent.abs().amax(dim=(0, *range(2, tangent.ndim))).nonzero().flatten()
        if len(touched) == 0:
            return _Tangent(slice(0, 0), tangent[:, :0].clone())
        channels = slice(int(touched[0]), int(touched[-1]) + 1)
        return _Tangent(channels, tangent[:, channels].clone())

    def dot(self, gradient: torch.Tensor) -> torch.Tensor:
        """Per image: the sum over the output of ``gradient`` times this derivative."""
        picked = gradient[:, None] if gradient.ndim < 2 else gradient[:, self.channels]
        return (picked * self.values).sum(dim=tuple(range(1, self.values.ndim)))
