"""int8 fidelity: a deployed candidate's int8 file against its fp32 network on real images."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from latency_predictors.measure import Int8Agreement, compare_int8, quantize_on_images
from nas import Candidate, DeployedSpace, DeploymentGenes, ObjectiveError
from nas.proxies import ProxyData
from nas.training import PackagedImages
from search_spaces import NB201Space

NETWORK = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(scope="module")
def data() -> ProxyData:
    return ProxyData(PackagedImages(), batch_size=32, seed=0)


@pytest.fixture(scope="module")
def space() -> DeployedSpace:
    genes = DeploymentGenes({"runtime": ["onnxruntime"], "precision": ["fp32", "int8"]})
    return DeployedSpace(NB201Space(channels=8, cells_per_stage=1), genes, "cpu_test")


def test_the_int8_file_is_close_to_fp32_and_the_fp32_file_is_exact(
    space: DeployedSpace, data: ProxyData, tmp_path: Path
) -> None:
    arch = space.parse(f"{NETWORK}@runtime=onnxruntime,precision=int8")
    model = space.build(arch).eval()
    images = data.batch(space.input_shape_of(arch), space.num_classes).images
    fp32, int8 = quantize_on_images(model, images, tmp_path)
    # The comparison itself, on a file that computes what PyTorch does: full agreement, no noise
    # beyond float rounding.
    exact = compare_int8(model, fp32, images)
    assert exact.top1_agreement == 1.0 and exact.sqnr_db > 80 and exact.images == 32
    quantised = compare_int8(model, int8, images)
    assert 0.5 <= quantised.top1_agreement <= 1.0
    assert 5 < quantised.sqnr_db < exact.sqnr_db


def test_the_objective_compares_only_int8_deployments(space: DeployedSpace, data: ProxyData) -> None:
    agreement = Int8Agreement(data=data)
    fp32 = Candidate(space.parse(f"{NETWORK}@runtime=onnxruntime,precision=fp32"), space)
    assert agreement(fp32) == 1.0 and agreement.details(fp32) == {}
    int8 = Candidate(space.parse(f"{NETWORK}@runtime=onnxruntime,precision=int8"), space)
    value = agreement.evaluate(int8)
    details = agreement.details(int8)
    assert 0.5 <= value <= 1.0 and math.isfinite(details["sqnr_db"]) and details["images"] == 32
    # The same candidate compared again gives the same figures: quantisation is deterministic.
    assert Int8Agreement(data=data)(int8) == value
    assert np.isclose(agreement.details(int8)["sqnr_db"], details["sqnr_db"])


def test_bad_use_is_named(data: ProxyData) -> None:
    with pytest.raises(ValueError, match="needs data"):
        Int8Agreement()
    plain = NB201Space(channels=8, cells_per_stage=1)
    with pytest.raises(ObjectiveError, match="deployment=<option>"):
        Int8Agreement(data=data)(Candidate(plain.parse(NETWORK), plain))
