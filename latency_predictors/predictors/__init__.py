"""Per-device predictors of latency and energy, saved in a pickle-free file format."""

from latency_predictors.predictors._baselines import FlopsPredictor
from latency_predictors.predictors._boosted import BoostedLayerSumPredictor
from latency_predictors.predictors._fewshot import FewShotPredictor
from latency_predictors.predictors._format import (
    FORMAT_VERSION,
    PredictorFileError,
    StoredPredictor,
    load_predictor_file,
    read_header,
    save_predictor,
)
from latency_predictors.predictors._gbdt import GradientBoostingPredictor
from latency_predictors.predictors._gnn import GraphPredictor
from latency_predictors.predictors._lut import LayerSumPredictor, UnseenLayerError
from latency_predictors.predictors._mlp import MLPEnsemblePredictor

__all__ = [
    "FORMAT_VERSION",
    "BoostedLayerSumPredictor",
    "FewShotPredictor",
    "FlopsPredictor",
    "GradientBoostingPredictor",
    "GraphPredictor",
    "LayerSumPredictor",
    "MLPEnsemblePredictor",
    "PredictorFileError",
    "StoredPredictor",
    "UnseenLayerError",
    "load_predictor_file",
    "read_header",
    "save_predictor",
]
