"""A table column searched "zero-training": predicted by a predictor fitted on a few of its rows."""

from __future__ import annotations

from pathlib import Path

from nas._objective import Direction
from nas._predictor import PredictedObjective
from nas._space import SearchSpace
from nas.fitting import FitResult, ParsedTable, PredictorFactory, fit_column
from nas.objectives._table import TableMetric
from nas.tables import BenchmarkTable


class FittedMetric(PredictedObjective):
    """A device column of a table (published, or a profile hwnas-profile wrote), answered by a
    predictor fitted when the objective is built on ``n_train`` of the column's rows.

    The rows and the fit are hwnas-fit's own (:func:`nas.fitting.fit_column`: ``hwnas-fit
    device=<device> n_train=<n_train> seed=<seed>`` fits the same predictor), so a search sees only
    what ``n_train`` measurements of the device teach; the column itself is this objective's
    :meth:`truth`, read only to score the returned front. ``fit`` keeps the fit (its predictor,
    rows and held-out scores) for the run directory.
    """

    def __init__(
        self,
        name: str,
        table: str | Path,
        metric: str,
        device: str,
        space: SearchSpace,
        predictor: PredictorFactory,
        n_train: int,
        seed: int,
        direction: Direction | str = Direction.MINIMIZE,
    ) -> None:
        # The truth first: it checks the metric and device (an unknown one is named with the known).
        truth = TableMetric(name, table, metric, device=device, direction=direction, space=space)
        self.data = ParsedTable.parse(space, BenchmarkTable.load(table))
        self.fit: FitResult = fit_column(self.data, metric, device, predictor, n_train, seed)
        self.n_train, self.seed = len(self.fit.split.train), seed
        super().__init__(name, self.fit.predictor, direction, truth)

    def describe(self) -> str:
        return (
            f"{self.fit.metric}[{self.fit.device}] predicted by {type(self.predictor).__name__} fitted on "
            f"{self.n_train} of its rows (seed {self.seed}); the table's values score the returned front"
        )

    def source(self) -> str:
        return f"{super().source()} fitted on {self.n_train} rows seed {self.seed}"
