"""int8 fidelity: a deployed candidate's int8 file against its fp32 network on real images."""

from __future__ import annotations

import math
import tempfile
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.nas.training.test_trainer import trainer

    directory = tmp_path_factory.mktemp("supernet")
    trainer(directory, epochs=2).fit()
    return directory


def test_deployed_accuracy_scores_the_int8_file_with_the_trained_weights(trained: Path) -> None:
    """fp32 deployments score the inherited accuracy; int8 ones their int8 file on the same
    images, which can differ from fp32 by at most the share of images the two classify apart."""
    import onnxruntime as ort
    import torch

    from latency_predictors.measure import DeployedAccuracy
    from nas.training import InheritedAccuracy
    from tests.nas.training.helpers import DigitsSubset, tiny_space

    inherited = InheritedAccuracy(trained, DigitsSubset(), bn_batches=2, batch_size=32, seed=5)
    accuracy = DeployedAccuracy(inherited)
    genes = DeploymentGenes({"runtime": ["onnxruntime"], "precision": ["fp32", "int8"]})
    space = DeployedSpace(tiny_space(), genes, "cpu_test")
    network = space.networks.largest()
    fp32 = Candidate(space.deploy(network, genes.of("runtime=onnxruntime,precision=fp32")), space)
    int8 = Candidate(space.deploy(network, genes.of("runtime=onnxruntime,precision=int8")), space)
    inherited_value = inherited(Candidate(network, space.networks))
    assert accuracy(fp32) == inherited_value and accuracy.details(fp32)["int8_drop"] == 0
    deployed_value = accuracy(int8)
    details = accuracy.details(int8)
    assert details["fp32"] == inherited_value and details["int8_drop"] == pytest.approx(
        inherited_value - deployed_value
    )

    # Independently: quantise the same subnet on the same images, classify the validation images.
    subnet = inherited.subnet(space.networks, network)
    _, val = DigitsSubset().splits()
    images, labels = val.tensors
    with tempfile.TemporaryDirectory() as scratch:
        _, path = quantize_on_images(subnet, inherited.calibration_images(space.networks, network), Path(scratch))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        int8_classes = session.run(None, {"input": images.numpy()})[0].argmax(axis=1)
    with torch.no_grad():
        fp32_classes = subnet(images).argmax(dim=1).numpy()
    assert deployed_value == pytest.approx(100.0 * float(np.mean(int8_classes == labels.numpy())))
    disagreement = 100.0 * float(np.mean(int8_classes != fp32_classes))
    assert abs(inherited_value - deployed_value) <= disagreement + 1e-9


def test_deployed_accuracy_needs_a_deployed_candidate(trained: Path) -> None:
    from latency_predictors.measure import DeployedAccuracy
    from nas.training import InheritedAccuracy
    from tests.nas.training.helpers import DigitsSubset, tiny_space

    accuracy = DeployedAccuracy(InheritedAccuracy(trained, DigitsSubset()))
    with pytest.raises(ObjectiveError, match="needs deployed candidates"):
        accuracy(Candidate(tiny_space().largest(), tiny_space()))


def test_silencing_dead_bn_channels_keeps_fp32_and_leaves_the_model_alone() -> None:
    """A channel whose convolution weights are zero is constant, so its recalibrated variance is
    0: silenced, it outputs what it did (its shift) on any input, and only the copy changes."""
    import torch

    from latency_predictors.measure._fidelity import DEAD_VARIANCE, without_dead_channels

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1, bias=False), torch.nn.BatchNorm2d(4, momentum=None))
    with torch.no_grad():
        model[0].weight[2] = 0
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-1, 1)
    model.train()(torch.randn(64, 3, 8, 8))  # the BN statistics, as recalibration computes them
    model.eval()
    assert model[1].running_var[2] < DEAD_VARIANCE <= float(model[1].running_var[[0, 1, 3]].min())
    silenced = without_dead_channels(model)
    x = torch.randn(16, 3, 8, 8) * 3
    with torch.no_grad():
        torch.testing.assert_close(silenced(x), model(x))
    assert model[1].running_var[2] < DEAD_VARIANCE and silenced[1].running_var[2] > 1
