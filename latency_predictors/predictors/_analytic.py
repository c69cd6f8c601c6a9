"""A space's analytic costs of a network, as predictor inputs: FLOPs, parameters, memory traffic.

Each is a sum over the network's layers, which a tree or an MLP on one-hot genes would otherwise
have to piece together. A space gives what it can compute for a whole batch cheaply:
``flops_many`` (spaces with ``flops``: NB201, FBNet, OFA) and ``params_and_traffic_many``
(spaces whose networks add up over genes: NB201, FBNet). Predictors record the names they used
and refuse a file whose names the space no longer gives.

OFA's FLOPs (one gather per batch) lifted gbdt on its batch-64 GPU columns from Spearman 0.990 /
0.988 to 0.999 / 0.999 and within +/-10% from 92% to 99.5-99.8% (titan_rtx_64, v100_64; 900 rows,
five seeds), 2080ti_32 from 0.762 to 0.797, and left the batch-1 columns unchanged. OFA gives no
parameters or traffic: summed per network over its built layers they changed gbdt's Spearman on
its GPU columns by -0.008 to +0.001 (900 rows, seed 0), not worth a per-network sum per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nas import Architecture, SearchSpace


def analytic_costs(
    space: SearchSpace, archs: Sequence[Architecture], gene_indices: np.ndarray
) -> dict[str, np.ndarray]:
    """The costs ``space`` gives for ``archs``, by name (``flops``, ``params``, ``memory_traffic``)."""
    costs: dict[str, np.ndarray] = {}
    flops = space.flops_many(archs, gene_indices)
    if flops is not None:
        costs["flops"] = flops
    stats = space.params_and_traffic_many(gene_indices)
    if stats is not None:
        costs["params"], costs["memory_traffic"] = stats[:, 0], stats[:, 1]
    return costs


def analytic_matrix(
    space: SearchSpace, archs: Sequence[Architecture], gene_indices: np.ndarray, names: Sequence[str]
) -> np.ndarray:
    """``(len(archs), len(names))`` float64: the costs ``names`` of ``archs``, in that order."""
    if not names:
        return np.zeros((len(archs), 0))
    costs = analytic_costs(space, archs, gene_indices)
    return np.column_stack([costs[name] for name in names])


def analytic_names(space: SearchSpace) -> tuple[str, ...]:
    """The names :func:`analytic_costs` gives for ``space``."""
    probe = [space.smallest()]
    return tuple(analytic_costs(space, probe, space.gene_indices(probe)))


def check_recorded(path: object, space: SearchSpace, recorded: Sequence[str], now: Sequence[str]) -> None:
    """Refuse a predictor file fitted on other analytic costs than ``space`` gives now."""
    if tuple(recorded) != tuple(now):
        raise ValueError(
            f"{path}: fitted on the analytic costs {list(recorded)}; {space.name} now gives {list(now)}; "
            "refit the predictor"
        )
