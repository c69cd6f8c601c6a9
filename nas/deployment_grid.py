"""A deployed table's rows as networks x deployments, and back.

``hwnas-profile deployment=<option>`` measures every selected network under each deployment into
one table whose rows are candidates, ``<network>@<deployment>``, in one device column: what one
predictor across deployments trains on (the deployment genes are among its features). The same
measurements read as a network table with one column per deployment are what per-deployment
predictors, and few-shot transfer from the other deployments to one, train on.
:class:`DeploymentGrid` maps between the two, so both are fitted on the same rows.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas._architecture import Architecture
from nas._deployment import DeployedSpace, Deployment
from nas.tables import ARCHS_FILE, BenchmarkTable

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

    def write_networks(self, table: BenchmarkTable, column: str, directory: Path, metric: str = "latency_ms") -> Path:
        """``table``'s ``metric[column]`` as a network table in ``directory`` (the shared tables'
        format): archs.csv lists :attr:`networks`, ``<metric>.csv`` has one column per deployment,
        named by its string, empty where the grid has no row."""
        directory.mkdir(parents=True, exist_ok=True)
        values = table.column(metric, column)
        with (directory / ARCHS_FILE).open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "arch"])
            writer.writerows([i, network.string] for i, network in enumerate(self.networks))
        with (directory / f"{metric}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", *(d.string for d in self.deployments)])
            for i, cells in enumerate(self.rows):
                writer.writerow([i, *("" if row < 0 else repr(float(values[row])) for row in cells)])
        return directory
