"""Deployed candidates (nas.DeployedSpace): the space contract, strings that carry the deployment,
normalisation of genes a runtime does not take, and the bad inputs a config or a user can give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas import ArchitectureError, DeployedSpace, DeploymentError, DeploymentGenes, DeploymentList, SearchSpace
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


def test_every_deployment_is_listed_once_and_named_back() -> None:
    genes = DeploymentGenes(GENES, TAKES)
    every = genes.every()
    # onnxruntime reads all four other genes (3 x 2 x 2 x 2); PyTorch eager threads and batch
    assert len(every) == 24 + 4 and len({d.string for d in every}) == len(every)
    assert all(genes.of(d.string) == d for d in every)
    assert every[0].string == "runtime=onnxruntime,graph_optimization=all,precision=fp32,threads=1,batch_size=1"


def test_deploy_puts_a_network_under_a_deployment() -> None:
    space = deployed()
    network = NB201Space().parse(NETWORK)
    for deployment in space.deployment.every():
        candidate = space.deploy(network, deployment)
        assert space.network_of(candidate) == network and space.deployment_of(candidate) == deployment
        assert candidate.string == f"{NETWORK}@{deployment.string}"


@pytest.mark.parametrize("inner", [NB201Space, FBNetSpace])
def test_a_deployment_keeps_the_network_s_flops_and_layers(inner: type[SearchSpace]) -> None:
    """FLOPs, layers and their statistics are the network's: a deployment runs them, it adds none
    (so analytic costs of a deployed candidate are its network's, and predictors can read them)."""
    import pickle

    from nas import AdditiveSpace, FlopsSpace

    network_space = inner()
    space = deployed(network_space)
    assert isinstance(space, FlopsSpace) and isinstance(space, AdditiveSpace)
    rng = np.random.default_rng(3)
    for _ in range(5):
        candidate = space.sample(rng)
        network = space.network_of(candidate)
        assert space.flops(candidate) == network_space.flops(network)
        assert space.layers(candidate) == network_space.layers(network)
    again = pickle.loads(pickle.dumps(space))
    assert type(again) is type(space) and repr(again) == repr(space)
    assert again.parse(candidate.string) == candidate


def _deployed_table(directory: Path, rows: dict[str, float]) -> Path:
    directory.mkdir()
    archs = ["index,arch", *(f'{i},"{arch}"' for i, arch in enumerate(rows))]
    values = ["index,cpu_stack", *(f"{i},{value}" for i, value in enumerate(rows.values()))]
    (directory / "archs.csv").write_text("\n".join(archs) + "\n")
    (directory / "latency_ms.csv").write_text("\n".join(values) + "\n")
    return directory


OTHER = "|skip_connect~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
FAST = "runtime=onnxruntime,graph_optimization=all,precision=fp32,threads=1,batch_size=1"
EAGER = "runtime=torch_eager,threads=2,batch_size=8"


def test_a_table_of_deployed_rows_is_read_by_the_candidate(tmp_path: Path) -> None:
    """A deployed profile's rows are candidates: the same network under another deployment is
    another row, never the one measured."""
    from nas import Candidate, UnavailableError
    from nas.objectives import TableMetric

    space = deployed()
    table = _deployed_table(tmp_path / "t", {f"{NETWORK}@{FAST}": 1.5, f"{NETWORK}@{EAGER}": 9.0})
    latency = TableMetric("latency_ms", table, "latency_ms", device="cpu_stack", space=space)
    assert latency(Candidate(space.parse(f"{NETWORK}@{FAST}"), space)) == 1.5
    assert latency(Candidate(space.parse(f"{NETWORK}@{EAGER}"), space)) == 9.0
    with pytest.raises(UnavailableError):
        latency(Candidate(space.parse(f"{NETWORK}@runtime=torch_eager,threads=1,batch_size=1"), space))


def test_a_deployment_grid_reads_a_deployed_table_as_networks_by_deployments(tmp_path: Path) -> None:
    from nas.deployment_grid import DeploymentGrid
    from nas.fitting import ParsedTable
    from nas.tables import BenchmarkTable

    space = deployed()
    rows = {f"{NETWORK}@{FAST}": 1.5, f"{OTHER}@{EAGER}": 7.0, f"{NETWORK}@{EAGER}": 9.0}
    data = ParsedTable.parse(space, BenchmarkTable.load(_deployed_table(tmp_path / "t", rows)))
    grid = DeploymentGrid.of(space, data.archs)
    assert [n.string for n in grid.networks] == [NETWORK, OTHER]
    assert [d.string for d in grid.deployments] == [FAST, EAGER]
    np.testing.assert_array_equal(grid.rows, [[0, 2], [-1, 1]])
    complete = grid.complete()
    assert [n.string for n in complete.networks] == [NETWORK] and complete.rows.tolist() == [[0, 2]]


LISTED = (FAST, EAGER)


def listed() -> DeployedSpace:
    return DeployedSpace(NB201Space(), DeploymentList(GENES, LISTED, TAKES), "cpu_stack")


class TestListedDeploymentsContract(SearchSpaceContract):
    """Two listed deployments of every cell (deployment=profiled's space)."""

    @pytest.fixture
    def space(self) -> SearchSpace:
        return listed()


def test_a_list_offers_only_its_deployments_written_as_the_genes_write_them() -> None:
    space, genes = listed(), deployed()
    assert [g.name for g in space.deployment.genes] == ["deployment"]
    assert [d.string for d in space.deployment.every()] == list(LISTED)
    rng = np.random.default_rng(0)
    for _ in range(20):
        candidate = space.sample(rng)
        assert space.deployment_of(candidate).string in LISTED
        # the same string, network and deployment as under the genes themselves
        assert genes.parse(candidate.string).string == candidate.string
        assert genes.deployment_of(genes.parse(candidate.string)) == space.deployment_of(candidate)
    network = NB201Space().parse(NETWORK)
    assert space.deploy(network, genes.deployment.of(EAGER)).string == f"{NETWORK}@{EAGER}"
    with pytest.raises(ArchitectureError, match="is not one of the 2 listed"):
        space.parse(f"{NETWORK}@runtime=torch_eager,threads=1,batch_size=1")


def test_a_list_naming_a_deployment_the_genes_cannot_make_is_refused() -> None:
    with pytest.raises(DeploymentError, match="listed deployment 'runtime=tensorrt'.*has value 'tensorrt'"):
        DeploymentList(GENES, ["runtime=tensorrt"], TAKES)
    with pytest.raises(DeploymentError, match="at least one deployment"):
        DeploymentList(GENES, [], TAKES)
