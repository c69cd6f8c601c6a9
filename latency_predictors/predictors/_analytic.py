"""A space's analytic costs of a network, as predictor inputs: FLOPs, parameters, memory traffic.

Each is a sum over the network's layers, which a tree or an MLP on one-hot genes would otherwise
have to piece together. :class:`AnalyticCosts` gives what a space lets it compute for a whole
batch cheaply: FLOPs where the space counts them (:class:`nas.FlopsSpace`: NB201, FBNet, OFA),
parameters, memory traffic and activation traffic where its networks add up over genes
(:class:`nas.AdditiveSpace`: NB201, FBNet). Predictors record the names they used and refuse a
file whose names the space no longer gives.

Activation traffic (every op's inputs and output, so a block's inner tensors count) is offered to
whoever asks (``ALL_COSTS``); the few-shot blend does. It is what a device bound by moving
activations pays: FBNet's titan_rtx_64 (batch 64) costs each layer about its batch-1 overhead
plus a term that follows the expanded tensors of the wide early blocks, which FLOPs and the
layer-boundary traffic miss. Added to the few-shot blend it lifted titan_rtx_64 at k = 10 from
Spearman 0.808 to 0.928 (leave one device out; figures in _fewshot.py). gbdt, the MLP and the
trees keep :data:`BASIC_COSTS`, what they were measured with.

OFA's FLOPs (one gather per batch) lifted gbdt on its batch-64 GPU columns from Spearman 0.990 /
0.988 to 0.999 / 0.999 and within +/-10% from 92% to 99.5-99.8% (titan_rtx_64, v100_64; 900 rows,
five seeds), 2080ti_32 from 0.762 to 0.797, and left the batch-1 columns unchanged. OFA gives no
parameters or traffic: summed per network over its built layers they changed gbdt's Spearman on
its GPU columns by -0.008 to +0.001 (900 rows, seed 0), not worth a per-network sum per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from latency_predictors.predictors._features import layer_sums, per_choice
from nas import AdditiveSpace, Architecture, BatchFlopsSpace, FlopsSpace, SearchSpace

#: The costs a predictor reads unless it asks for others: what gbdt, the MLP and the trees were
#: measured with (and what their files record).
BASIC_COSTS = ("flops", "params", "memory_traffic")
#: Every cost this module computes, in this order.
ALL_COSTS = (*BASIC_COSTS, "activation_traffic")


class AnalyticCosts:
    """A space's analytic costs of whole batches, by name: ``flops``, ``params``,
    ``memory_traffic`` and ``activation_traffic`` (the elements every op of the network reads and
    writes; :class:`nas.LayerStats`). In an additive space each is one gather of per-choice costs,
    computed once per object from the space's ``flops`` and layer statistics. ``wanted`` names
    the costs to give (:data:`BASIC_COSTS` by default), of which :attr:`names` keeps those the
    space has."""

    def __init__(self, space: SearchSpace, wanted: Sequence[str] = BASIC_COSTS) -> None:
        self.space = space
        given = ["flops"] if isinstance(space, FlopsSpace) else []
        if isinstance(space, AdditiveSpace):
            given += ["params", "memory_traffic", "activation_traffic"]
        unknown = sorted(set(wanted) - set(ALL_COSTS))
        if unknown:
            raise ValueError(f"unknown analytic cost(s) {unknown}; known: {list(ALL_COSTS)}")
        #: The costs this object gives, in the order :meth:`of` gives them.
        self.names: tuple[str, ...] = tuple(name for name in ALL_COSTS if name in wanted and name in given)

    def flops(self, archs: Sequence[Architecture], gene_indices: np.ndarray | None = None) -> np.ndarray | None:
        """FLOPs of each architecture (float64), or ``None`` when the space does not count them:
        the space's own batch count, one gather of per-choice FLOPs in an additive space (from
        ``gene_indices`` when the caller has them), else ``flops`` one network at a time."""
        space = self.space
        if not isinstance(space, FlopsSpace):
            return None
        if not isinstance(space, BatchFlopsSpace | AdditiveSpace):
            return np.array([float(space.flops(arch)) for arch in archs], dtype=np.float64)
        indices = space.encoding.indices(archs) if gene_indices is None else gene_indices
        if isinstance(space, BatchFlopsSpace):
            return space.batch_flops(indices)
        constant, costs = self._flops_per_choice
        return constant + space.encoding.sum_per_choice(indices, costs)

    def layer_sums(self, gene_indices: np.ndarray) -> np.ndarray | None:
        """Parameters, memory traffic and activation traffic of each network, ``(n, 3)``
        float64, as one gather of per-choice costs; ``None`` unless the space is additive (a
        per-network sum over layers would cost a predictor more than its model does)."""
        if not isinstance(self.space, AdditiveSpace):
            return None
        constant, costs = self._layer_sums_per_choice
        return constant + self.space.encoding.sum_per_choice(gene_indices, costs)

    @cached_property
    def _flops_per_choice(self) -> tuple[float, np.ndarray]:
        return per_choice(self.space, self.space.flops)  # type: ignore[attr-defined]

    @cached_property
    def _layer_sums_per_choice(self) -> tuple[np.ndarray, np.ndarray]:
        space = self.space
        columns = [per_choice(space, lambda a, k=k: layer_sums(space, a)[k]) for k in (0, 1, 2)]  # type: ignore[arg-type]
        return np.array([c for c, _ in columns]), np.column_stack([costs for _, costs in columns])

    def of(self, archs: Sequence[Architecture], gene_indices: np.ndarray) -> dict[str, np.ndarray]:
        """The costs of ``archs`` by name (:attr:`names`)."""
        costs: dict[str, np.ndarray] = {}
        if "flops" in self.names:
            flops = self.flops(archs, gene_indices)
            assert flops is not None
            costs["flops"] = flops
        if set(self.names) & {"params", "memory_traffic", "activation_traffic"}:
            sums = self.layer_sums(gene_indices)
            assert sums is not None
            for column, name in enumerate(("params", "memory_traffic", "activation_traffic")):
                if name in self.names:
                    costs[name] = sums[:, column]
        return costs

    def matrix(self, archs: Sequence[Architecture], gene_indices: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """``(len(archs), len(names))`` float64: the costs ``names`` of ``archs``, in that order."""
        if not names:
            return np.zeros((len(archs), 0))
        costs = self.of(archs, gene_indices)
        return np.column_stack([costs[name] for name in names])


def check_recorded(path: object, space: SearchSpace, recorded: Sequence[str], now: Sequence[str]) -> None:
    """Refuse a predictor file fitted on other analytic costs than ``space`` gives now."""
    if tuple(recorded) != tuple(now):
        raise ValueError(
            f"{path}: fitted on the analytic costs {list(recorded)}; {space.name} now gives {list(now)}; "
            "refit the predictor"
        )
