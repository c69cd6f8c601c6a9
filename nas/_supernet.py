"""The supernet interface: one set of shared weights from which any architecture is run or cut out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from nas._architecture import Architecture
from nas._space import SearchSpace


class Supernet(nn.Module, ABC):
    """Shared weights for every architecture of :attr:`space`.

    The architecture is an argument of :meth:`forward`, never hidden state, so two threads or
    two sampled paths of one training step cannot see each other's choice. :meth:`subnet` copies
    the weights an architecture uses into a standalone module (training the copy leaves the
    supernet as it was), and for every architecture
    ``supernet(x, arch) == supernet.subnet(arch)(x)`` (the invariant the contract tests check).
    """

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space

    @abstractmethod
    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        """Run ``arch``'s path through the shared weights."""

    @abstractmethod
    def subnet(self, arch: Architecture) -> nn.Module:
        """A standalone module for ``arch`` holding copies of the weights it inherits."""

    def check(self, arch: Architecture) -> None:
        if arch.space != self.space.name:
            raise ValueError(f"a {self.space.name} supernet cannot run a {arch.space!r} architecture")
