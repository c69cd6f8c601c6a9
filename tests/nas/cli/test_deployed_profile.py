"""hwnas-profile deployment=...: networks measured under several deployments into one table of
candidates, one predictor fitted across the deployments, and a deployment search on it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nas.deployment_grid import DeploymentGrid
from nas.fitting import ParsedTable
from nas.tables import BenchmarkTable
from tests.nas.cli.helpers import run_command
from tests.nas.cli.test_profile_cli import TINY

ORT = "runtime=onnxruntime,graph_optimization=all,precision=fp32,threads=1,batch_size=1"
EAGER = "runtime=torch_eager,threads=1,batch_size=8"
DEPLOYED = ("space=nb201", "deployment=cpu_stack")


def deployments(*strings: str) -> str:
    return "deployments=[" + ",".join(f'"{s}"' for s in strings) + "]"


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deployed") / "profile"
    done = run_command(
        "profile", *DEPLOYED, *TINY, "n_archs=6", "selection.pool=20", deployments(ORT, EAGER), f"hydra.run.dir={out}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_every_network_is_measured_under_every_deployment(profile: Path) -> None:
    from nas.cli._space import search_space
    from nas.cli.fit import compose_fit

    space = search_space(compose_fit(*DEPLOYED))
    table = BenchmarkTable.load(profile)
    assert table.devices("latency_ms") == ("cpu_stack",)
    grid = DeploymentGrid.of(space, ParsedTable.parse(space, table).archs)
    assert [d.string for d in grid.deployments] == [ORT, EAGER]
    assert grid.rows.shape == (6, 2) and (grid.rows >= 0).all()
    assert (table.column("latency_ms", "cpu_stack") > 0).all()
    settings = json.loads((profile / "device.json").read_text())["settings"]
    assert {d: s["batch_size"] for d, s in settings["deployments"].items()} == {ORT: 1, EAGER: 8}


def test_a_rerun_measures_nothing_more(profile: Path) -> None:
    again = run_command(
        "profile",
        *DEPLOYED,
        *TINY,
        "n_archs=6",
        "selection.pool=20",
        deployments(ORT, EAGER),
        f"hydra.run.dir={profile}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{ORT}: 6 already measured, 0 to measure" in again.stdout
    assert f"{EAGER}: 6 already measured, 0 to measure" in again.stdout
    assert len(BenchmarkTable.load(profile)) == 12


def test_a_deployment_the_genes_do_not_allow_is_refused_before_measuring(tmp_path: Path) -> None:
    done = run_command(
        "profile", *DEPLOYED, *TINY, "n_archs=2", deployments("runtime=tensorrt"), f"hydra.run.dir={tmp_path}"
    )
    assert done.returncode == 2
    assert "deployments: deployment gene 'runtime' has value 'tensorrt'" in done.stderr
    assert not (tmp_path / "archs.csv").exists()


def test_one_predictor_across_deployments_answers_a_deployment_search(profile: Path, tmp_path: Path) -> None:
    """hwnas-fit on the deployed table, then hwnas-search with that predictor: every front member
    is a deployed candidate, its latency the predictor's, scored against the table where the
    table holds the candidate, with a manifest of how it runs."""
    fit = tmp_path / "fit"
    done = run_command("fit", *DEPLOYED, f"table_dir={profile}", "predictor=gbdt", "n_train=8", f"hydra.run.dir={fit}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "predictor=per_deployment (one per deployment" in done.stdout  # what measured better
    metrics = json.loads((fit / "metrics.json").read_text())
    assert (metrics["space"], metrics["device"], metrics["n_test"]) == ("nb201@cpu_stack", "cpu_stack", 4)
    search = tmp_path / "search"
    done = run_command(
        "search",
        *DEPLOYED,
        "device=predicted",
        f"device.latency={fit}",
        "objectives=params_latency",
        "budget.n_trials=8",
        "++space.instance.channels=4",
        "++space.instance.cells_per_stage=1",
        f"hydra.run.dir={search}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = BenchmarkTable.load(profile)
    with (search / "pareto.csv").open() as handle:
        front = list(csv.DictReader(handle))
    assert front
    for row in front:
        assert "@runtime=" in row["arch"]
        if row["arch"] in table.keys:
            assert float(row["latency_ms.measured"]) == pytest.approx(
                table.value("latency_ms", "cpu_stack", row["arch"])
            )
        else:
            assert row["latency_ms.measured"] == ""
        assert np.isfinite(float(row["latency_ms"]))
        # the front as deployed: how each member runs, from the deployment config's runtimes
        manifest = json.loads((search / row["deployment_manifest"]).read_text())
        network, _, deployment = row["arch"].partition("@")
        assert (manifest["candidate"], manifest["network"]) == (row["arch"], network)
        assert {k: str(v) for k, v in manifest["deployment"].items()} == dict(
            part.split("=") for part in deployment.split(",")
        )
        assert manifest["batch_size"] == manifest["deployment"].get("batch_size", 1)


@pytest.mark.slow
def test_the_predictor_benchmark_s_arms_see_the_same_measurements(tmp_path: Path) -> None:
    """scripts/bench_deployment_predictors.py: for each target deployment, the joint predictor
    trains on the pool networks under the other deployments plus the k target rows the few-shot
    and the alone arms train on, and all three are tested on the same networks."""
    import sys

    from tests.nas.cli.helpers import REPO

    out = tmp_path / "profile"
    done = run_command(
        "profile", *DEPLOYED, *TINY, "n_archs=30", "selection.pool=60", deployments(ORT, EAGER), f"hydra.run.dir={out}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import bench_deployment_predictors as bench
    finally:
        sys.path.remove(str(REPO / "scripts"))
    records = bench.benchmark(out, ks=[5], seeds=[0], n_source=20, joint=["gbdt"], log=lambda _: None)
    assert {r.target for r in records} == {ORT, EAGER}
    for target in (ORT, EAGER):
        arms = {r.arm: r for r in records if r.target == target}
        assert set(arms) == {"per_deployment", "alone_layer_sum", "joint_gbdt"}
        # 30 networks: 20 in the pool (their other deployment's rows), 5 trained on, 5 tested
        assert {r.n_test for r in arms.values()} == {5}
        assert arms["per_deployment"].n_train == arms["joint_gbdt"].n_train == 20 * 1 + 5
        assert arms["alone_layer_sum"].n_train == 5


def test_a_search_on_per_deployment_predictors_offers_only_the_profiled_deployments(
    profile: Path, tmp_path: Path
) -> None:
    """hwnas-fit predictor=per_deployment, then hwnas-search deployment=profiled: the deployments
    come from the profile the predictor was fitted on, so every trial is predicted."""
    fit = tmp_path / "fit"
    done = run_command(
        "fit", *DEPLOYED, f"table_dir={profile}", "predictor=per_deployment", "predictor.min_source_rows=4",
        "n_train=10", f"hydra.run.dir={fit}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "predictor=per_deployment (one per deployment" not in done.stdout
    search = tmp_path / "search"
    done = run_command(
        "search", "space=nb201", "deployment=profiled", f"device.latency={fit}", "objectives=params_latency",
        "budget.n_trials=8", "export.onnx=false", f"hydra.run.dir={search}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with (search / "trials.csv").open() as handle:
        trials = list(csv.DictReader(handle))
    assert len([t for t in trials if not t["reused_from_trial"]]) == 8
    assert all(t["state"] == "COMPLETE" for t in trials)
    assert {t["arch"].partition("@")[2] for t in trials} <= {ORT, EAGER}
