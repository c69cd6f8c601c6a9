"""Ready-made objectives: static counts of the built module, zero-cost proxies, table lookups."""

from nas.objectives._model_stats import Flops, Params
from nas.objectives._synflow import Synflow
from nas.objectives._table import TableMetric

__all__ = [
    "Flops",
    "Params",
    "Synflow",
    "TableMetric",
]
