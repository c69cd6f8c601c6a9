"""A deployed table's rows as networks x deployments.

``hwnas-profile deployment=<option>`` measures every selected network under each deployment into
one table whose rows are candidates, ``<network>@<deployment>``, in one device column.
:class:`DeploymentGrid` says which row holds each (network, deployment), so a benchmark can hold
one deployment out and train on chosen networks of the others (scripts/bench_deployment_predictors.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nas._architecture import Architecture
from nas._deployment import DeployedSpace, Deployment

__all__ = ["DeploymentGrid"]


@dataclass(frozen=True, eq=False)
class DeploymentGrid:
    """Which row of a deployed table holds each (network, deployment): ``rows[i, j]`` for network
    ``networks[i]`` under ``deployments[j]``, -1 where the table has no such row. Networks and
    deployments are in the order the table first names them."""

    networks: tuple[Architecture, ...]
    deployments: tuple[Deployment, ...]
    rows: np.ndarray

    @classmethod
    def of(cls, space: DeployedSpace, archs: Sequence[Architecture]) -> DeploymentGrid:
        """The grid of a deployed table's parsed rows (``archs``, candidates of ``space``)."""
        networks: dict[str, int] = {}
        deployments: dict[Deployment, int] = {}
        cells = []
        kept_networks = []
        for row, arch in enumerate(archs):
            network = space.network_of(arch)
            if network.string not in networks:
                networks[network.string] = len(networks)
                kept_networks.append(network)
            deployment = space.deployment_of(arch)
            deployments.setdefault(deployment, len(deployments))
            cells.append((networks[network.string], deployments[deployment], row))
        grid = np.full((len(networks), len(deployments)), -1, dtype=np.int64)
        for i, j, row in cells:
            grid[i, j] = row
        grid.flags.writeable = False
        return cls(tuple(kept_networks), tuple(deployments), grid)

    def complete(self) -> DeploymentGrid:
        """Only the networks measured under every deployment."""
        keep = np.flatnonzero((self.rows >= 0).all(axis=1))
        rows = self.rows[keep]
        rows.flags.writeable = False
        return DeploymentGrid(tuple(self.networks[i] for i in keep), self.deployments, rows)
