"""hwnas-search end to end: real Hydra runs on the shared tables and on this machine's CPU."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.nas.cli.helpers import REPO, run_command

#: What tests that do not read TensorBoard or report.md leave out (about a second per run; the
#: tests of those outputs ask for them).
QUIET = ("tensorboard=false", "report=false")


def run_search(*overrides: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    given = {o.split("=", 1)[0] for o in overrides}
    quiet = [o for o in QUIET if o.split("=", 1)[0] not in given]
    return run_command("search", *overrides, *quiet, "progress=false", cwd=cwd)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def brute_force_front(rows: list[dict[str, str]], objectives: dict[str, str]) -> set[str]:
    """Architectures of the feasible complete evaluated rows (not repeats answered from the
    storage, whose values are their original's) that no other such row dominates."""
    unique: dict[str, list[float]] = {}
    for r in rows:
        if r["state"] == "COMPLETE" and r["feasible"] == "True" and not r["reused_from_trial"]:
            unique.setdefault(r["arch"], [float(r[n]) for n in objectives])
    sign = np.array([1.0 if d == "minimize" else -1.0 for d in objectives.values()])
    front = set()
    for arch, v in unique.items():
        v = np.array(v) * sign
        dominated = any(np.all(np.array(w) * sign <= v) and np.any(np.array(w) * sign < v) for w in unique.values())
        if not dominated:
            front.add(arch)
    return front


def test_table_device_search_writes_a_consistent_front(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_search(
        "tensorboard=true",
        "report=true",
        "device=raspi4",
        "objectives=accuracy_latency",
        "metrics=none",
        "budget.n_trials=40",
        f"data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = read_csv(run_dir / "trials.csv")
    pareto = read_csv(run_dir / "pareto.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    objectives = summary["objectives"]
    assert objectives == {"accuracy": "maximize", "latency_ms": "minimize"}
    # The budget counts evaluations; repeats (isomorphs included) were answered from the storage.
    evaluated = [r for r in trials if not r["reused_from_trial"]]
    assert len(evaluated) == 40 == summary["trials"]["evaluated"] and summary["trials"]["total"] == len(trials)
    assert {r["arch"] for r in pareto} == brute_force_front(trials, objectives)
    latencies = [float(r["latency_ms"]) for r in pareto]
    assert latencies == sorted(latencies)
    # The values are the published ones: check two rows against the table itself.
    table = {r["arch"]: r for r in read_csv(data_dir / "nb201" / "archs.csv")}
    lat = {r["index"]: r for r in read_csv(data_dir / "nb201" / "latency_ms.csv")}
    for row in pareto[:2]:
        published = table[row["arch"]]
        assert float(row["accuracy"]) == float(published["cifar10_test_acc"])
        assert float(row["latency_ms"]) == float(lat[published["index"]]["raspi4"])
    _check_regret(summary, trials, table, lat)
    listed = json.loads((run_dir / "pareto.json").read_text())
    assert [a["arch"] for a in listed["architectures"]] == [r["arch"] for r in pareto]
    assert summary["hypervolume"] > 0 and set(summary["reference_point"]) == set(objectives)
    for row in pareto:
        model = onnx.load(run_dir / row["onnx"])
        onnx.checker.check_model(model, full_check=True)
        assert float(row["onnx_max_scaled_diff"]) < 1e-4 and row["onnx_error"] == ""
        facts = {p.key: p.value for p in model.metadata_props}  # the file says what it is
        assert facts["hwnas.arch"] == row["arch"] and facts["hwnas.device"] == "raspi4"
        assert float(facts["hwnas.objective.accuracy"]) == float(row["accuracy"])
        assert model.opset_import[0].version == 18
        session = ort.InferenceSession(str(run_dir / row["onnx"]), providers=["CPUExecutionProvider"])
        for batch in (1, 8):  # a dynamic batch axis
            assert session.run(None, {"input": np.zeros((batch, 3, 32, 32), np.float32)})[0].shape == (batch, 10)
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "search.log").is_file()
    _check_tensorboard(run_dir, trials, pareto, summary)
    report = (run_dir / "report.md").read_text()  # readable without TensorBoard
    assert all(f"`{r['arch'].replace('|', chr(92) + '|')}`" in report for r in pareto)
    for name in ("pareto_accuracy_vs_latency_ms.png", "hypervolume.png"):
        assert f"(report/{name})" in report and (run_dir / "report" / name).stat().st_size > 1000


def _check_regret(summary: dict, trials: list[dict], table: dict, lat: dict) -> None:
    """Regret against the whole table (issue 14's definition), recomputed here by brute force
    from the CSV files: budgets at the 10/30/50/70/90th percentiles of every cell's latency."""
    oracle = summary["oracle"]
    assert oracle["architectures"] == 15625 and 0 < oracle["hypervolume_ratio"] <= 1
    regret = summary["regret"]
    assert regret["score"].startswith("accuracy") and regret["cost"].startswith("latency_ms")
    everything = [(float(lat[r["index"]]["raspi4"]), float(r["cifar10_test_acc"])) for r in table.values()]
    np.testing.assert_allclose(regret["budgets"], np.percentile([c for c, _ in everything], [10, 30, 50, 70, 90]))
    returned = {r["arch"] for r in trials if r["state"] == "COMPLETE"} & set(summary_front(summary))
    found = [(float(r["latency_ms"]), float(r["accuracy"])) for r in trials if r["arch"] in returned]
    expected = []
    for budget, value in zip(regret["budgets"], regret["regret"]):
        best = max(acc for cost, acc in everything if cost <= budget)
        fits = [acc for cost, acc in found if cost <= budget]
        expected.append(best - max(fits, default=0.0))
        assert value == pytest.approx(expected[-1])
    assert regret["mean"] == pytest.approx(np.mean(expected))


def summary_front(summary: dict) -> list[str]:
    """The returned architectures of a run, from its pareto.json beside summary.json."""
    return [a["arch"] for a in json.loads((Path(summary["run_dir"]) / "pareto.json").read_text())["architectures"]]


def _check_tensorboard(run_dir: Path, trials: list[dict], pareto: list[dict], summary: dict) -> None:
    """The device's TensorBoard run holds every trial as a step, its live hypervolume ends at
    summary.json's (both against the table's reference point), and HParams has one session per
    complete trial with the returned front marked."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run_dir / "tensorboard" / "raspi4"), size_guidance={"scalars": 0})
    board.Reload()
    assert [e.step for e in board.Scalars("search/evaluations")] == [int(r["number"]) for r in trials]
    assert board.Scalars("search/hypervolume")[-1].value == pytest.approx(
        summary["hypervolume"], rel=1e-6
    )  # TensorBoard keeps float32
    assert board.Scalars("search/front_size")[-1].value == len(pareto)
    assert "pareto/accuracy_vs_latency_ms" in board.Tags()["images"]
    complete = [r for r in trials if r["state"] == "COMPLETE"]
    sessions = sorted((run_dir / "hparams" / "raspi4").iterdir())
    assert [p.name for p in sessions] == [f"trial_{int(r['number']):05d}" for r in complete]
    front = {r["number"] for r in pareto}
    for row, session in list(zip(complete, sessions))[:5]:
        events = EventAccumulator(str(session))
        events.Reload()
        assert events.Scalars("objective/accuracy")[0].value == pytest.approx(float(row["accuracy"]))
        assert events.Scalars("on_front")[-1].value == float(row["number"] in front)


def test_multirun_writes_one_front_per_device(tmp_path: Path, data_dir: Path) -> None:
    result = run_search(
        "-m",
        "device=raspi4,fpga,pixel3",
        "objectives=accuracy_latency",
        "metrics=none",
        "budget.n_trials=12",
        "export.onnx=false",
        "tensorboard=false",
        f"data_dir={data_dir}",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/summary.json"))]
    assert sorted(s["device"] for s in summaries) == ["fpga", "pixel3", "raspi4"]
    for path in tmp_path.glob("*/pareto.csv"):
        assert read_csv(path)


def test_unknown_table_device_lists_the_devices(tmp_path: Path, data_dir: Path) -> None:
    result = run_search(
        "device=table",
        "device.name=raspi5",
        "objectives=accuracy_latency",
        f"data_dir={data_dir}",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode != 0
    assert "raspi5" in result.stderr and "raspi4" in result.stderr and "pixel3" in result.stderr


def test_energy_on_a_device_without_a_meter_is_refused(tmp_path: Path) -> None:
    result = run_search("objectives=synflow_latency_energy", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "energy_mj" in result.stderr and "cpu_onnxruntime_t1" in result.stderr
    assert not (tmp_path / "study.db").exists()


@pytest.mark.slow
def test_default_search_measures_live_and_resumes(tmp_path: Path) -> None:
    """The built-in default (NB201, live onnxruntime latency, synflow), shortened, then resumed."""
    run_dir = tmp_path / "run"
    first = run_search("budget=smoke", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-3000:]
    before = read_csv(run_dir / "trials.csv")
    complete = [r for r in before if r["state"] == "COMPLETE"]
    assert len([r for r in before if not r["reused_from_trial"]]) == 8 and complete
    for r in complete:  # the measurement's spread is kept beside its median
        assert 0 < float(r["latency_ms.min_ms"]) <= float(r["latency_ms"])
        assert float(r["latency_ms.iqr_ms"]) >= 0 and float(r["latency_ms.repeats"]) == 20
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["objectives"] == {"synflow": "maximize", "latency_ms": "minimize"}
    assert summary["device"] == "cpu_onnxruntime_t1_b1_fp32"
    for row in read_csv(run_dir / "pareto.csv"):
        onnx.checker.check_model(onnx.load(run_dir / row["onnx"]), full_check=True)
    again = run_search("budget=smoke", "budget.n_trials=11", f"hydra.run.dir={run_dir}")
    assert again.returncode == 0, again.stderr[-3000:]
    after = read_csv(run_dir / "trials.csv")
    assert len([r for r in after if not r["reused_from_trial"]]) == 11
    keep = ("number", "arch", "synflow", "latency_ms")
    assert [{k: r[k] for k in keep} for r in after[: len(before)]] == [{k: r[k] for k in keep} for r in before]


@pytest.mark.slow
def test_fbnet_searches_live_like_nb201(tmp_path: Path) -> None:
    result = run_search("space=fbnet", "budget.n_trials=4", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    trials = read_csv(tmp_path / "trials.csv")
    assert len(trials) == 4 and all(len(r["arch"].split("|")) == 22 for r in trials)
    for row in read_csv(tmp_path / "pareto.csv"):
        onnx.checker.check_model(onnx.load(tmp_path / row["onnx"]), full_check=True)


@pytest.mark.slow
def test_ofa_searches_with_published_predictor_and_note10_tables(tmp_path: Path, data_dir: Path) -> None:
    result = run_search(
        "space=ofa",
        "device=note10",
        "objectives=ofa_accuracy_latency",
        "budget.n_trials=10",
        f"data_dir={data_dir}",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = read_csv(tmp_path / "trials.csv")
    assert len(trials) == 10 and all(r["state"] == "COMPLETE" for r in trials)
    for r in trials:  # Note10 tables exist for five resolutions only; the device restricts to them
        assert json.loads(r["arch"])["r"] in (160, 176, 192, 208, 224)
        assert 70 < float(r["accuracy"]) < 85 and 5 < float(r["latency_ms"]) < 100
    pareto = read_csv(tmp_path / "pareto.csv")
    assert {r["arch"] for r in pareto} == brute_force_front(trials, {"accuracy": "maximize", "latency_ms": "minimize"})
    for row in pareto:
        onnx.checker.check_model(onnx.load(tmp_path / row["onnx"]), full_check=True)


def test_a_failed_onnx_export_is_recorded_and_the_front_kept(tmp_path: Path, data_dir: Path) -> None:
    """Parity tolerances of zero fail (almost) every file: the search still writes every output,
    exits 0, and names each failure on its row."""
    run_dir = tmp_path / "run"
    result = run_search(
        "device=raspi4",
        "objectives=accuracy_latency",
        "metrics=none",
        "budget.n_trials=12",
        "tensorboard=false",
        "export.parity_rtol=0",
        "export.parity_atol=0",
        f"data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pareto = read_csv(run_dir / "pareto.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    failed = [r for r in pareto if r["onnx_error"]]
    assert failed and summary["onnx_export_failures"] == len(failed)
    for row in failed:
        assert row["onnx"] == "" and row["onnx_error"].startswith("parity at batch ")
        assert float(row["onnx_max_scaled_diff"]) < 1e-5  # judged, and honestly reported
    for row in pareto:
        if not row["onnx_error"]:
            assert (run_dir / row["onnx"]).is_file() and float(row["onnx_max_abs_diff"]) == 0.0


def _table_rows(data_dir: Path, device: str) -> list[tuple[str, float, float, float]]:
    """(arch, accuracy, latency, energy) of every nb201 row, read with the csv module alone."""
    archs = read_csv(data_dir / "nb201" / "archs.csv")
    lat = read_csv(data_dir / "nb201" / "latency_ms.csv")
    energy = read_csv(data_dir / "nb201" / "energy_mj.csv")
    return [
        (a["arch"], float(a["cifar10_test_acc"]), float(la[device]), float(e[device]))
        for a, la, e in zip(archs, lat, energy)
    ]


def test_the_oracle_obeys_the_constraints(tmp_path: Path, data_dir: Path) -> None:
    """The README's constrained table search: the oracle is the best a search under the bound
    could find, so its front, hypervolume and regret budgets all satisfy the bound."""
    run_dir = tmp_path / "run"
    result = run_search(
        "device=pi5_onnx",
        "objectives=accuracy_latency_energy",
        "+constraints.latency_ms.upper=5",
        "budget.n_trials=30",
        "export.onnx=false",
        "tensorboard=false",
        f"data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    oracle = json.loads((run_dir / "summary.json").read_text())["oracle"]
    described = json.loads((run_dir / "columns.json").read_text())
    assert "cifar10_test_acc" in described["accuracy"] and "(percent)" in described["accuracy"]
    assert "milliseconds per inference" in described["latency_ms"]
    assert "millijoules per inference" in described["energy_mj"]
    rows = _table_rows(data_dir, "pi5_onnx")
    allowed = [r for r in rows if r[2] <= 5]
    assert oracle["architectures_before_constraints"] == len(rows)
    assert oracle["architectures"] == len(allowed) < len(rows)
    regret = json.loads((run_dir / "summary.json").read_text())["regret"]
    assert max(regret["budgets"]) <= 5 and regret["allowed_architectures"] == len(allowed)
    # The oracle's front size, by brute force over the allowed rows (3 objectives, O(n^2) in chunks).
    values = np.array([[-acc, lat, en] for _, acc, lat, en in allowed])
    dominated = np.zeros(len(values), dtype=bool)
    for start in range(0, len(values), 512):
        block = values[start : start + 512, None, :]
        dominated[start : start + 512] = (
            np.all(values[None] <= block, axis=2) & np.any(values[None] < block, axis=2)
        ).any(axis=1)
    assert oracle["pareto_size"] == int((~dominated).sum())
    assert 0 < oracle["hypervolume_ratio"] <= 1


def test_a_corrupt_table_cell_is_never_searched(tmp_path: Path, data_dir: Path) -> None:
    """One negative latency in a copy of the table: the search reads it as missing, like hwnas-fit,
    so the oracle is the clean table's less that row, not a front of one impossible network."""
    table = tmp_path / "table"
    table.mkdir()
    (table / "archs.csv").write_bytes((data_dir / "nb201" / "archs.csv").read_bytes())
    lines = (data_dir / "nb201" / "latency_ms.csv").read_text().splitlines()
    column = lines[0].split(",").index("raspi4")
    cells = lines[7].split(",")  # row 6: a slow all-conv-ish cell, on no clean front
    cells[column] = "-0.5"
    lines[7] = ",".join(cells)
    (table / "latency_ms.csv").write_text("\n".join(lines) + "\n")
    summaries = {}
    for name, folder in (("clean", data_dir / "nb201"), ("corrupt", table)):
        run_dir = tmp_path / name
        result = run_search(
            "device=raspi4",
            f"space.table_dir={folder}",
            "objectives=accuracy_latency",
            "metrics=none",
            "budget.n_trials=8",
            "export.onnx=false",
            "tensorboard=false",
            f"data_dir={data_dir}",
            f"hydra.run.dir={run_dir}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        summaries[name] = json.loads((run_dir / "summary.json").read_text())["oracle"]
    assert "line 8: -0.5" in (tmp_path / "corrupt" / "search.log").read_text()
    clean, corrupt = summaries["clean"], summaries["corrupt"]
    assert corrupt["architectures"] == clean["architectures"] - 1
    assert corrupt["pareto_size"] == clean["pareto_size"] and corrupt["pareto_size"] > 1
    assert corrupt["hypervolume"] == pytest.approx(clean["hypervolume"])


@pytest.mark.slow
def test_outputs_explain_themselves_and_flag_unstable_latencies(tmp_path: Path) -> None:
    """columns.json describes every column of trials.csv and pareto.csv (synflow is ln(score),
    constraint columns are violations, ONNX files are untrained); counts are integers; a live
    latency whose spread passes the threshold (here any spread at all) is flagged and counted."""
    run_dir = tmp_path / "run"
    result = run_search(
        "budget.n_trials=4",
        "device.latency_ms.unstable_iqr_ratio=1e-12",
        "+constraints.params.upper=1e9",
        "tensorboard=false",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = read_csv(run_dir / "trials.csv")
    pareto = read_csv(run_dir / "pareto.csv")
    described = json.loads((run_dir / "columns.json").read_text())
    assert set(trials[0]) | set(pareto[0]) == set(described)
    assert "ln(synflow score)" in described["synflow"]
    assert "<= 0 means the bound holds" in described["constraint:params<=1e+09"]
    assert "untrained" in described["onnx"]
    for row in trials:
        assert row["params"].isdigit() and row["flops"].isdigit() and row["latency_ms.repeats"] == "20"
        assert row["latency_ms.unstable"] == "True"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["unstable_measurements"] == 4
    log = (run_dir / "search.log").read_text()
    assert "4 of 4 measured trials have an unstable latency" in log
    # Within NSGA-II's random start-up (population 20) the search is random: said so.
    assert "within NSGAIISampler's random start-up of 20 trials" in log
    assert summary["sampler_startup_trials"] == 20


def test_a_study_is_tied_to_its_device(tmp_path: Path, data_dir: Path) -> None:
    """A pixel3 search resumed into a raspi4 study's name, or run into a raspi4 run directory, is
    refused with both named; nothing of the raspi4 run changes."""
    first = tmp_path / "raspi4"
    common = (
        "objectives=accuracy_latency",
        "metrics=none",
        "budget.n_trials=6",
        "export.onnx=false",
        "tensorboard=false",
        f"data_dir={data_dir}",
    )
    assert run_search("device=raspi4", *common, f"hydra.run.dir={first}").returncode == 0
    before = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file() and p.suffix in (".csv", ".json")}
    into_study = run_search(
        "device=pixel3",
        "study_name=nb201-raspi4-accuracy+latency_ms-surrogate-s0",
        "storage=url",
        f"storage.url=sqlite:///{first / 'study.db'}",
        *common,
        f"hydra.run.dir={tmp_path / 'pixel3'}",
    )
    assert into_study.returncode != 0
    assert "table latency_ms[raspi4]" in into_study.stderr and "table latency_ms[pixel3]" in into_study.stderr
    assert not (tmp_path / "pixel3" / "study.json").exists()  # refused before claiming its directory
    into_dir = run_search("device=pixel3", *common, f"hydra.run.dir={first}")
    assert into_dir.returncode != 0
    assert "'raspi4'" in into_dir.stderr and "device" in into_dir.stderr and "hydra.run.dir" in into_dir.stderr
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.name in before} == before
    # A run directory from before study.json existed is judged by its summary.json.
    (first / "study.json").unlink()
    legacy = run_search("device=pixel3", *common, f"hydra.run.dir={first}")
    assert legacy.returncode != 0 and "'raspi4'" in legacy.stderr
    # The same settings resume.
    assert run_search("device=raspi4", *common, f"hydra.run.dir={first}").returncode == 0


def test_a_non_finite_parity_figure_is_written_as_null(tmp_path: Path) -> None:
    """A network whose output is NaN fails parity with NaN figures; JSON has no NaN, so they are
    written as null beside the reason, and pareto.json is still written."""
    import torch
    from omegaconf import OmegaConf

    from nas.cli._onnx import export_front
    from nas.results import write_json
    from search_spaces import NB201Space

    class NanHead(NB201Space):
        def build(self, arch):  # noqa: ANN001, ANN202
            model = super().build(arch)
            with torch.no_grad():
                [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1].bias.fill_(float("nan"))
            return model

    space = NanHead(num_classes=10)
    front = [{"arch": space.sample(np.random.default_rng(0)).string}]
    cfg = OmegaConf.create({"dynamo": False, "parity_rtol": 1e-4, "parity_atol": 1e-5})
    assert export_front(space, front, tmp_path / "onnx", cfg) == 1
    row = front[0]
    assert row["onnx"] is None and row["onnx_max_abs_diff"] is None and row["onnx_error"].startswith("parity")
    write_json(tmp_path / "pareto.json", {"architectures": front})
    assert json.loads((tmp_path / "pareto.json").read_text())["architectures"][0]["onnx_max_scaled_diff"] is None


def test_a_resumed_front_leaves_no_onnx_file_of_an_architecture_it_dropped(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from nas.cli._onnx import export_front
    from search_spaces import NB201Space

    space = NB201Space(num_classes=10, channels=4, cells_per_stage=1)
    rng = np.random.default_rng(0)
    first, second = [space.sample(rng).string for _ in range(2)], space.sample(rng).string
    cfg = OmegaConf.create({"dynamo": False, "parity_rtol": 1e-4, "parity_atol": 1e-5})
    assert export_front(space, [{"arch": a} for a in first], tmp_path / "onnx", cfg) == 0
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2
    (tmp_path / "onnx" / "notes.onnx").write_text("a user's file")  # not one of the front's: kept
    front = [{"arch": second}]
    assert export_front(space, front, tmp_path / "onnx", cfg) == 0
    assert sorted(p.name for p in (tmp_path / "onnx").glob("*.onnx")) == sorted(
        ["notes.onnx", Path(front[0]["onnx"]).name]
    )


def test_sigterm_writes_what_finished_and_the_same_command_resumes(tmp_path: Path, data_dir: Path) -> None:
    """A scheduler's SIGTERM mid-search: the finished trials are written out (trials.csv, the
    front, summary.json saying it was interrupted), the exit status is 130, and rerunning the
    command resumes the study."""
    import signal
    import time

    import optuna

    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "nas.cli.search", "device=raspi4", "objectives=synflow_latency", "metrics=none",
        "export.onnx=false", f"data_dir={data_dir}", f"hydra.run.dir={run_dir}", "progress=false",
    ]  # fmt: skip
    process = subprocess.Popen([*command, "budget.n_trials=5000"], cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    complete = 0
    while complete < 5 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        try:
            study = optuna.load_study(study_name=None, storage=f"sqlite:///{run_dir / 'study.db'}")
            complete = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
        except Exception:  # noqa: BLE001 - the database is not created yet
            continue
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-3000:]
    trials = read_csv(run_dir / "trials.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is True and len([r for r in trials if r["state"] == "COMPLETE"]) >= 5
    assert not [r for r in trials if r["state"] == "RUNNING"]  # the trial in progress was finished first
    evaluated = summary["trials"]["evaluated"]
    resumed = subprocess.run([*command, f"budget.n_trials={evaluated + 3}"], cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["interrupted"] is False and summary["trials"]["evaluated"] == evaluated + 3


def test_a_sampled_table_is_refused_before_searching_naming_the_way_to_search_it(
    tmp_path: Path, data_dir: Path
) -> None:
    """FBNet's table holds 5,000 of ~1e21 networks: every trial used to fail, 20 in a row ended
    the search with a traceback."""
    result = run_search("space=fbnet", "device=pixel3", f"data_dir={data_dir}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "values for 5,000 of the" in result.stderr and "device=fitted" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "trials.csv").exists()


def test_an_objective_among_the_recorded_metrics_is_recorded_once(tmp_path: Path) -> None:
    """synflow_params optimises params, which metrics=params_flops records too: it used to be
    refused as a repeated name."""
    result = run_search(
        "objectives=synflow_params", "budget.n_trials=3", "export.onnx=false", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    header = (tmp_path / "trials.csv").read_text().splitlines()[0].split(",")
    assert header.count("params") == 1 and "flops" in header
