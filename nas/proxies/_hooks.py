"""One forward pass that hands each selected module's feature map to a callback (MeCo, SWAP)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn


def visit_feature_maps(
    model: nn.Module,
    modules: Iterable[nn.Module],
    images: torch.Tensor,
    visit: Callable[[nn.Module, torch.Tensor], None],
) -> None:
    """Run ``images`` through ``model`` once without gradients, calling ``visit(module, output)``
    for every 4-D ``(N, C, H, W)`` tensor output of ``modules``, in the order they run.

    The callback sees each output as it is produced, so a proxy keeps only its reduction (an
    eigenvalue, packed sign bits), never the whole network's activations; outputs of other ranks
    (a classifier's logits, a flattened vector) are skipped. A module that runs twice is visited
    twice. Hooks are removed even when the forward pass or the callback raises.
    """

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: object) -> None:
        if isinstance(output, torch.Tensor) and output.ndim == 4:
            visit(module, output.detach())

    handles = [module.register_forward_hook(hook) for module in modules]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
