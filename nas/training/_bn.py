"""BatchNorm recalibration: running statistics that belong to one architecture.

In a supernet the stem, the reduction blocks and the head (and, in elastic spaces, every layer)
are shared by all architectures, so their BN running statistics are an average over whatever
architectures training happened to sample, and they fit none of them. Before an inherited
accuracy means anything, the statistics must be recomputed with the architecture's own path.
This is done on the extracted subnet, not in the supernet, so that recalibrating one
architecture can never disturb another's (or the supernet's) statistics.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from nas._architecture import Architecture
from nas._supernet import Supernet
from nas.training._sampling import fit_input


@torch.no_grad()
def recalibrate_bn(module: nn.Module, batches: Iterable[Any], max_batches: int | None = None) -> nn.Module:
    """Reset ``module``'s BN running statistics and recompute them over ``batches``.

    Each BN layer uses ``momentum=None`` (a cumulative average over the batches, so the result
    does not depend on where a decay started) and the module runs in train mode without
    gradients; it is returned in eval mode with the layers' momenta as they were. A batch is a
    tensor or a sequence whose first element is the input tensor (a DataLoader's (x, y)).
    """
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [layer.momentum for layer in layers]
    device = next(itertools.chain(module.parameters(), module.buffers())).device
    try:
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None
        module.train()
        for batch in itertools.islice(batches, max_batches):
            images = batch if isinstance(batch, torch.Tensor) else batch[0]
            module(images.to(device))
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        module.eval()
    return module


def recalibrated_subnet(
    supernet: Supernet, arch: Architecture, batches: Iterable[Any], max_batches: int | None = None
) -> nn.Module:
    """``arch``'s subnet, its BN statistics recomputed on ``batches`` (the supernet is untouched).

    Inputs are resized to ``arch``'s resolution when the space gives it one of its own.
    """
    subnet = supernet.subnet(arch)
    resized = (fit_input(b if isinstance(b, torch.Tensor) else b[0], supernet, arch) for b in batches)
    return recalibrate_bn(subnet, resized, max_batches)
