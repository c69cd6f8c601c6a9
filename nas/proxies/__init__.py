"""Zero-cost proxies: accuracy estimates of an untrained network from one batch, in about a second.

A proxy is a plain function ``proxy(model, batch) -> float`` (:data:`Proxy`): the model is freshly
initialised, in training mode, and the proxy's to change; larger means more accurate. Each proxy
is one file of ``configs/proxy`` (``_target_: nas.proxies.ProxyObjective`` around the function,
with its settings), which makes it a search objective and an ``hwnas-score`` column.
"""

from nas.proxies._activation import naswot
from nas.proxies._aggregate import nonlinear_rank_aggregation
from nas.proxies._aznas import AZNASScores, az_nas_scores, block_features, expressivity, progressivity, trainability
from nas.proxies._batch import Proxy, ProxyBatch, ProxyError, relu_layers, weight_layers
from nas.proxies._data import ProxyData
from nas.proxies._data_free import flops, params, synflow
from nas.proxies._objective import ProxyObjective, output_ignores_input, proxy_name
from nas.proxies._vkdnw import vkdnw, vkdnw_single

__all__ = [
    "AZNASScores",
    "Proxy",
    "ProxyBatch",
    "ProxyData",
    "ProxyError",
    "ProxyObjective",
    "az_nas_scores",
    "block_features",
    "expressivity",
    "flops",
    "naswot",
    "nonlinear_rank_aggregation",
    "output_ignores_input",
    "params",
    "progressivity",
    "proxy_name",
    "relu_layers",
    "synflow",
    "trainability",
    "vkdnw",
    "vkdnw_single",
    "weight_layers",
]
