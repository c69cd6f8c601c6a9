"""Latency and energy for hardware-aware NAS: measured on this machine, or predicted.

Two packages, each with its public face: :mod:`latency_predictors.measure` (runtimes, timing,
energy meters, the live latency objective, drift, host metadata, selections and profiles) and
:mod:`latency_predictors.predictors` (predictor families fitted on measured tables). Their names
are re-exported here, so configs name ``latency_predictors.X`` whichever package ``X`` lives in.
"""

# One list of names per package (its own __all__), re-exported here rather than copied.
from latency_predictors import measure, predictors
from latency_predictors.measure import *  # noqa: F403
from latency_predictors.predictors import *  # noqa: F403

__all__ = [*measure.__all__, *predictors.__all__]
