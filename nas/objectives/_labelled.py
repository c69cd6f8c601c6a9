"""An accuracy searched with a few labels: a predictor fitted on k labelled rows of a table."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas._objective import Direction
from nas._predictor import PredictedObjective
from nas._space import SearchSpace
from nas.fitting import PredictorFactory
from nas.objectives._table import TableMetric
from nas.tables import BenchmarkTable


class LabelledAccuracy(PredictedObjective):
    """An accuracy column of a table (published, or your own trained architectures in the table
    format: ``archs.csv`` with ``index,arch,<column>``), answered by a predictor fitted when the
    objective is built on ``n_labels`` of its rows, drawn by ``seed`` among those with a value.

    ``predictor`` builds the unfitted predictor (``predictor(space=..., device_fingerprint=column)``,
    e.g. ``latency_predictors.predictors.ProxyBoostingPredictor`` with its proxies): a search sees
    only what the ``n_labels`` labels and the predictor's own inputs teach, and the column itself
    is this objective's :meth:`truth`, read only to score the returned front. ``labelled`` keeps
    the drawn architecture strings for the run directory.
    """

    def __init__(
        self,
        name: str,
        table: str | Path,
        column: str,
        space: SearchSpace,
        predictor: PredictorFactory,
        n_labels: int,
        seed: int,
    ) -> None:
        truth = TableMetric(name, table, column, direction=Direction.MAXIMIZE, space=space)
        data = BenchmarkTable.load(table)
        values = data.accuracy(column)
        known = np.flatnonzero(np.isfinite(values))
        if not 2 <= n_labels <= len(known):
            raise ValueError(
                f"n_labels={n_labels}: {table}'s column {column!r} has {len(known)} labelled rows; "
                "choose 2 to that many"
            )
        rows = np.sort(np.random.default_rng(seed).choice(known, size=n_labels, replace=False))
        self.labelled = tuple(data.archs[i] for i in rows)
        self.n_labels, self.seed, self.column = n_labels, seed, column
        fitted = predictor(space=space, device_fingerprint=column)
        fitted.fit([space.parse(a) for a in self.labelled], values[rows])
        super().__init__(name, fitted, Direction.MAXIMIZE, truth)

    def describe(self) -> str:
        return (
            f"{self.column} predicted by {type(self.predictor).__name__} fitted on {self.n_labels} labelled "
            f"architectures (seed {self.seed}); the table's values score the returned front"
        )

    def source(self) -> str:
        return f"{super().source()} fitted on {self.n_labels} labels seed {self.seed}"
