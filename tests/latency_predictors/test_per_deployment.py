"""PerDeploymentPredictor: one predictor per deployment of a deployed table, few-shot from the
others'. The deployments' latencies here are published devices' columns (a deployment is one
way of running the network, a device another; either changes the costs), so what it predicts is
checked against measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from latency_predictors import BoostedLayerSumPredictor, FewShotPredictor, PerDeploymentPredictor
from nas import Architecture, DeployedSpace, DeploymentGenes, SearchSpace, UnavailableError
from nas.testing import PredictorContract
from search_spaces import NB201Space
from tests.latency_predictors.helpers import table_rows

#: Each deployment's latencies are this published device's.
AS_DEVICE = {
    "runtime=onnxruntime,threads=1": "gold_6226",
    "runtime=onnxruntime,threads=2": "pixel3",
    "runtime=torch_eager,threads=1": "raspi4",
}
GENES = DeploymentGenes({"runtime": ["onnxruntime", "torch_eager"], "threads": [1, 2]})


def deployed() -> DeployedSpace:
    return DeployedSpace(NB201Space(), GENES, "contract")


def factory(space: SearchSpace, fingerprint: str, min_source_rows: int = 20) -> PerDeploymentPredictor:
    return PerDeploymentPredictor(
        space,
        fingerprint,
        source=BoostedLayerSumPredictor,
        few_shot=lambda **kw: FewShotPredictor(**kw, own_layer_sum=True),
        min_source_rows=min_source_rows,
    )


def rows_of(data_dir: Path, counts: dict[str, int], offset: int = 0) -> tuple[list[Architecture], np.ndarray]:
    """``counts[deployment]`` networks of the NB201 table (the same networks for every
    deployment, from row ``offset`` of a seeded order) under each deployment."""
    space = deployed()
    order = np.random.default_rng(7).permutation(15625)
    archs, targets = [], []
    for deployment, count in counts.items():
        networks, values = table_rows(data_dir, space.networks, order[offset : offset + count], AS_DEVICE[deployment])
        archs += [space.deploy(n, GENES.of(deployment)) for n in networks]
        targets.append(values)
    return archs, np.concatenate(targets)


class TestPerDeploymentContract(PredictorContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return deployed()

    @pytest.fixture
    def predictor_factory(self):  # type: ignore[no-untyped-def]
        return factory

    @pytest.fixture
    def archs_and_targets(self, data_dir: Path) -> tuple[list[Architecture], np.ndarray]:
        # two deployments with their own predictors, one adapted from them on 10 rows
        return rows_of(data_dir, dict(zip(AS_DEVICE, (25, 25, 10))))


def test_a_thinly_measured_deployment_borrows_from_the_others(data_dir: Path) -> None:
    """raspi4's ranking of 500 unseen networks from 10 of its own and 60 of each other
    deployment's: close to what few-shot reaches on the published devices."""
    archs, targets = rows_of(data_dir, dict(zip(AS_DEVICE, (60, 60, 10))))
    predictor = factory(deployed(), "0123456789abcdef").fit(archs, targets)
    thin = "runtime=torch_eager,threads=1"
    assert set(predictor.sources) == set(AS_DEVICE) - {thin}
    assert isinstance(predictor.adapted[thin], FewShotPredictor)
    assert set(predictor.adapted[thin].sources) == set(predictor.sources)
    held, truth = rows_of(data_dir, {thin: 500}, offset=100)
    assert spearmanr(predictor.predict(held), truth).statistic > 0.9


def test_a_deployment_never_measured_is_named(data_dir: Path) -> None:
    archs, targets = rows_of(data_dir, dict(zip(list(AS_DEVICE)[:2], (30, 30))))
    predictor = factory(deployed(), "0123456789abcdef").fit(archs, targets)
    held, _ = rows_of(data_dir, {"runtime=torch_eager,threads=1": 2}, offset=100)
    with pytest.raises(UnavailableError, match="no predictor for deployment runtime=torch_eager,threads=1"):
        predictor.predict(held)


def test_too_few_rows_and_undeployed_spaces_are_refused(data_dir: Path) -> None:
    archs, targets = rows_of(data_dir, dict(zip(AS_DEVICE, (5, 5, 5))))
    with pytest.raises(ValueError, match="needs at least one deployment with 20 measured rows"):
        factory(deployed(), "0123456789abcdef").fit(archs, targets)
    with pytest.raises(ValueError, match="nb201 has no deployments"):
        factory(NB201Space(), "0123456789abcdef")
