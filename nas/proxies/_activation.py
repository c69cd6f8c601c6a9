"""Proxies that read the activation patterns of ReLU units over a batch: NASWOT."""

from __future__ import annotations

import torch
from torch import nn

from nas.proxies._batch import ProxyBatch, ProxyError, relu_layers


def naswot(model: nn.Module, batch: ProxyBatch) -> float:
    """NASWOT (Mellor et al., ICML 2021): log-determinant of the Hamming-similarity kernel of the
    images' binary ReLU codes; networks that tell inputs apart score higher.

    As NASLib's ``nwot``: every ``nn.ReLU``'s input is binarised (> 0) per image, and
    ``K = sum over ReLUs of c c^T + (1 - c)(1 - c)^T`` (the number of units on which two images
    agree) is accumulated in float64; the score is ``slogdet(K)``'s log-absolute-determinant.
    """
    n = len(batch)
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def accumulate(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        codes = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T).add_((1.0 - codes) @ (1.0 - codes).T)

    handles = [layer.register_forward_pre_hook(accumulate) for layer in relu_layers(model)]
    try:
        with torch.no_grad():
            model(batch.images)
    finally:
        for handle in handles:
            handle.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    if sign <= 0:
        raise ProxyError("the NASWOT kernel is singular: two images have identical ReLU codes everywhere")
    return float(logdet)
