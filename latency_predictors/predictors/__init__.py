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
from latency_predictors.predictors._lut import (
    LayerSumPredictor,
    UnseenLayerError,
    layer_kind,
)
from latency_predictors.predictors._mlp import MLPEnsemblePredictor
from latency_predictors.predictors._onehot import OneHotBoostingPredictor
from nas import TransferPredictor

# FewShotPredictor adapts fitted predictors of other devices (its ``sources``): a nas.TransferPredictor,
# which nas.fitting asks with isinstance.
TransferPredictor.register(FewShotPredictor)

__all__ = [
    "FORMAT_VERSION",
    "BoostedLayerSumPredictor",
    "FewShotPredictor",
    "FlopsPredictor",
    "GradientBoostingPredictor",
    "GraphPredictor",
    "LayerSumPredictor",
    "MLPEnsemblePredictor",
    "OneHotBoostingPredictor",
    "PredictorFileError",
    "StoredPredictor",
    "UnseenLayerError",
    "layer_kind",
    "load_predictor_file",
    "read_header",
    "save_predictor",
]
