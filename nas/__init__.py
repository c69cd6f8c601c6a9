"""hwnas core: architectures, spaces, objectives, constraints, predictors, search and Pareto sets.

This package imports neither ``search_spaces`` nor ``latency_predictors`` nor Hydra: those plug
into the small interfaces defined here.
"""

from nas._appendcsv import AppendOnlyCsv, CsvFileError
from nas._architecture import Architecture, ArchitectureError, GeneValue
from nas._capabilities import (
    AdditiveSpace,
    BatchFlopsSpace,
    BoundedSpace,
    ConditionalSpace,
    DerivedFeaturesSpace,
    DisconnectedSpace,
    FlopsSpace,
    GeneLabelledGraphSpace,
    GraphSpace,
    IsomorphicSpace,
    LayeredSpace,
    LayerSpec,
    LayerStats,
    SupernetSpace,
    dedup_key,
    dedup_keys,
    features_version,
    isomorphism_classes,
)
from nas._deployment import SEPARATOR as DEPLOYMENT_SEPARATOR
from nas._deployment import (
    DeployedSpace,
    Deployment,
    DeploymentError,
    DeploymentGenes,
    DeploymentList,
    Deployments,
    deployed,
)
from nas._device import DEVICE_FILE, Device, DeviceFileError, read_device_record
from nas._encoding import GeneEncoding
from nas._graph import ArchitectureGraph, GraphBatch
from nas._objective import Candidate, Constraint, Cost, Direction, Objective, ObjectiveError, UnavailableError
from nas._paths import inner_labels, label_subsets, path_features
from nas._predictor import (
    IntervalBound,
    IntervalPredictor,
    PredictedObjective,
    Predictor,
    PredictorMismatchError,
    TransferPredictor,
    check_one_device,
)
from nas._space import Gene, SearchSpace
from nas._supernet import Supernet
from nas.errors import USER_ERROR_EXIT, HwnasError, MissingFileError
from nas.predictor_file import PredictorFileError

__all__ = [
    "inner_labels",
    "label_subsets",
    "path_features",
    "AppendOnlyCsv",
    "CsvFileError",
    "AdditiveSpace",
    "Architecture",
    "ArchitectureError",
    "ArchitectureGraph",
    "BatchFlopsSpace",
    "BoundedSpace",
    "Candidate",
    "ConditionalSpace",
    "Constraint",
    "Cost",
    "DEVICE_FILE",
    "DEPLOYMENT_SEPARATOR",
    "DeployedSpace",
    "Deployment",
    "DeploymentError",
    "DeploymentGenes",
    "DeploymentList",
    "Deployments",
    "deployed",
    "DerivedFeaturesSpace",
    "Device",
    "DisconnectedSpace",
    "DeviceFileError",
    "Direction",
    "FlopsSpace",
    "Gene",
    "GeneEncoding",
    "GeneLabelledGraphSpace",
    "GeneValue",
    "GraphBatch",
    "GraphSpace",
    "IntervalBound",
    "IntervalPredictor",
    "IsomorphicSpace",
    "LayerSpec",
    "LayerStats",
    "LayeredSpace",
    "Objective",
    "ObjectiveError",
    "UnavailableError",
    "PredictedObjective",
    "Predictor",
    "HwnasError",
    "MissingFileError",
    "PredictorFileError",
    "USER_ERROR_EXIT",
    "PredictorMismatchError",
    "SearchSpace",
    "read_device_record",
    "Supernet",
    "TransferPredictor",
    "SupernetSpace",
    "check_one_device",
    "dedup_key",
    "dedup_keys",
    "features_version",
    "isomorphism_classes",
]
