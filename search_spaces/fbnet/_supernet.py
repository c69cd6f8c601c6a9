"""FBNet's supernet: every candidate block of every layer, each with its own weights.

As in FBNet, the nine candidates of a layer do not share weights with each other; the supernet
holds all 22 x 9 of them plus one stem and one head, and every architecture runs (and every
subnet inherits) exactly the blocks it names. Blocks are the same modules ``FBNetSpace.build``
uses, so a subnet is an ordinary :class:`FBNetNetwork` whose state is copied from the supernet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from nas import Architecture, Supernet
from search_spaces._init import initialise
from search_spaces.fbnet._blocks import (
    BLOCKS,
    FBNetLayer,
    FBNetNetwork,
    make_block,
    make_head,
    make_stem,
    network_spec,
)

if TYPE_CHECKING:
    from search_spaces.fbnet._space import FBNetSpace


class FBNetSupernet(Supernet):
    """Shared weights for every architecture of an :class:`FBNetSpace`, drawn from ``seed``."""

    space: FBNetSpace

    def __init__(self, space: FBNetSpace, seed: int = 0) -> None:
        super().__init__(space)
        macro = space.macro
        with torch.device("meta"):
            self.stem = make_stem(macro)
            # layers[i][op] is the block ``op`` at position i; ModuleDict keys are the op names.
            self.layers = nn.ModuleList(
                nn.ModuleDict({op: make_block(FBNetLayer(shape, block)) for op, block in BLOCKS.items()})
                for shape in macro.layers
            )
            self.head = make_head(macro)
            self.classifier = nn.Linear(macro.head_channels, macro.num_classes)
        self.to_empty(device="cpu")
        initialise(self, torch.Generator().manual_seed(seed))

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        x = self.stem(x)
        for choices, op in zip(self.layers, self._ops(arch)):
            x = choices[op](x)
        return self.classifier(self.head(x))

    def subnet(self, arch: Architecture) -> FBNetNetwork:
        """A standalone network for ``arch`` holding copies of its inherited weights and BN
        statistics, on the supernet's device and dtype, in the supernet's train/eval mode."""
        ops = self._ops(arch)
        reference = self.classifier.weight
        with torch.device("meta"):
            network = FBNetNetwork(network_spec(self.space.macro, ops))
        network = network.to_empty(device=reference.device).to(reference.dtype)
        # load_state_dict copies into the subnet's own memory: training it leaves the supernet be.
        network.stem.load_state_dict(self.stem.state_dict())
        for block, choices, op in zip(network.layers, self.layers, ops):
            block.load_state_dict(choices[op].state_dict())
        network.head.load_state_dict(self.head.state_dict())
        network.classifier.load_state_dict(self.classifier.state_dict())
        return network.train(self.training)

    def _ops(self, arch: Architecture) -> tuple[str, ...]:
        self.check(arch)
        return self.space.ops(arch)
