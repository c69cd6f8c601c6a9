"""Ready-made objectives: static counts of the built module, zero-cost proxies, table lookups, and
table columns predicted from a few of their rows."""

from nas.objectives._fitted import FittedMetric
from nas.objectives._labelled import LabelledAccuracy
from nas.objectives._model_stats import Flops, Params, count_flops
from nas.objectives._synflow import Synflow
from nas.objectives._table import TableMetric

__all__ = [
    "FittedMetric",
    "LabelledAccuracy",
    "Flops",
    "count_flops",
    "Params",
    "Synflow",
    "TableMetric",
]
