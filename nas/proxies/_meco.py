"""MeCo: the minimum eigenvalue of the channels' correlation matrix of every feature map."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from nas.proxies._batch import ProxyBatch, ProxyError, weight_layers
from nas.proxies._hooks import visit_feature_maps

#: A channel whose spatial standard deviation is at most this fraction of its root-mean-square is
#: constant: float32 rounding alone leaves relative wiggles near 1e-7, far below it.
CONSTANT_RTOL = 1e-6


def meco(model: nn.Module, batch: ProxyBatch, *, images: int = 8, channels: int | None = None, seed: int = 0) -> float:
    """MeCo (Jiang et al., NeurIPS 2023): the sum over feature maps of the minimum eigenvalue of
    the Pearson correlation matrix between the map's channels, read over its spatial positions.

    As the reference code (``HamsterMimi/MeCo``, ``correlation/NAS_Bench_201.py``): one forward
    pass of the first ``images`` images of the batch (the paper uses 1), a forward hook on every
    module of the network, and for every 4-D output ``(N, C, H, W)`` the ``C x C`` correlation of
    each image's channels over its ``H*W`` positions; the layer's term is that matrix's minimum
    eigenvalue, averaged over the images. The images go through together, so training-mode
    BatchNorm normalises over all of them (with ``images=1``, exactly the reference). ``channels=k``
    is the paper's MeCo_opt: ``k`` channels drawn at random per layer (by ``seed``, the same for
    every image) and the eigenvalue scaled by ``C / k``; a layer with at most ``k`` channels uses
    all of them, unscaled. ``channels=None`` is plain MeCo (every channel).

    Numerical rules (each gives a correlation matrix with an exactly-zero eigenvalue the value
    0, its true minimum, instead of a rounding residue of either sign):

    * a constant channel (spatial std at most :data:`CONSTANT_RTOL` of its RMS; a ``none`` op,
      a dead ReLU) has no defined correlation; the reference zeroes the NaN row, which gives the
      eigenvalue 0, and so does hwnas, directly;
    * a map with ``C >= H*W`` (the correlation of ``C`` channels from ``H*W`` positions has rank
      at most ``H*W - 1``) is singular: 0, without an eigensolver;
    * otherwise ``eigvalsh`` in float64 on the symmetric matrix, clamped at 0 (a correlation
      matrix is positive semi-definite; the reference's general ``eig`` can return -1e-17).

    Where hwnas differs: the hooked modules are hwnas's own (an NB201 ``nor_conv`` is one
    ``Sequential(ReLU, Conv, BN)``, hooked 4 times where the reference's extra wrapper makes 5; an
    ``avg_pool`` 1 time where the reference makes 2), so the sum weighs ops slightly differently;
    MeCo_opt draws from an explicit generator instead of Python's global ``random``; the image
    is a packaged photograph instead of a CIFAR-10 one (the reference's Zero-Cost-PT version,
    ``measures/meco.py``, even feeds one Gaussian-noise image); a single-channel map scores 0
    (nothing to correlate); the default averages 8 images where the paper
    reads 1. That default (plain MeCo, 8 images) was chosen among images 1 or 8 x MeCo or MeCo_opt
    on 200 random NB201 cells and confirmed on 200 others (configs/proxy/meco.yaml gives the
    figures): averaging 8 images beat one on both samples, and MeCo_opt ranked below plain MeCo on
    both, against the paper's finding (hwnas's photographs, not CIFAR-10, may be why).
    """
    weight_layers(model)
    if not 1 <= images <= len(batch):
        raise ValueError(f"meco(images={images}): give between 1 and the batch's {len(batch)} images")
    if channels is not None and channels < 2:
        raise ValueError(f"meco(channels={channels}): a correlation needs at least 2 channels (MeCo_opt: 8)")
    rng = np.random.default_rng(seed)
    terms: list[float] = []

    def visit(module: nn.Module, output: torch.Tensor) -> None:
        maps = output.reshape(output.shape[0], output.shape[1], -1)
        scale = 1.0
        if channels is not None and maps.shape[1] > channels:
            scale = maps.shape[1] / channels
            picked = np.sort(rng.choice(maps.shape[1], size=channels, replace=False))
            maps = maps[:, torch.from_numpy(picked)]
        terms.append(scale * float(min_correlation_eigenvalues(maps).mean()))

    visit_feature_maps(model, model.modules(), batch.images[:images], visit)
    if not terms:
        raise ProxyError("the network has no module with a 4-D feature map whose correlation MeCo could read")
    return math.fsum(terms)


def min_correlation_eigenvalues(maps: torch.Tensor) -> torch.Tensor:
    """For each ``(C, P)`` slice of ``maps`` ``(N, C, P)``, the minimum eigenvalue of the Pearson
    correlation matrix of its ``C`` rows over ``P`` observations, in float64 (see :func:`meco`'s
    numerical rules): ``(N,)``."""
    n, c, p = maps.shape
    if c < 2 or c >= p:
        # Rank <= P - 1 < C: singular. A single channel has nothing to be correlated with.
        return torch.zeros(n, dtype=torch.float64)
    x = maps.double()
    centred = x - x.mean(dim=-1, keepdim=True)
    spread = centred.norm(dim=-1)
    constant = spread <= CONSTANT_RTOL * x.norm(dim=-1)
    unit = centred / torch.where(constant, 1.0, spread).unsqueeze(-1)
    correlation = unit @ unit.transpose(-1, -2)
    smallest = torch.linalg.eigvalsh(correlation)[:, 0].clamp(min=0.0)
    return torch.where(constant.any(dim=-1), 0.0, smallest)
