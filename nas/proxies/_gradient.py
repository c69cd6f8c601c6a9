"""Proxies that read the gradients of an untrained network on one batch: the pruning-at-init
saliencies (grad_norm, snip, fisher, grasp) and the input Jacobian's correlations (jacob_cov).

They follow NASLib's implementations (``naslib/predictors/utils/pruners/measures``, itself
SamsungLabs' ``zero-cost-nas``, Abdelfattah et al., ICLR 2021), which published the NAS-Bench-201
scores these are checked against: the loss is the mean cross-entropy of the batch against its
labels; the scored layers are every ``nn.Conv2d`` and ``nn.Linear`` (weights only, never biases or
BatchNorm); a layer the loss does not reach counts 0; a network's score is the sum over layers.
Sums are taken in float64. NASLib scored each architecture on one CIFAR-10 training batch of 32
(NAS-Bench-Suite-Zero's setting); each proxy here takes the first ``images`` (default 32; grasp
16, see there) of the batch it is given, which also halves the cost against the configured 64. The default data are
packaged photographs with random labels, not CIFAR-10: that shifts the label-dependent scores,
not their definitions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.proxies._batch import ProxyBatch, ProxyError, weight_layers

WeightLayer = nn.Conv2d | nn.Linear
#: Images per score, as NAS-Bench-Suite-Zero (NASLib's published scores: CIFAR-10 batch of 32).
NASLIB_IMAGES = 32
#: grasp's images per score: half NASLib's, which halves its Hessian-gradient product, the
#: costliest of these proxies (see :func:`grasp`).
GRASP_IMAGES = 16


def _first(batch: ProxyBatch, images: int) -> ProxyBatch:
    """The first ``images`` of the batch (all of it when it is smaller)."""
    if images < 2:
        raise ValueError(f"images={images}: a gradient proxy needs at least 2 images of the batch")
    if images >= len(batch):
        return batch
    return ProxyBatch(batch.images[:images], batch.labels[:images], batch.num_classes)


def _loss(model: nn.Module, batch: ProxyBatch) -> torch.Tensor:
    loss = F.cross_entropy(model(batch.images), batch.labels)
    if not loss.requires_grad:
        raise ProxyError("the loss reaches no parameter (no gradient path)")
    return loss


def _backward_loss(model: nn.Module, batch: ProxyBatch, images: int) -> list[WeightLayer]:
    """Forward the batch's first ``images``, take the cross-entropy against their labels and
    backpropagate, leaving dL/dW in each weight layer's ``.grad`` (``None`` where the loss does
    not reach it)."""
    layers = weight_layers(model)
    model.zero_grad(set_to_none=True)
    _loss(model, _first(batch, images)).backward()
    return layers


def _sum_over_layers(terms: Sequence[torch.Tensor | None]) -> float:
    """The float64 sum of the per-layer terms (``None``: a layer the loss does not reach, 0);
    refuses a network where no layer is reached, or a sum that is not finite."""
    reached = [t for t in terms if t is not None]
    if not reached:
        raise ProxyError("the loss reaches no Conv2d or Linear weight (no gradient path)")
    total = float(sum(t.double().sum() for t in reached))
    if not np.isfinite(total):
        raise ProxyError(f"the sum over layers is {total} (the gradients overflowed)")
    return total


def grad_norm(model: nn.Module, batch: ProxyBatch, *, images: int = NASLIB_IMAGES) -> float:
    """Gradient norm (Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS"):
    the sum over Conv2d/Linear layers of the Euclidean (Frobenius) norm of dL/dW, where L is the
    batch's mean cross-entropy over its first ``images``; as NASLib's ``grad_norm`` (a sum of
    per-layer norms, not the norm of all gradients together; biases excluded).
    """
    layers = _backward_loss(model, batch, images)
    return _sum_over_layers([_grad(layer, lambda w, g: g.norm()) for layer in layers])


def snip(model: nn.Module, batch: ProxyBatch, *, images: int = NASLIB_IMAGES) -> float:
    """SNIP (Lee et al., ICLR 2019) summed over the network as a NAS proxy (Abdelfattah et al.,
    ICLR 2021): ``sum |W * dL/dW|`` over the Conv2d/Linear weights, L the mean cross-entropy of
    the batch's first ``images``.

    NASLib multiplies every weight by a mask of ones and reads ``|dL/dmask|``; since
    ``dL/dmask = W * dL/dW`` at mask 1, hwnas reads the weight gradient instead of patching each
    layer's ``forward``: the same number.
    """
    layers = _backward_loss(model, batch, images)
    return _sum_over_layers([_grad(layer, lambda w, g: (w * g).abs()) for layer in layers])


def fisher(model: nn.Module, batch: ProxyBatch, *, images: int = NASLIB_IMAGES) -> float:
    """Fisher (Theis et al., 2018; Turner et al., ICLR 2020, as a NAS proxy by Abdelfattah et al.,
    ICLR 2021): for each output channel k of each Conv2d/Linear layer, with a its activation
    (the layer's output, before BatchNorm) and g = dL/da,
    ``F_k = 0.5 * mean over images of (sum over positions of a * g)^2``, the loss-change estimate of
    removing channel k; L is the mean cross-entropy of the batch's first ``images``.

    As NASLib, each channel's ``F_k`` is counted once per weight of that channel (NASLib
    broadcasts the channel value onto the weight tensor before summing): the score is
    ``sum_k F_k * in_channels/groups * kernel area`` (``in_features`` for a Linear), so wider
    fan-in layers weigh more. Kept so scores stay comparable with NASLib's published ones.
    NASLib reads a and g by replacing each layer's ``forward`` with one that passes its output
    through a hooked identity; hwnas hooks the layer's output tensor instead (same a, same g).
    """
    layers = weight_layers(model)
    per_layer: dict[WeightLayer, torch.Tensor] = {}

    def save_gradient(layer: WeightLayer, activation: torch.Tensor) -> Callable[[torch.Tensor], None]:
        def hook(gradient: torch.Tensor) -> None:
            a, g = activation.double(), gradient.detach().double()
            per_image = (a * g).sum(dim=tuple(range(2, a.ndim))) if a.ndim > 2 else a * g
            saliency = 0.5 * per_image.pow(2).mean(0) * (layer.weight[0].numel())
            per_layer[layer] = per_layer[layer] + saliency if layer in per_layer else saliency

        return hook

    def watch(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if output.requires_grad:
            # the detached view, not the tensor: a hook holding its own tensor is a cycle through
            # the autograd graph that Python's collector cannot free (about 90 MB per NB201 cell)
            output.register_hook(save_gradient(layer, output.detach()))

    handles = [layer.register_forward_hook(watch) for layer in layers]
    try:
        _backward_loss(model, batch, images)
    finally:
        for handle in handles:
            handle.remove()
    return _sum_over_layers([per_layer.get(layer) for layer in layers])


def grasp(model: nn.Module, batch: ProxyBatch, *, images: int = GRASP_IMAGES) -> float:
    """GraSP (Wang et al., ICLR 2020) summed over the network as a NAS proxy (Abdelfattah et al.,
    ICLR 2021): with g = dL/dW over all Conv2d/Linear weights W and H the Hessian of L, the mean
    cross-entropy of the batch's first ``images``, the score is ``sum(-W * Hg)``, Hg computed as
    the gradient of ``g_detached . g``; NASLib's sign (it negates GraSP's saliency because
    accuracy correlates with the negated form).

    NASLib runs two forward passes on the same batch (one for g, one with ``create_graph``);
    hwnas runs one with ``create_graph`` and detaches g from it: in training mode BatchNorm uses
    the batch's statistics, so both passes are the same function and Hg is the same.

    Where hwnas differs: the first 16 images by default, not NASLib's 32. The second backward
    pass (mostly BatchNorm's and the convolutions' double backward) made grasp 1.4 s per NB201
    cell at 32 images on this CPU, against 0.5 s for snip; at 16 it costs about half. The
    ranking did not suffer: on 200 random NB201 cells with the packaged images, Spearman with
    CIFAR-10 accuracy 0.448 at 16 images and 0.439 at 32. Give ``images=32`` for NASLib's setting.
    """
    layers = weight_layers(model)
    weights = [layer.weight for layer in layers]
    model.zero_grad(set_to_none=True)
    gradients = torch.autograd.grad(_loss(model, _first(batch, images)), weights, create_graph=True, allow_unused=True)
    curved = [g for g in gradients if g is not None and g.requires_grad]
    if not curved:
        raise ProxyError("the loss reaches no Conv2d or Linear weight (no gradient path)")
    inner = torch.stack([(g.detach() * g).sum() for g in curved]).sum()
    hessian_gradient = torch.autograd.grad(inner, weights, allow_unused=True)
    terms = [None if hg is None else -(w.detach() * hg) for w, hg in zip(weights, hessian_gradient)]
    return _sum_over_layers(terms)


def jacob_cov(model: nn.Module, batch: ProxyBatch, *, images: int = NASLIB_IMAGES, eps: float = 1e-5) -> float:
    """Jacobian covariance (Mellor et al., NASWOT v1, 2020; named jacob_cov by Abdelfattah et al.,
    ICLR 2021, ``jacov`` in NASLib): J is the gradient of each image's summed outputs with respect
    to that image, flattened (one row for each of the batch's first ``images``); with C the
    correlation matrix of J's rows and ``v`` its eigenvalues, the score is
    ``-sum(log(v + eps) + 1 / (v + eps))``, ``eps = 1e-5``: a network whose Jacobians are less
    correlated across images scores higher (no score exceeds ``-N`` for N rows: each eigenvalue
    adds at least 1; reached when C is the identity).

    Differences from NASLib: the correlations and eigenvalues are computed in float64 with
    ``eigvalsh`` (C is symmetric; NASLib's general ``eig`` gives the same values up to rounding).
    Where NASLib returns NaN (scored -1e8, ranked last), hwnas raises a :class:`ProxyError` (also
    ranked last): a Jacobian row with zero variance (an image the output ignores) makes C
    undefined, and an eigenvalue below ``-eps`` (rounding) makes the log undefined.
    """
    weight_layers(model)  # a network without weights cannot learn, whatever its Jacobian
    batch = _first(batch, images)
    inputs = batch.images.detach().clone().requires_grad_(True)
    model.zero_grad(set_to_none=True)
    (jacobian,) = torch.autograd.grad(model(inputs).sum(), inputs, allow_unused=True)
    if jacobian is None:
        raise ProxyError("the output does not depend on the input (no gradient path)")
    rows = jacobian.reshape(len(batch), -1).double().numpy()
    if np.any(rows.std(axis=1) == 0):
        raise ProxyError("an image's input Jacobian is constant, so its correlations are undefined")
    eigenvalues = np.linalg.eigvalsh(np.corrcoef(rows)) + eps
    if np.any(eigenvalues <= 0):
        raise ProxyError(f"the Jacobian correlation matrix has an eigenvalue {eigenvalues.min() - eps}")
    score = -float(np.sum(np.log(eigenvalues) + 1.0 / eigenvalues))
    if not np.isfinite(score):
        raise ProxyError(f"the score is {score}")
    return score


def _grad(layer: WeightLayer, term: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """``term(W, dL/dW)`` of one layer, or ``None`` where the loss does not reach it."""
    if layer.weight.grad is None:
        return None
    return term(layer.weight.detach(), layer.weight.grad)
