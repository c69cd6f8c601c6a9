"""Zero-cost proxies: accuracy estimates of an untrained network from one batch, in about a second.

A proxy is a plain function ``proxy(model, batch) -> float`` (:data:`Proxy`): the model is freshly
initialised, in training mode, and the proxy's to change; larger means more accurate. Each proxy
is one file of ``configs/proxy`` (``_target_: nas.proxies.ProxyObjective`` around the function,
with its settings), which makes it a search objective and an ``hwnas-score`` column.
"""

from nas.proxies._activation import naswot
from nas.proxies._aznas import AZNASScores, az_nas_scores, block_features, expressivity, progressivity, trainability
from nas.proxies._batch import Proxy, ProxyBatch, ProxyError, relu_layers, weight_layers
from nas.proxies._data import ProxyData
from nas.proxies._data_free import flops, params, synflow
from nas.proxies._ensemble import (
    EnsembleObjective,
    LearnedCombination,
    RankRule,
    log_percentile_sum,
    mean_percentile,
    nonlinear_rank,
    percentiles,
    percentiles_among,
    rank_vote,
)
from nas.proxies._gradient import fisher, grad_norm, grasp, jacob_cov, snip
from nas.proxies._meco import meco
from nas.proxies._objective import ProxyObjective, output_ignores_input, proxy_name
from nas.proxies._scores import ProxyScores
from nas.proxies._swap import swap
from nas.proxies._vkdnw import vkdnw, vkdnw_single
from nas.proxies._zico import zico

__all__ = [
    "AZNASScores",
    "EnsembleObjective",
    "LearnedCombination",
    "Proxy",
    "ProxyBatch",
    "ProxyData",
    "ProxyError",
    "ProxyObjective",
    "ProxyScores",
    "RankRule",
    "az_nas_scores",
    "block_features",
    "expressivity",
    "fisher",
    "flops",
    "grad_norm",
    "grasp",
    "jacob_cov",
    "log_percentile_sum",
    "mean_percentile",
    "meco",
    "naswot",
    "nonlinear_rank",
    "output_ignores_input",
    "params",
    "percentiles",
    "percentiles_among",
    "progressivity",
    "proxy_name",
    "rank_vote",
    "relu_layers",
    "snip",
    "swap",
    "synflow",
    "trainability",
    "vkdnw",
    "vkdnw_single",
    "weight_layers",
    "zico",
]
