"""The space a command's candidates come from, composed from its config."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from nas import SearchSpace


def search_space(cfg: DictConfig) -> SearchSpace:
    """``space``'s networks, each with a deployment where ``deployment`` names one (a
    :class:`nas.DeployedSpace`): the candidates of hwnas-search, and the rows of hwnas-profile's
    and hwnas-fit's tables."""
    space = instantiate(cfg.space.instance)
    if cfg.get("deployment") is not None:
        # (_partial_ for run configs saved before the deployment config said so)
        space = instantiate(cfg.deployment, _partial_=True)(space=space)
    return space
