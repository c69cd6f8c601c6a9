"""NAS-Bench-201's weight-sharing supernet: every edge of every cell holds all five ops.

As in the benchmark's own one-shot supernet, each edge owns one module per op (weights are shared
across architectures, never across edges or ops), and the stem, the residual reduction blocks and
the head are shared by every architecture. The macro skeleton is the one :func:`network_spec`
describes, so a subnet is exactly the :class:`NB201Network` that ``NB201Space.build`` returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from nas import Architecture, Supernet
from search_spaces._init import initialise
from search_spaces.nb201._model import (
    CellSpec,
    EdgeSpec,
    NB201Network,
    NetworkSpec,
    ReductionSpec,
    network_spec,
)
from search_spaces.nb201._ops import OPS, ResidualReduction, make_op

if TYPE_CHECKING:
    from search_spaces.nb201._space import NB201Space


class SuperCell(nn.Module):
    """A cell whose edges each hold all ops; :meth:`forward` runs one op per edge.

    Node j is the sum of its incoming edges in edge order, exactly as :class:`Cell` sums them, so
    the supernet and a subnet add the same floats in the same order.
    """

    def __init__(self, channels: int, routes: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.routes = routes
        self.num_nodes = 1 + max(to for to, _ in routes)
        self.edges = nn.ModuleList(nn.ModuleDict({op: make_op(op, channels) for op in OPS}) for _ in routes)

    def forward(self, x: torch.Tensor, ops: tuple[str, ...]) -> torch.Tensor:
        nodes = [x]
        for node in range(1, self.num_nodes):
            incoming = [
                candidates[op](nodes[src])
                for (to, src), candidates, op in zip(self.routes, self.edges, ops)
                if to == node
            ]
            total = incoming[0]
            for term in incoming[1:]:
                total = total + term
            nodes.append(total)
        return nodes[-1]


class NB201Supernet(Supernet):
    """Shared weights for all 15,625 NB201 cells of one :class:`NB201Space`.

    Every op of the chosen cell is computed, including ops on edges that cannot reach the output
    (their result is multiplied into nothing), as in the published supernet and in
    :class:`NB201Network`; this keeps ``supernet(x, arch) == supernet.subnet(arch)(x)``.
    """

    space: NB201Space

    def __init__(self, space: NB201Space, seed: int = 0) -> None:
        super().__init__(space)
        from search_spaces.nb201._space import EDGES  # _space imports this module lazily

        self.gene_names = tuple(g.name for g in space.genes())
        self.routes: tuple[tuple[int, int], ...] = EDGES
        self.spec = self._spec(("none",) * len(EDGES))  # the ops are placeholders here
        # Built on the meta device and initialised from its own generator, like build_network:
        # construction neither reads nor advances torch's global random state.
        with torch.device("meta"):
            self.stem = nn.Sequential(
                nn.Conv2d(3, self.spec.stem_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(self.spec.stem_channels),
            )
            self.cells = nn.ModuleList(self._block(b) for b in self.spec.blocks)
            self.head = nn.Sequential(
                nn.BatchNorm2d(self.spec.head_channels),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
            )
            self.classifier = nn.Linear(self.spec.head_channels, self.spec.num_classes)
        self.to_empty(device="cpu")
        initialise(self, torch.Generator().manual_seed(seed))

    def _spec(self, ops: tuple[str, ...]) -> NetworkSpec:
        edges = tuple(EdgeSpec(to, src, op) for (to, src), op in zip(self.routes, ops))
        space = self.space
        return network_spec(edges, space.num_classes, space.channels, space.cells_per_stage)

    @staticmethod
    def _block(spec: CellSpec | ReductionSpec) -> nn.Module:
        if isinstance(spec, CellSpec):
            return SuperCell(spec.channels, tuple((e.to_node, e.from_node) for e in spec.edges))
        return ResidualReduction(spec.in_channels, spec.out_channels)

    def ops_of(self, arch: Architecture) -> tuple[str, ...]:
        """The op of each edge, in the edge order of the cell (the gene order)."""
        self.check(arch)
        return tuple(str(arch[name]) for name in self.gene_names)

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        ops = self.ops_of(arch)
        x = self.stem(x)
        for block in self.cells:
            x = block(x, ops) if isinstance(block, SuperCell) else block(x)
        return self.classifier(self.head(x))

    def subnet(self, arch: Architecture) -> NB201Network:
        """The network ``NB201Space.build(arch)`` gives, holding copies of the inherited weights.

        The subnet is allocated afresh and filled by a strict ``load_state_dict``, so every one of
        its parameters and buffers (BN running statistics included) is a copy of the supernet's
        and a missing or unexpected tensor is an error rather than a silently random weight.
        """
        ops = self.ops_of(arch)
        device = self.classifier.weight.device
        with torch.device("meta"):
            network = NB201Network(self._spec(ops))
        network = network.to_empty(device=device)
        network.load_state_dict(self._subnet_state(ops), strict=True)
        return network.train(self.training)

    def _subnet_state(self, ops: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The supernet's tensors under the names an :class:`NB201Network` gives them."""
        state: dict[str, torch.Tensor] = {}
        for prefix, module in (("stem", self.stem), ("head", self.head), ("classifier", self.classifier)):
            state.update({f"{prefix}.{k}": v for k, v in module.state_dict().items()})
        for index, block in enumerate(self.cells):
            if isinstance(block, SuperCell):
                for edge, (candidates, op) in enumerate(zip(block.edges, ops)):
                    chosen = candidates[op].state_dict()
                    state.update({f"cells.{index}.edges.{edge}.{k}": v for k, v in chosen.items()})
            else:
                state.update({f"cells.{index}.{k}": v for k, v in block.state_dict().items()})
        return state
