"""AZ-NAS (Lee & Ham, CVPR 2024): expressivity, progressivity and trainability of the features
between a network's blocks, all three from one forward and one chain of backward passes.

The reference (github.com/cvlab-yonsei/AZ-NAS, ``NB201/ZeroShotProxy/compute_az_nas_score.py``)
reads NB201's stem output and the output of every cell of ``TinyNetwork.cells``. hwnas finds the
same feature maps in any network by one rule (:func:`block_features`): the network's *blocks* are
the children of its largest ``nn.Sequential`` (most children; the first in module order among
equals), and the features are the input of the first block and the output of every block that
does not return its input tensor itself. On NB201 that is ``cells`` (5 cells, a reduction, 5
cells, a reduction, 5 cells), so the features are the stem's output and the 17 block outputs,
exactly the reference's; on FBNet it is ``layers`` (whose ``skip`` choice, an ``nn.Identity``
returning its input, is depth the network does not have and is left out) and on Once-for-All
``blocks`` (the inverted-residual blocks between the stem and the head).

The fourth AZ-NAS component, complexity, is FLOPs (the ``flops`` proxy); the four are combined by
:func:`nas.proxies.nonlinear_rank`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from nas.proxies._batch import ProxyBatch, ProxyError, weight_layers


@dataclass(frozen=True)
class AZNASScores:
    """The three data-dependent AZ-NAS components of one network (larger is better for each);
    ``trainability`` is ``-inf`` when a block computes the identity, as in the reference."""

    expressivity: float
    progressivity: float
    trainability: float


def expressivity(model: nn.Module, batch: ProxyBatch, *, kaiming_fan_in: bool = False) -> float:
    """AZ-NAS expressivity (Lee & Ham, CVPR 2024): the sum over the block features of the entropy
    of the normalised eigenvalue spectrum of each feature's channel covariance (features that
    spread their variance over all channels score ``ln(channels)``, the maximum).

    See :func:`az_nas_scores` for the features read and where hwnas differs from the reference;
    computed from one forward pass without gradients (the value :func:`az_nas_scores` gives).
    """
    return math.fsum(_block_entropies(model, batch, kaiming_fan_in))


def progressivity(model: nn.Module, batch: ProxyBatch, *, kaiming_fan_in: bool = False) -> float:
    """AZ-NAS progressivity (Lee & Ham, CVPR 2024): the smallest increase of a feature's
    expressivity from one block to the next (negative when some block loses expressivity).

    See :func:`az_nas_scores`; computed from one forward pass without gradients.
    """
    return _smallest_step(_block_entropies(model, batch, kaiming_fan_in))


def trainability(model: nn.Module, batch: ProxyBatch, *, kaiming_fan_in: bool = False) -> float:
    """AZ-NAS trainability (Lee & Ham, CVPR 2024): the mean over blocks of ``2 - s - 1/s``, with
    ``s`` the spectral norm of the block's input-output gradient correlation under random
    Rademacher output gradients (0, the maximum, when gradients keep their scale through every block).

    See :func:`az_nas_scores`. A network with a block that computes the identity (an NB201 cell
    whose ops reduce to a skip connection) is refused: the reference scores it ``-inf``, ranking
    it last among all networks, which a refusal does too.
    """
    images = _prepare(model, batch, kaiming_fan_in)
    score = _mean_gradient_scale_score(block_features(model, images))
    if score == -math.inf:
        raise ProxyError("a block computes the identity; AZ-NAS ranks a network with such a block last")
    return score


def az_nas_scores(model: nn.Module, batch: ProxyBatch, *, kaiming_fan_in: bool = False) -> AZNASScores:
    """The three data-dependent AZ-NAS components from one forward pass over the batch (training
    mode, as the reference) and one backward pass per block.

    As the reference: features are taken as ``(N*H*W, C)`` samples of C channels (a ``(N, C)``
    feature as H = W = 1); a block that reduces the resolution by s has its input gradient folded
    by pixel-unshuffle (zero-padded to a multiple of s, which the reference does not need on
    NB201) so input and output positions correspond; covariances and gradient correlations are
    accumulated in float32, as the reference.

    Where hwnas differs: the batch is whatever the caller gives (the reference feeds Gaussian noise
    on NB201, and so do ``configs/proxy``'s AZ-NAS files, through :class:`nas.training.GaussianImages`);
    the network keeps the space's seeded initialisation (PyTorch's default) unless
    ``kaiming_fan_in``, which gives every conv and linear the scale of the reference's
    Kaiming-normal fan-in initialisation (std ``sqrt(2 / fan_in)``, biases zero; rescaling the
    seeded weights rather than re-drawing them, so the proxy draws no random numbers). Measured on
    200 random NB201 cells (CIFAR-10 Spearman of the aggregate with FLOPs): noise 0.920 with the
    default initialisation, 0.910 with ``kaiming_fan_in``; packaged photographs 0.905 and 0.751;
    eigen- and singular values of the (C, C) matrices in float64; the entropy uses ``0 ln 0 = 0``
    instead of ``ln(p + 1e-8)``, with eigenvalues below zero (round-off of a positive
    semi-definite matrix) read as zero; the Rademacher gradients come from a generator seeded 0,
    not the global state. The network and images are switched to channels-last memory format
    (the same function; on this CPU it halves the cost of convolutions and pooling, and makes
    the ``(N*H*W, C)`` samples a view). Refused with :class:`ProxyError`: a network without a
    conv or linear layer; a feature with no
    variance over the batch (its spectrum has no entropy); a block with no gradient path from its
    output to its input. A block that computes the identity (its input gradient equals its output
    gradient exactly: an NB201 cell whose ops reduce to a skip connection) makes ``trainability``
    ``-inf``, as the reference (the :func:`trainability` proxy refuses such a network). A block that
    returns its input tensor itself (``nn.Identity``) is not a block here (see
    :func:`block_features`), so FBNet's skip layers are neither scored nor refused.

    The single proxies compute only their own part: :func:`expressivity` and
    :func:`progressivity` one forward pass without gradients, :func:`trainability` no entropies.
    """
    images = _prepare(model, batch, kaiming_fan_in)
    features = block_features(model, images)
    entropies = [spectral_entropy(feature) for feature in features]
    return AZNASScores(
        expressivity=math.fsum(entropies),
        progressivity=_smallest_step(entropies),
        trainability=_mean_gradient_scale_score(features),
    )


def _prepare(model: nn.Module, batch: ProxyBatch, kaiming_fan_in: bool) -> torch.Tensor:
    """Check the network has weights, rescale them if asked, and switch network and images to
    channels-last memory format; returns the images to feed."""
    weight_layers(model)
    if kaiming_fan_in:
        rescale_to_kaiming_fan_in(model)
    model.to(memory_format=torch.channels_last)
    return batch.images.contiguous(memory_format=torch.channels_last)


def _block_entropies(model: nn.Module, batch: ProxyBatch, kaiming_fan_in: bool) -> list[float]:
    images = _prepare(model, batch, kaiming_fan_in)
    with torch.no_grad():
        return [spectral_entropy(feature) for feature in block_features(model, images)]


def _smallest_step(entropies: list[float]) -> float:
    return min(later - earlier for earlier, later in zip(entropies, entropies[1:]))


def _mean_gradient_scale_score(features: list[torch.Tensor]) -> float:
    generator = torch.Generator().manual_seed(0)
    # Backwards from the last block, as the reference: each pass frees only its own block's graph.
    block_scores = [
        _gradient_scale_score(features[k], features[k + 1], generator, k) for k in reversed(range(len(features) - 1))
    ]
    return math.fsum(block_scores) / len(block_scores)


def block_features(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The input of the network's first block and the output of every block, in order, kept in
    the autograd graph (the images are made to require gradients, so even a first block fed
    the raw images has a gradient path).

    The blocks are the children of the largest ``nn.Sequential`` in ``model.modules()`` (most
    children; the first in module order among equals): NB201's ``cells``, FBNet's ``layers``,
    Once-for-All's ``blocks``; a plain ``nn.Sequential`` network is its own list of blocks. A
    block that returns its input tensor itself (``nn.Identity``, FBNet's skip layer) adds no
    feature: it is depth the architecture does not have.
    """
    blocks = _largest_sequential(model)
    features: list[torch.Tensor] = []

    def keep_input(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        features.append(inputs[0])

    def keep_output(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if output is not inputs[0]:
            features.append(output)

    handles = [blocks[0].register_forward_pre_hook(keep_input)]
    handles += [block.register_forward_hook(keep_output) for block in blocks]
    try:
        model(images.detach().clone().requires_grad_(True))
    finally:
        for handle in handles:
            handle.remove()
    if len(features) < 2:
        raise ProxyError("every block of the network returns its input: there is no block to score")
    for index, feature in enumerate(features):
        if not isinstance(feature, torch.Tensor) or feature.ndim not in (2, 4):
            raise ProxyError(
                f"block feature {index} is not a (N, C) or (N, C, H, W) tensor; AZ-NAS reads convolutional features"
            )
    return features


def spectral_entropy(feature: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance of ``feature`` (N, C, H, W)
    or (N, C), every position of every image one sample; ``ln(C)`` when the covariance is isotropic.

    Eigenvalues below zero (round-off) count as zero, and ``0 ln 0 = 0``; a feature without any
    variance is refused (its spectrum cannot be normalised).
    """
    samples = _positions_by_channels(feature.detach())
    centred = samples - samples.mean(dim=0, keepdim=True)
    # Accumulated in float32 as the reference (a C x C product of bounded features); float64
    # from here, where the spectrum's small eigenvalues are separated.
    covariance = (centred.T @ centred).double() / samples.shape[0]
    eigenvalues = torch.linalg.eigvalsh(covariance).clamp(min=0.0)
    total = eigenvalues.sum()
    if not total > 0:
        raise ProxyError("a block's feature map is constant over the batch: its expressivity is undefined")
    p = eigenvalues / total
    return float(-torch.special.xlogy(p, p).sum())


@torch.no_grad()
def rescale_to_kaiming_fan_in(model: nn.Module) -> None:
    """Scale every conv and linear weight to the standard deviation of Kaiming-normal fan-in
    initialisation for ReLU (``sqrt(2 / fan_in)``) and zero their biases, as AZ-NAS and VKDNW
    initialise networks; BatchNorm is left at PyTorch's default (weight 1, bias 0), as theirs."""
    for layer in weight_layers(model):
        fan_in = layer.weight[0].numel()
        std = layer.weight.std()
        if std > 0:
            layer.weight.mul_(math.sqrt(2.0 / fan_in) / std)
        if layer.bias is not None:
            layer.bias.zero_()


def _gradient_scale_score(
    feature_in: torch.Tensor, feature_out: torch.Tensor, generator: torch.Generator, index: int
) -> float:
    """``2 - s - 1/s`` for the largest singular value s of E[g_in g_out^T] over positions, with
    g_out a Rademacher gradient at the block's output and g_in its image at the block's input; ``-inf`` for a block that computes the identity (its input
    gradient equals its output gradient exactly), as the reference."""
    draw = torch.randint(0, 2, feature_out.shape, generator=generator, dtype=feature_out.dtype)
    # In the feature's own memory layout: a gradient in another layout sends every op's backward
    # pass through a slow mixed-layout path (BatchNorm's 3x slower on channels-last features).
    g_out = torch.empty_like(feature_out).copy_(draw).mul_(2).sub_(1)
    (g_in,) = torch.autograd.grad(feature_out, feature_in, grad_outputs=g_out, allow_unused=True)
    if g_in is None:
        raise ProxyError(f"block {index} has no gradient path from its output to its input")
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return -math.inf
    g_out = _as_4d(g_out)
    g_in = _fold_to(_as_4d(g_in), g_out.shape[2:])
    outs, ins = _positions_by_channels(g_out), _positions_by_channels(g_in)
    correlation = (ins.T @ outs).double() / outs.shape[0]  # accumulated in float32, as the reference
    s = float(torch.linalg.matrix_norm(correlation, ord=2))
    if s == 0.0:
        raise ProxyError(f"block {index}'s input gradient is zero: no gradient reaches its input")
    return 2.0 - s - 1.0 / s


def _fold_to(gradient: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Pixel-unshuffle ``gradient`` (N, C, H, W) by the block's stride so it has ``size``."""
    height, width = gradient.shape[2:]
    stride = max(math.ceil(height / size[0]), math.ceil(width / size[1]))
    if stride == 1 and (height, width) == tuple(size):
        return gradient
    padded = nn.functional.pad(gradient, (0, size[1] * stride - width, 0, size[0] * stride - height))
    if padded.shape[2:] != (size[0] * stride, size[1] * stride):
        raise ProxyError(f"a block maps {height}x{width} positions to {size[0]}x{size[1]}: not a strided reduction")
    return nn.functional.pixel_unshuffle(padded, stride)


def _as_4d(tensor: torch.Tensor) -> torch.Tensor:
    return tensor if tensor.ndim == 4 else tensor[:, :, None, None]


def _positions_by_channels(feature: torch.Tensor) -> torch.Tensor:
    feature = _as_4d(feature)
    return feature.permute(0, 2, 3, 1).reshape(-1, feature.shape[1])


def _largest_sequential(model: nn.Module) -> nn.Sequential:
    sequentials = [m for m in model.modules() if isinstance(m, nn.Sequential) and len(m) > 0]
    if not sequentials:
        raise ProxyError("the network has no nn.Sequential of blocks whose features AZ-NAS could read")
    return max(sequentials, key=len)
