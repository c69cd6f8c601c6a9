"""Per-device predictors of latency and energy, saved in the pickle-free predictor file format
(:mod:`nas.predictor_file`)."""

from latency_predictors.predictors._baselines import FlopsPredictor
from latency_predictors.predictors._boosted import BoostedLayerSumPredictor
from latency_predictors.predictors._fewshot import FewShotPredictor
from latency_predictors.predictors._format import StoredPredictor
from latency_predictors.predictors._gbdt import GradientBoostingPredictor
from latency_predictors.predictors._gnn import GraphPredictor
from latency_predictors.predictors._load import (
    PREDICTOR_FILE,
    PredictedMetric,
    load_predictor,
    predicted_deployments,
    predicted_device_name,
    predictor_families,
)
from latency_predictors.predictors._lut import LayerSumPredictor, UnseenLayerError
from latency_predictors.predictors._mlp import MLPEnsemblePredictor
from latency_predictors.predictors._onehot import OneHotBoostingPredictor
from latency_predictors.predictors._per_deployment import PerDeploymentPredictor
from latency_predictors.predictors._proxy_boosting import ProxyBoostingPredictor

__all__ = [
    "PREDICTOR_FILE",
    "BoostedLayerSumPredictor",
    "FewShotPredictor",
    "FlopsPredictor",
    "GradientBoostingPredictor",
    "GraphPredictor",
    "LayerSumPredictor",
    "MLPEnsemblePredictor",
    "OneHotBoostingPredictor",
    "PerDeploymentPredictor",
    "PredictedMetric",
    "ProxyBoostingPredictor",
    "StoredPredictor",
    "UnseenLayerError",
    "load_predictor",
    "predicted_deployments",
    "predicted_device_name",
    "predictor_families",
]
