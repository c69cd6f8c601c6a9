"""Supernet training: data sources, sampling strategies, BN recalibration, a resumable trainer.

Space-agnostic: everything here works through ``nas.Supernet`` and ``nas.SearchSpace`` (sample,
smallest, largest, input_shape_of), and imports no search space, predictor or Hydra.
"""

from nas.training._bn import recalibrate_bn, recalibrated_subnet
from nas.training._data import CIFARData, GaussianImages, ImageDataset, ImageFolderData, PackagedImages, SklearnDigits
from nas.training._inherited import InheritedAccuracy
from nas.training._sampling import SamplingStrategy, SandwichRule, UniformSampling, fit_input
from nas.training._trainer import (
    CHECKPOINT_FILE,
    CheckpointMismatchError,
    OptimizerConfig,
    SupernetTrainer,
    TrainingDivergedError,
    TrainingResult,
    evaluate,
    subnet_accuracy,
)

__all__ = [
    "CHECKPOINT_FILE",
    "CIFARData",
    "CheckpointMismatchError",
    "TrainingDivergedError",
    "GaussianImages",
    "ImageDataset",
    "ImageFolderData",
    "InheritedAccuracy",
    "OptimizerConfig",
    "PackagedImages",
    "SamplingStrategy",
    "SandwichRule",
    "SklearnDigits",
    "SupernetTrainer",
    "TrainingResult",
    "UniformSampling",
    "evaluate",
    "subnet_accuracy",
    "fit_input",
    "recalibrate_bn",
    "recalibrated_subnet",
]
