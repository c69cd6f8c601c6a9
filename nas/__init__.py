"""hwnas core: architectures, spaces, objectives, constraints, predictors, search and Pareto sets.

This package imports neither ``search_spaces`` nor ``latency_predictors`` nor Hydra: those plug
into the small interfaces defined here.
"""

from nas._architecture import Architecture, GeneValue
from nas._device import DEVICE_FILE, Device, DeviceFileError, read_device_record
from nas._graph import ArchitectureGraph, GraphBatch
from nas._objective import Candidate, Constraint, Cost, Direction, Objective, ObjectiveError
from nas._predictor import (
    IntervalPredictor,
    PredictedObjective,
    Predictor,
    PredictorMismatchError,
    TransferPredictor,
)
from nas._space import ArchitectureError, Gene, LayerSpec, SearchSpace
from nas._supernet import Supernet
from nas.predictor_file import PredictorFileError

__all__ = [
    "Architecture",
    "ArchitectureError",
    "ArchitectureGraph",
    "Candidate",
    "Constraint",
    "Cost",
    "DEVICE_FILE",
    "Device",
    "DeviceFileError",
    "Direction",
    "Gene",
    "LayerSpec",
    "GeneValue",
    "GraphBatch",
    "IntervalPredictor",
    "Objective",
    "ObjectiveError",
    "PredictedObjective",
    "Predictor",
    "PredictorFileError",
    "PredictorMismatchError",
    "SearchSpace",
    "read_device_record",
    "Supernet",
    "TransferPredictor",
]
