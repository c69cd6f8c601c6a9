"""Latency predictors: the predictor contract, layer sums and FLOPs, and accuracy on tables."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig
from scipy.stats import spearmanr

from latency_predictors.predictors import (
    FlopsPredictor,
    LayerSumPredictor,
    UnseenLayerError,
)
from nas import Architecture, DeployedSpace, DeploymentGenes, Predictor, PredictorMismatchError, SearchSpace
from nas.cli import CONFIG_DIR
from nas.testing import PredictorContract
from search_spaces import FBNetSpace, NB201Space
from tests.latency_predictors.helpers import DEVICE, table_rows

# The contract, for every option of configs/predictor/ on a handful of NB201 rows

#: The options of the predictor config group.
PREDICTOR_OPTIONS = sorted(path.stem for path in (Path(CONFIG_DIR) / "predictor").glob("*.yaml"))
#: Overrides that shorten an option's training (the contract checks behaviour, not accuracy).
QUICK = {"mlp": ["predictor.epochs=10"], "gnn": ["predictor.epochs=10"]}
#: Options fitted from other devices' predictors (what hwnas-fit's source_devices gives them).
NEEDS_SOURCES = {"few_shot"}
#: Options that predict deployed candidates: their contract runs on NB201 under two deployments,
#: the contract's rows measured as raspi4 under one and gold_6226 under the other.
DEPLOYED = {"per_deployment": ["predictor.min_source_rows=10"]}
DEPLOYED_AS = {"runtime=onnxruntime": "raspi4", "runtime=torch_eager": "gold_6226"}
#: The contract's rows, and the rows the few-shot sources are fitted on (none of the former).
CONTRACT_ROWS = np.arange(0, 15625, 1250)
SOURCE_ROWS = np.arange(7, 15625, 250)


@pytest.fixture(scope="module")
def predictor_configs(data_dir: Path) -> dict[str, DictConfig]:
    """hwnas-fit's config (space nb201) composed with each predictor option."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return {
            option: compose(
                "fit",
                overrides=[
                    f"predictor={option}",
                    f"data_dir={data_dir}",
                    *QUICK.get(option, []),
                    *DEPLOYED.get(option, []),
                ],
            )
            for option in PREDICTOR_OPTIONS
        }


@pytest.fixture(scope="module")
def few_shot_sources(predictor_configs: dict[str, DictConfig], data_dir: Path) -> dict[str, Predictor]:
    """The space's few-shot source predictor (its config) fitted on two other devices."""
    cfg = predictor_configs["few_shot"]
    sources = {}
    for device in ("gold_6226", "pixel3"):
        archs, y = table_rows(data_dir, NB201Space(), SOURCE_ROWS, device)
        sources[device] = instantiate(cfg.few_shot.source)(space=NB201Space(), device_fingerprint=device).fit(archs, y)
    return sources


class TestConfiguredPredictorContract(PredictorContract):
    @pytest.fixture(params=PREDICTOR_OPTIONS)
    def option(self, request: pytest.FixtureRequest) -> str:
        return request.param

    @pytest.fixture
    def space(self, option: str) -> SearchSpace:
        if option in DEPLOYED:
            return DeployedSpace(NB201Space(), DeploymentGenes({"runtime": ["onnxruntime", "torch_eager"]}), "contract")
        return NB201Space()

    @pytest.fixture
    def predictor_factory(
        self, option: str, predictor_configs: dict[str, DictConfig], request: pytest.FixtureRequest
    ) -> Callable[[SearchSpace, str], Predictor]:
        node = predictor_configs[option].predictor
        extra = {"sources": request.getfixturevalue("few_shot_sources")} if option in NEEDS_SOURCES else {}
        return lambda space, fingerprint: instantiate(node)(space=space, device_fingerprint=fingerprint, **extra)

    @pytest.fixture
    def archs_and_targets(self, data_dir: Path, space: SearchSpace) -> tuple[list[Architecture], np.ndarray]:
        if not isinstance(space, DeployedSpace):
            return table_rows(data_dir, space, CONTRACT_ROWS)
        archs, targets = [], []
        for deployment, device in DEPLOYED_AS.items():
            networks, values = table_rows(data_dir, space.networks, CONTRACT_ROWS, device)
            archs += [space.deploy(n, space.deployment.of(deployment)) for n in networks]
            targets.append(values)
        return archs, np.concatenate(targets)


def test_the_contract_runs_every_family_and_its_tables_name_real_options() -> None:
    """The options come from the group's files (a new file is run with no change here): an empty
    glob would run no contract at all, and a stale entry in QUICK or NEEDS_SOURCES would do nothing."""
    assert {"flops", "layer_sum", "gbdt", "boosted_layer_sum", "mlp", "gnn", "few_shot"} <= set(PREDICTOR_OPTIONS)
    assert set(QUICK) | NEEDS_SOURCES | set(DEPLOYED) <= set(PREDICTOR_OPTIONS)


