"""hwnas-search deployment=cpu_stack: candidates are (network, deployment), measured as deployed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nas import DeployedSpace, DeploymentGenes
from search_spaces import NB201Space
from tests.nas.cli.helpers import run_command
from tests.nas.cli.test_search_cli import read_csv, run_search

#: NB201 at 4 channels, one cell per stage: the same cell strings (so the table's rows), a fraction
#: of the time to export, quantise and time each candidate.
SMALL = ("++space.instance.channels=4", "++space.instance.cells_per_stage=1")
#: PyTorch eager and onnxruntime only: torch.compile takes 10-40 s per network (its own slow test).
FAST = (
    *SMALL,
    "deployment.deployment.genes.runtime=[onnxruntime,torch_eager]",
    "~deployment.deployment.takes.torch_compile",
)


def test_a_deployment_search_measures_each_candidate_as_deployed_and_resumes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = run_search("deployment=cpu_stack", *FAST, "budget.n_trials=8", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["space"] == "nb201@cpu_stack" and summary["device"] == "cpu_stack"
    trials = read_csv(run_dir / "trials.csv")
    genes = DeploymentGenes(
        {"runtime": ["onnxruntime", "torch_eager"], "graph_optimization": ["all", "basic", "disable"]}
        | {"precision": ["fp32", "int8"], "threads": [1, 2], "batch_size": [1, 8]},
        {"torch_eager": ["threads", "batch_size"]},
    )
    space = DeployedSpace(NB201Space(), genes, "cpu_stack")
    complete = [r for r in trials if r["state"] == "COMPLETE"]
    assert len([r for r in trials if not r["reused_from_trial"]]) == 8 and complete
    for row in complete:
        arch = space.parse(row["arch"])  # every candidate names its network and its deployment
        assert arch.string == row["arch"]
        deployment = space.deployment_of(arch)
        assert float(row["latency_ms.batch_size"]) == deployment.get("batch_size", 1)
        assert 0 < float(row["latency_ms"]) <= float(row["latency_ms.p95_ms"])
    front = read_csv(run_dir / "pareto.csv")
    assert front and all("@runtime=" in row["arch"] for row in front)
    for row in front:  # what runs a non-int8 deployment is the network's own file
        if "precision=int8" not in row["arch"]:
            assert row["deployed_onnx"] == row["onnx"] and row["deployment_manifest"].endswith(".deployment.json")
    again = run_search("deployment=cpu_stack", *FAST, "budget.n_trials=10", f"hydra.run.dir={run_dir}")
    assert again.returncode == 0, again.stderr[-3000:]
    after = read_csv(run_dir / "trials.csv")
    keep = ("number", "arch", "synflow", "latency_ms")
    assert len([r for r in after if not r["reused_from_trial"]]) == 10  # the sampler's replays are answered
    assert [{k: r[k] for k in keep} for r in after[:8]] == [{k: r[k] for k in keep} for r in trials]


def test_a_malformed_deployment_declaration_is_named(tmp_path: Path) -> None:
    result = run_search(
        "deployment=cpu_stack", "deployment.deployment.takes.torch_eager=[cores]", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 2, result.stderr[-2000:]  # the user's to fix: a message, no traceback
    assert "takes.torch_eager names unknown gene(s) ['cores']" in result.stderr and "Traceback" not in result.stderr


def test_throughput_and_p95_read_one_timing_and_accuracy_is_the_network_s(tmp_path: Path, data_dir: Path) -> None:
    result = run_search(
        "deployment=cpu_stack",
        "objectives=accuracy_throughput",
        "metrics=deployed",
        "+constraints.p95_ms.upper=1000",
        *FAST,
        "budget.n_trials=12",
        f"data_dir={data_dir}",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["objectives"] == {"accuracy": "maximize", "samples_per_s": "maximize"}
    assert summary["constraints"] == ["p95_ms<=1000"]
    nb201 = NB201Space()
    # The table is keyed by canonical strings; the network's row gives the candidate's accuracy.
    accuracy = {
        nb201.parse(r["arch"]).string: r["cifar10_test_acc"] for r in read_csv(data_dir / "nb201" / "archs.csv")
    }
    complete = [r for r in read_csv(tmp_path / "trials.csv") if r["state"] == "COMPLETE"]
    assert complete
    for row in complete:
        network, deployment = row["arch"].rsplit("@", 1)
        assert float(row["accuracy"]) == float(accuracy[network])
        batch = float(row["samples_per_s.batch_size"])
        assert batch == (8 if "batch_size=8" in deployment else 1)
        assert float(row["samples_per_s"]) == batch * 1000.0 / float(row["samples_per_s.median_ms"])
        assert float(row["p95_ms"]) == float(row["samples_per_s.p95_ms"])  # the same timing


def test_the_front_is_exported_as_deployed(tmp_path: Path) -> None:
    """int8 candidates get their int8 file (calibrated and checked on the proxies' real images)
    and every candidate a manifest of how to run it; re-running a file as its manifest says gives
    the agreement recorded."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from nas.proxies import ProxyData
    from nas.training import PackagedImages

    result = run_search(
        *SMALL,
        "deployment=cpu_stack",
        "deployment.deployment.genes.runtime=[onnxruntime]",
        "~deployment.deployment.takes.torch_eager",
        "~deployment.deployment.takes.torch_compile",
        "deployment.deployment.genes.precision=[int8]",
        "budget.n_trials=6",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    front = read_csv(tmp_path / "pareto.csv")
    images = ProxyData(PackagedImages(image_size=32, count=1024, num_classes=10, seed=0), 64, seed=0)
    x = images.batch((3, 32, 32), 10).images.numpy()
    assert summary["deployed_export_failures"] == sum(bool(r["deployed_error"]) for r in front)
    for row in front:
        manifest = json.loads((tmp_path / row["deployment_manifest"]).read_text())
        assert manifest["candidate"] == row["arch"] and row["arch"].startswith(manifest["network"])
        settings = manifest["session_options"]
        assert settings["intra_op_num_threads"] == manifest["deployment"]["threads"]
        assert manifest["deployment"]["precision"] == "int8"
        file = tmp_path / manifest["int8"]["file"]  # kept for inspection when below the agreement asked
        assert row["deployed_onnx"] in ("", manifest["int8"]["file"])
        assert {n.op_type for n in onnx.load(file).graph.node} & {"QuantizeLinear", "QLinearConv"}
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings["intra_op_num_threads"]
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, settings["graph_optimization_level"])
        int8 = ort.InferenceSession(str(file), options, providers=settings["providers"]).run(None, {"input": x})[0]
        fp32 = ort.InferenceSession(str(tmp_path / row["onnx"])).run(None, {"input": x})[0]
        agreement = float(np.mean(int8.argmax(1) == fp32.argmax(1)))
        assert abs(agreement - float(row["int8_top1_agreement"])) <= 1 / 64  # PyTorch and the fp32 file may split a tie

    # hwnas-export writes each candidate as deployed too, its int8 file checked on other images.
    exported = run_command("export", f"run_dir={tmp_path}", "progress=false", f"hydra.run.dir={tmp_path / 'export'}")
    assert exported.returncode in (0, 1), exported.stderr[-3000:]
    check = ProxyData(PackagedImages(image_size=32, count=1024, num_classes=10, seed=0), 256, seed=1)
    x = check.batch((3, 32, 32), 10).images.numpy()
    rows = read_csv(tmp_path / "export" / "export.csv")
    assert len(rows) == len(front)
    for row in rows:
        deployment = json.loads((tmp_path / "export" / row["directory"] / "manifest.json").read_text())["deployment"]
        assert deployment["candidate"] == row["arch"] and deployment["file"] == row["deployed_file"]
        folder = tmp_path / "export" / row["directory"]
        int8 = ort.InferenceSession(str(folder / deployment["file"])).run(None, {"input": x})[0]
        fp32 = ort.InferenceSession(str(folder / "model.onnx")).run(None, {"input": x})[0]
        agreement = float(np.mean(int8.argmax(1) == fp32.argmax(1)))
        assert abs(agreement - deployment["int8"]["top1_agreement"]) <= 1 / 256
        assert bool(row["error"]) == (agreement < 0.9 - 1 / 256) or abs(agreement - 0.9) <= 1 / 256


def test_a_runtime_no_measurement_can_run_is_refused_before_searching(tmp_path: Path) -> None:
    result = run_search(
        "deployment=cpu_stack",
        "deployment.deployment.genes.runtime=[onnxruntime,tensorrt]",
        "~deployment.deployment.takes.torch_eager",
        "~deployment.deployment.takes.torch_compile",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "latency_ms has no runtime for runtime=['tensorrt']" in result.stderr
    assert not (tmp_path / "trials.csv").exists()


def test_the_benchmark_s_fixed_deployments_are_the_joint_space_s_deployments(data_dir: Path) -> None:
    """scripts/bench_deployment.py searches one fixed deployment per distinct deployment of the
    joint space, each composed as hwnas-search composes it."""
    import argparse
    import sys

    from nas.cli._space import search_space
    from tests.nas.cli.helpers import REPO

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bench_deployment as bench
    finally:
        sys.path.remove(str(REPO / "scripts"))
    args = argparse.Namespace(
        runtimes=["onnxruntime", "torch_eager"], graph_optimization=["all", "disable"], precision=["fp32", "int8"]
    )
    args.threads, args.budget, args.data_dir, args.spaces, args.seeds = [1, 2], 5, str(data_dir), ["nb201"], [0]
    jobs = bench.jobs_of(args)
    joint = search_space(bench.compose(bench.overrides_of("nb201", 0, jobs[0]["genes"], args)))
    every = {d.string for d in joint.deployment.every()}
    fixed = set()
    for job in jobs[1:]:
        space = search_space(bench.compose(bench.overrides_of("nb201", 0, job["genes"], args)))
        (deployment,) = {space.deployment_of(space.sample(np.random.default_rng(s))).string for s in range(5)}
        fixed.add(deployment)
    assert fixed == every and len(jobs) == 1 + len(every) == 11


def test_accuracy_as_deployed_from_a_trained_supernet(tmp_path: Path) -> None:
    """objectives=deployed_accuracy_latency: an int8 candidate's accuracy is its int8 file's (the
    trained subnet quantised) on the validation images, with the fp32 accuracy and the drop beside
    it; an fp32 candidate's is its network's inherited accuracy."""
    from nas import Candidate
    from nas.training import InheritedAccuracy, SklearnDigits, SupernetTrainer, UniformSampling

    network_space = NB201Space(channels=4, cells_per_stage=1)
    supernet_dir = tmp_path / "supernet"
    SupernetTrainer(
        network_space.supernet(),
        SklearnDigits(),
        UniformSampling(),
        epochs=1,
        checkpoint_dir=supernet_dir,
        progress=False,
    ).fit()
    run_dir = tmp_path / "run"
    result = run_search(
        *SMALL, "deployment=cpu_stack",
        "deployment.deployment.genes.runtime=[onnxruntime]", "~deployment.deployment.takes.torch_eager",
        "~deployment.deployment.takes.torch_compile", "deployment.deployment.genes.batch_size=[1]",
        "objectives=deployed_accuracy_latency", f"objectives.accuracy.accuracy.checkpoint={supernet_dir}",
        "data=digits", "sampler=random", "budget.n_trials=6", "export.onnx=false", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trials = [r for r in read_csv(run_dir / "trials.csv") if r["state"] == "COMPLETE"]
    inherited = InheritedAccuracy(supernet_dir, SklearnDigits())
    precisions = set()
    for row in trials:
        network = network_space.parse(row["arch"].partition("@")[0])
        fp32 = inherited(Candidate(network, network_space))
        assert float(row["accuracy.fp32"]) == pytest.approx(fp32)
        drop = float(row["accuracy.int8_drop"])
        assert float(row["accuracy"]) == pytest.approx(fp32 - drop)
        int8 = "precision=int8" in row["arch"]
        precisions.add(int8)
        if not int8:
            assert drop == 0
    assert precisions == {True, False}, "six random trials over two precisions drew both"
