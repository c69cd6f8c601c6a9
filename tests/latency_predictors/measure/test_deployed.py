"""Deployed latency: each candidate timed live as its deployment genes say, on real runtimes."""

from __future__ import annotations

import functools

import pytest
import torch

from latency_predictors.measure import (
    DeployedLatency,
    OnnxRuntimeCPU,
    TorchCompileCPU,
    TorchEagerCPU,
    runtime_device,
)
from nas import Candidate, DeployedSpace, DeploymentGenes, Direction, ObjectiveError
from search_spaces import NB201Space

GENES = {
    "runtime": ["onnxruntime", "torch_eager"],
    "graph_optimization": ["all", "basic"],
    "precision": ["fp32", "int8"],
    "threads": [1, 2],
    "batch_size": [1, 4],
}
NETWORK = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
RUNTIMES = {"onnxruntime": functools.partial(OnnxRuntimeCPU), "torch_eager": functools.partial(TorchEagerCPU)}


@pytest.fixture(scope="module")
def space() -> DeployedSpace:
    genes = DeploymentGenes(GENES, {"torch_eager": ["threads", "batch_size"]})
    return DeployedSpace(NB201Space(channels=8, cells_per_stage=1), genes, "cpu_test")


def candidate(space: DeployedSpace, deployment: str) -> Candidate:
    return Candidate(space.parse(f"{NETWORK}@{deployment}"), space)


@pytest.mark.parametrize(
    ("deployment", "runtime"),
    [
        ("runtime=onnxruntime,precision=int8", OnnxRuntimeCPU(threads=1, precision="int8")),
        ("runtime=onnxruntime,graph_optimization=basic,threads=2", OnnxRuntimeCPU(2, graph_optimization="basic")),
        ("runtime=torch_eager,threads=2,batch_size=4", TorchEagerCPU(threads=2)),
    ],
)
def test_each_candidate_runs_on_the_runtime_its_deployment_names(
    space: DeployedSpace, deployment: str, runtime: object
) -> None:
    latency = DeployedLatency(runtimes=RUNTIMES, warmup=1, repeats=5)
    c = candidate(space, deployment)
    value = latency(c)
    assert value > 0 and latency.direction is Direction.MINIMIZE
    batch = space.deployment_of(c.arch).get("batch_size", 1)
    # The device hwnas-profile would name for the same runtime settings, built independently.
    assert latency.device_of(c) == runtime_device(runtime, int(batch))  # type: ignore[arg-type]
    details = latency.details(c)
    assert details["batch_size"] == batch and details["p95_ms"] >= details["median_ms"] == value


def test_latency_and_throughput_share_one_measurement(space: DeployedSpace) -> None:
    latency = DeployedLatency(runtimes=RUNTIMES, warmup=1, repeats=5)
    throughput = DeployedLatency("samples_per_s", runtimes=RUNTIMES, statistic="samples_per_s", warmup=1, repeats=5)
    assert throughput.direction is Direction.MAXIMIZE
    c = candidate(space, "runtime=torch_eager,batch_size=4")
    median = latency(c)
    # Timed twice, two medians of a real clock would differ; shared, the throughput is exact.
    assert throughput(c) == 4 * 1000.0 / median
    assert throughput.source() != latency.source()


def test_bad_settings_and_candidates_are_named(space: DeployedSpace) -> None:
    with pytest.raises(ValueError, match="statistic must be one of"):
        DeployedLatency(runtimes=RUNTIMES, statistic="mean_ms")
    with pytest.raises(ValueError, match="needs runtimes"):
        DeployedLatency(runtimes={})
    only_onnx = DeployedLatency(runtimes={"onnxruntime": RUNTIMES["onnxruntime"]}, warmup=0, repeats=1)
    with pytest.raises(
        ObjectiveError, match=r"no runtime for runtime='torch_eager'; this objective runs \['onnxruntime'\]"
    ):
        only_onnx(candidate(space, "runtime=torch_eager"))
    plain = NB201Space(channels=8, cells_per_stage=1)
    with pytest.raises(ObjectiveError, match="search with deployment=<option>"):
        only_onnx(Candidate(plain.parse(NETWORK), plain))


@pytest.mark.slow
def test_torch_compile_runs_the_compiled_graph(space: DeployedSpace) -> None:
    runtime = TorchCompileCPU(threads=1)
    model = space.build(space.parse(f"{NETWORK}@runtime=torch_eager")).eval()
    x = space.example_input(1)
    torch._dynamo.utils.counters.clear()
    run = runtime.prepare(model, x, workdir=None)  # type: ignore[arg-type]
    run()
    # Compiled as one graph (fullgraph=True refuses a break), not left to run eagerly.
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