class TestLayerSumContractFBNet(PredictorContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return FBNetSpace()

    @pytest.fixture
    def predictor_factory(self) -> Callable[[SearchSpace, str], Predictor]:
        return LayerSumPredictor

    @pytest.fixture
    def archs_and_targets(self, data_dir: Path, space: SearchSpace) -> tuple[list[Architecture], np.ndarray]:
        return table_rows(data_dir, space, np.arange(0, 5000, 250))


# Layer-sum specifics


def test_from_layer_table_sums_the_layers() -> None:
    space = NB201Space()
    arch = space.sample(np.random.default_rng(0))
    costs = {layer.key: 1.0 + i for i, layer in enumerate(space.distinct_layers())}
    predictor = LayerSumPredictor.from_layer_table(space, DEVICE, costs, intercept=0.5)
    expected = 0.5 + sum(costs[layer.key] for layer in space.layers(arch))
    assert predictor.predict([arch])[0] == pytest.approx(expected)


def test_unseen_keys_raise_or_take_their_kind_mean() -> None:
    space = NB201Space()
    keys = [layer.key for layer in space.distinct_layers()]
    dropped = "op:nor_conv_3x3:c32:h16"
    costs = {key: float(len(key)) for key in keys if key != dropped}
    arch = space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    strict = LayerSumPredictor.from_layer_table(space, DEVICE, costs)
    with pytest.raises(UnseenLayerError, match=dropped):
        strict.predict([arch])
    lenient = LayerSumPredictor.from_layer_table(space, DEVICE, costs, unseen="kind_mean")
    same_kind = [costs[k] for k in keys if k != dropped and space.layer_kind(k) == "op:nor_conv_3x3"]
    full = LayerSumPredictor.from_layer_table(space, DEVICE, {**costs, dropped: float(np.mean(same_kind))})
    assert lenient.predict([arch])[0] == pytest.approx(full.predict([arch])[0])
    # what each can price: the strict one lacks the dropped key, the lenient one lacks nothing,
    # and a key of a kind it has never seen stays uncovered either way
    assert strict.uncovered(keys) == [dropped] and lenient.uncovered(keys) == []
    assert lenient.uncovered([*keys, "op:new_op:c16:h32"]) == ["op:new_op:c16:h32"]


def test_fit_refuses_bad_targets_and_foreign_architectures(data_dir: Path) -> None:
    space = NB201Space()
    archs, y = table_rows(data_dir, space, np.arange(5))
    with pytest.raises(ValueError, match="finite"):
        LayerSumPredictor(space, DEVICE).fit(archs, np.where(np.arange(5) == 2, np.nan, y))
    with pytest.raises(ValueError, match="> 0"):
        FlopsPredictor(space, DEVICE).fit(archs, -y)
    with pytest.raises(PredictorMismatchError, match="fbnet"):
        LayerSumPredictor(space, DEVICE).fit([FBNetSpace().sample(np.random.default_rng(0))], y[:1])


# Accuracy on the published tables


def relative_errors(predicted: np.ndarray, measured: np.ndarray) -> np.ndarray:
    return np.abs(predicted / measured - 1)


def test_layer_sum_recovers_fbnet_raspi4(data_dir: Path) -> None:
    """FBNet's raspi4 column is a sum of per-layer lookup tables: 900 networks pin down the costs
    of its 110 keys, and the other 4,100 are predicted almost exactly (measured: Spearman 1.0000,
    100% within 1%, largest error 3e-5)."""
    space = FBNetSpace()
    archs, y = table_rows(data_dir, space, np.arange(5000))
    predictor = LayerSumPredictor(space, DEVICE).fit(archs[:900], y[:900])
    predicted = predictor.predict(archs[900:])
    errors = relative_errors(predicted, y[900:])
    assert spearmanr(predicted, y[900:])[0] > 0.99
    assert np.mean(errors <= 0.10) >= 0.97
    assert np.max(errors) < 0.01
    assert len(predictor.keys) == len(space.distinct_layers())


def test_flops_baseline_on_fbnet_raspi4(data_dir: Path) -> None:
    """The power law of FLOPs ranks well but is no lookup table (measured: Spearman 0.930, 90.9%
    within 10%)."""
    space = FBNetSpace()
    archs, y = table_rows(data_dir, space, np.arange(5000))
    predicted = FlopsPredictor(space, DEVICE).fit(archs[:900], y[:900]).predict(archs[900:])
    assert spearmanr(predicted, y[900:])[0] > 0.9
    assert np.mean(relative_errors(predicted, y[900:]) <= 0.10) > 0.85
