"""Seeded weight initialisation shared by the search spaces' networks and supernets.

Modules are created on the meta device, so construction neither draws from nor advances torch's
global random state; their weights then come from one explicit ``torch.Generator`` alone. The
distributions are PyTorch's defaults, so a seeded network trains like a freshly constructed one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def materialise(make: Callable[[], ModuleT], seed: int) -> ModuleT:
    """``make()`` built on the meta device, then given CPU memory initialised from ``seed``.

    Always CPU: a CUDA generator draws other numbers than a CPU one for the same seed, so moving
    the finished module (``.to(device)``) is what keeps a seed's weights the same everywhere.
    """
    with torch.device("meta"):
        model = make()
    model = model.to_empty(device="cpu")
    initialise(model, torch.Generator().manual_seed(seed))
    return model


@torch.no_grad()
def initialise(model: nn.Module, generator: torch.Generator) -> None:
    """Give every parameter and buffer of ``model`` PyTorch's default initial value, drawing the
    random ones from ``generator``; modules are visited in ``model.modules()`` order, so equal
    generators give equal weights. Convs and linears are drawn as their ``reset_parameters``
    would; any other module holding tensors must have a deterministic ``reset_parameters``
    (BatchNorm, OFA's kernel transforms)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                bound = 1 / math.sqrt(module.weight[0].numel())
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        elif any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
            reset = getattr(module, "reset_parameters", None)
            if reset is None:
                # to_empty left this module's memory uninitialised: refuse rather than return garbage.
                raise TypeError(f"no initialisation rule for {type(module).__name__}")
            reset()
