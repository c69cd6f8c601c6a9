"""Every proxy of configs/proxy passes nas.testing.ProxyContract on NB201 (a proxy is tested the day
its YAML file is added)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nas import Architecture
from nas.cli import CONFIG_DIR
from nas.proxies import ProxyObjective
from nas.testing import ProxyContract
from search_spaces import NB201Space

PROXY_FILES = sorted((Path(CONFIG_DIR) / "proxy").glob("*.yaml"))


def load_proxy(path: Path, seed: int) -> ProxyObjective:
    """The objective of one configs/proxy file as hwnas-score composes it (each file holds one key,
    its own name, so that a list of them composes into ``proxy.<name>``), with a small batch (the
    benchmark uses the configured one)."""
    overrides = [f"proxy=[{path.stem}]", f"seed={seed}", "proxy_data.batch_size=16", "data.count=80"]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("score", overrides=overrides)
    return instantiate(cfg.proxy[path.stem])


@pytest.mark.parametrize("path", PROXY_FILES, ids=[p.stem for p in PROXY_FILES])
class TestProxyConfig(ProxyContract):
    @pytest.fixture
    def make_objective(self, path: Path) -> Callable[[int], ProxyObjective]:
        return lambda seed: load_proxy(path, seed)

    @pytest.fixture
    def space(self) -> NB201Space:
        return NB201Space()

    @pytest.fixture
    def archs(self, space: NB201Space) -> list[Architecture]:
        uniform = "|{0}~0|+|{0}~0|{0}~1|+|{0}~0|{0}~1|{0}~2|"
        rng = np.random.default_rng(0)
        return [
            space.parse(uniform.format("nor_conv_3x3")),
            space.parse(uniform.format("avg_pool_3x3")),
            space.sample(rng),
        ]

    @pytest.fixture
    def degenerate(self, space: NB201Space) -> Architecture:
        return space.parse("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|")


def test_the_proxy_group_holds_the_baselines_and_synflow() -> None:
    assert {"synflow", "naswot", "params", "flops"} <= {p.stem for p in PROXY_FILES}


@pytest.mark.parametrize("path", PROXY_FILES, ids=[p.stem for p in PROXY_FILES])
def test_each_file_holds_one_objective_under_its_own_name(path: Path) -> None:
    assert [key for key in OmegaConf.load(path) if key != "defaults"] == [path.stem]


def test_name_defaults_to_the_function_and_source_names_settings() -> None:
    objective = load_proxy(Path(CONFIG_DIR) / "proxy" / "naswot.yaml", seed=3)
    assert objective.name == "naswot"
    assert "naswot" in objective.source() and "seed 3" in objective.source() and "batch 16" in objective.source()
