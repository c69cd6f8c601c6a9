"""Deployed candidates (nas.DeployedSpace): the space contract, strings that carry the deployment,
normalisation of genes a runtime does not take, and the bad inputs a config or a user can give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas import ArchitectureError, DeployedSpace, DeploymentGenes, SearchSpace
from nas.testing import SearchSpaceContract
from search_spaces import FBNetSpace, NB201Space

GENES = {
    "runtime": ["onnxruntime", "torch_eager"],
    "graph_optimization": ["all", "basic", "disable"],
    "precision": ["fp32", "int8"],
    "threads": [1, 2],
    "batch_size": [1, 8],
}
TAKES = {"torch_eager": ["threads", "batch_size"]}
NETWORK = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def deployed(space: SearchSpace | None = None) -> DeployedSpace:
    return DeployedSpace(space or NB201Space(), DeploymentGenes(GENES, TAKES), "cpu_stack")


class TestDeployedNB201Contract(SearchSpaceContract):
    """Two deployments of every cell: few enough candidates (31,250) that the contract enumerates
    them, so it sees NB201's isomorphic and disconnected cells carried over."""

    @pytest.fixture
    def space(self) -> SearchSpace:
        return DeployedSpace(NB201Space(), DeploymentGenes({"runtime": ["onnxruntime", "torch_eager"]}), "two")


def test_isomorphic_cells_share_a_class_per_deployment_only() -> None:
    from nas import IsomorphicSpace, isomorphism_classes

    space, nb201 = deployed(), NB201Space()
    assert isinstance(space, IsomorphicSpace)
    cells = [nb201.sample(np.random.default_rng(seed)) for seed in range(400)]
    inner = isomorphism_classes(nb201, cells)
    i, j = next((i, j) for i in range(len(cells)) for j in range(i) if inner[i] == inner[j] and cells[i] != cells[j])
    int8, fp32 = "@runtime=onnxruntime,precision=int8", "@runtime=onnxruntime,precision=fp32"
    candidates = [space.parse(cells[i].string + int8), space.parse(cells[j].string + int8)]
    candidates += [space.parse(cells[i].string + fp32), space.parse(cells[i].string + "@runtime=torch_eager")]
    classes = isomorphism_classes(space, candidates)
    assert classes[0] == classes[1] and len(set(classes[1:])) == 3


def test_the_string_carries_network_and_deployment() -> None:
    space = deployed()
    string = f"{NETWORK}@runtime=onnxruntime,graph_optimization=basic,precision=int8,threads=2,batch_size=8"
    arch = space.parse(string)
    assert arch.string == string and space.name == "nb201@cpu_stack"
    assert space.network_of(arch) == NB201Space().parse(NETWORK)
    deployment = space.deployment_of(arch)
    assert deployment.params == {
        "runtime": "onnxruntime",
        "graph_optimization": "basic",
        "precision": "int8",
        "threads": 2,
        "batch_size": 8,
    }
    assert deployment["threads"] == 2 and str(deployment) == string.split("@")[1]


def test_genes_a_runtime_does_not_take_are_normalised_away() -> None:
    space = deployed()
    network = NB201Space().parse(NETWORK).params
    asked = {**network, "runtime": "torch_eager", "precision": "int8", "graph_optimization": "disable"}
    plain = {**network, "runtime": "torch_eager", "precision": "fp32", "graph_optimization": "all"}
    a = space.architecture({**asked, "threads": 2, "batch_size": 1})
    b = space.architecture({**plain, "threads": 2, "batch_size": 1})
    assert a == b and a.string == f"{NETWORK}@runtime=torch_eager,threads=2,batch_size=1"
    # A string may leave out the genes its runtime does not take, and may not name a gene twice over.
    assert space.parse(f"{NETWORK}@runtime=torch_eager,threads=2,batch_size=1") == a
    # Omitted taken genes take their first choice.
    assert space.parse(f"{NETWORK}@runtime=onnxruntime").string.endswith(
        "@runtime=onnxruntime,graph_optimization=all,precision=fp32,threads=1,batch_size=1"
    )


def test_the_network_is_the_inner_space_s_own() -> None:
    space = deployed()
    arch = space.parse(f"{NETWORK}@runtime=onnxruntime,precision=int8")
    built, inner = space.build(arch, seed=3), NB201Space().build(NB201Space().parse(NETWORK), seed=3)
    x = space.example_input(2, arch=arch)
    torch.testing.assert_close(built.eval()(x), inner.eval()(x))
    assert space.input_shape_of(arch) == NB201Space().input_shape


def test_other_spaces_wrap_alike() -> None:
    space = deployed(FBNetSpace())
    arch = space.sample(np.random.default_rng(1))
    assert space.parse(arch.string) == arch and space.name == "fbnet@cpu_stack"
    assert space.network_of(arch).space == "fbnet"


@pytest.mark.parametrize(
    ("string", "message"),
    [
        (NETWORK, "names no deployment"),
        (f"{NETWORK}@runtime=tensorrt", "has value 'tensorrt'; allowed values: 'onnxruntime', 'torch_eager'"),
        (f"{NETWORK}@runtime=onnxruntime,threads=3", "'threads' has value '3'; allowed values: 1, 2"),
        (f"{NETWORK}@runtime=onnxruntime,cores=2", "'cores=2' is not <gene>=<value> of a deployment gene"),
        (f"{NETWORK}@threads=2", "names no 'runtime'"),
        ("|bad|@runtime=onnxruntime", "bad"),
    ],
)
def test_malformed_strings_name_the_bad_part(string: str, message: str) -> None:
    with pytest.raises(ArchitectureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        deployed().parse(string)


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match=r"takes names \['tensorrt'\]"):
        DeploymentGenes(GENES, {"tensorrt": ["threads"]})
    with pytest.raises(ValueError, match=r"takes.torch_eager names unknown gene\(s\) \['cores'\]"):
        DeploymentGenes(GENES, {"torch_eager": ["cores"]})
    with pytest.raises(ValueError, match="'threads' has no choices"):
        DeploymentGenes({"runtime": ["onnxruntime"], "threads": []})
    with pytest.raises(ValueError, match="at least one gene"):
        DeploymentGenes({})
    clash = DeploymentGenes({"runtime": ["onnxruntime"], "edge_1_0": [1]})
    with pytest.raises(ValueError, match=r"\['edge_1_0'\] have the names of nb201 genes"):
        DeployedSpace(NB201Space(), clash)


def test_a_table_metric_reads_the_row_of_the_candidate_s_network(data_dir: Path) -> None:
    """Accuracy does not change with onnxruntime's optimisation level: a deployed candidate's
    published accuracy is its network's."""
    from nas import Candidate
    from nas.objectives import TableMetric

    nb201 = NB201Space()
    accuracy = TableMetric("accuracy", data_dir / "nb201", "cifar10_test_acc", direction="maximize", space=nb201)
    space = deployed()
    network = nb201.parse(NETWORK)
    for deployment in ("runtime=onnxruntime,precision=int8", "runtime=torch_eager,threads=2"):
        c = Candidate(space.parse(f"{NETWORK}@{deployment}"), space)
        assert c.network == network
        assert accuracy(c) == accuracy(Candidate(network, nb201))
