"""A space's analytic costs of a network, as predictor inputs: FLOPs, parameters, memory traffic.

Each is a sum over the network's layers, which a tree or an MLP on one-hot genes would otherwise
have to piece together. :class:`AnalyticCosts` gives what a space lets it compute for a whole
batch cheaply: FLOPs where the space counts them (:class:`nas.FlopsSpace`: NB201, FBNet, OFA),
parameters and memory traffic where its networks add up over genes (:class:`nas.AdditiveSpace`:
NB201, FBNet). Predictors record the names they used and refuse a file whose names the space no
longer gives.

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

from latency_predictors.predictors._features import params_and_traffic, per_choice
from nas import AdditiveSpace, Architecture, BatchFlopsSpace, FlopsSpace, SearchSpace


class AnalyticCosts:
    """A space's analytic costs of whole batches, by name (``flops``, ``params``,
    ``memory_traffic``). In an additive space each is one gather of per-choice costs, computed
    once per object from the space's ``flops`` and layer statistics."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        names = ["flops"] if isinstance(space, FlopsSpace) else []
        if isinstance(space, AdditiveSpace):
            names += ["params", "memory_traffic"]
        #: The costs this space gives, in the order :meth:`of` gives them.
        self.names: tuple[str, ...] = tuple(names)

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

    def params_and_traffic(self, gene_indices: np.ndarray) -> np.ndarray | None:
        """Parameters and memory traffic of each network, ``(n, 2)`` float64, as one gather of
        per-choice costs; ``None`` unless the space is additive (a per-network sum over layers
        would cost a predictor more than its model does)."""
        if not isinstance(self.space, AdditiveSpace):
            return None
        constant, costs = self._params_and_traffic_per_choice
        return constant + self.space.encoding.sum_per_choice(gene_indices, costs)

    @cached_property
    def _flops_per_choice(self) -> tuple[float, np.ndarray]:
        return per_choice(self.space, self.space.flops)  # type: ignore[attr-defined]

    @cached_property
    def _params_and_traffic_per_choice(self) -> tuple[np.ndarray, np.ndarray]:
        space = self.space
        columns = [per_choice(space, lambda a, k=k: params_and_traffic(space, a)[k]) for k in (0, 1)]  # type: ignore[arg-type]
        return np.array([c for c, _ in columns]), np.column_stack([costs for _, costs in columns])

    def of(self, archs: Sequence[Architecture], gene_indices: np.ndarray) -> dict[str, np.ndarray]:
        """The costs of ``archs`` by name (:attr:`names`)."""
        costs: dict[str, np.ndarray] = {}
        flops = self.flops(archs, gene_indices)
        if flops is not None:
            costs["flops"] = flops
        stats = self.params_and_traffic(gene_indices)
        if stats is not None:
            costs["params"], costs["memory_traffic"] = stats[:, 0], stats[:, 1]
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
