"""hwnas-pipeline end to end: a shared NB201 table column plays the device; a SIGKILL in any stage
loses nothing; a short live run on this CPU."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.nas.cli.helpers import REPO, run_command

# Table accuracy (a lookup) keeps trials cheap; the device's latency is fitted, searched on,
# re-measured (looked up, counted) and refitted as on real hardware.
SMALL = (
    "device=raspi4",
    "objectives=accuracy_latency",
    "n_profile=16",
    "budget.n_trials=20",
    "sampler=nsga2",  # accuracy_latency's own default is the surrogate; NSGA-II's start-up is cheaper
    "sampler.population_size=8",
    "predictor=layer_sum",
    "max_rounds=2",
    "hv_tolerance=0",
    "progress=false",
)
# Runs the loop in-process with a progress hook that SIGKILLs it at (stage, round, count): a
# real kill at an exact point inside the stage, after that many durable writes (-1: the
# stage's work done, its marker not yet written).
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from hydra import compose, initialize_config_dir
    from nas.cli import CONFIG_DIR
    from nas.cli.pipeline import run

    stage, round_, count, run_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("pipeline", overrides=sys.argv[5:])

    def kill(at_stage, at_round, at_count):
        if (at_stage, at_round, at_count) == (stage, round_, count):
            os.kill(os.getpid(), signal.SIGKILL)

    run(cfg, run_dir, kill)
    """
)


def run_pipeline(run_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_command("pipeline", *overrides, f"hydra.run.dir={run_dir}")


def killed_at(run_dir: Path, stage: str, round_: int, count: int, *overrides: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", KILLER, stage, str(round_), str(count), str(run_dir), *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == -9, f"not killed at {stage} {round_} {count}: {result.stderr[-3000:]}"


def profile_rows(run_dir: Path) -> list[list[str]]:
    with (run_dir / "profile" / "archs.csv").open() as handle:
        return list(csv.reader(handle))[1:]


def trials(journal: Path) -> list[tuple[Any, ...]]:
    """(number, state, params, values) of every finished trial of a round's study, in order."""
    import optuna

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    return [(t.number, t.state.name, t.params, t.values) for t in study.get_trials() if t.state.is_finished()]


def without_timings(value: Any) -> Any:
    """summary.json less what depends on the clock or on the directory."""
    if isinstance(value, dict):
        return {
            k: without_timings(v)
            for k, v in value.items()
            if k not in ("stage_s", "wall_time_s_this_run", "run_dir", "directory")
        }
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("pipeline") / "reference"
    result = run_pipeline(run_dir, *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_a_table_column_plays_the_device_through_the_whole_loop(reference_run: Path, data_dir: Path) -> None:
    from nas.tables import BenchmarkTable

    summary = json.loads((reference_run / "summary.json").read_text())
    assert summary["device"] == "raspi4" and summary["bench"] == "TableBench" and summary["rounds_run"] == 2
    assert summary["stop_reason"] == "max_rounds=2 reached" and summary["export"]["onnx_export_failures"] == 0
    for k, entry in enumerate(summary["rounds"], start=1):
        assert {"fit.json", "search.json", "measure.json", "report.json"} <= {
            p.name for p in (reference_run / "rounds" / str(k)).iterdir()
        }
        assert entry["search_trials"] == 20 and entry["front_size"] >= 1
        assert set(entry["predicted_vs_measured"]["latency_ms"]) >= {"spearman", "mape"}
        assert entry["hypervolume_measured"] > 0
    answers = [entry["device_answers"] for entry in summary["rounds"]]
    assert summary["device_answers"] == 16 + sum(answers) == len(profile_rows(reference_run))
    # every "measurement" is the table's own value
    table = BenchmarkTable.load(data_dir / "nb201")
    truth = table.column("latency_ms", "raspi4")
    for row in summary["final_front"]:
        assert row["latency_ms"] == pytest.approx(float(truth[table.lookup(row["arch"])]), rel=1e-5)
        assert "latency_ms_predicted" in row
    final = list(csv.DictReader((reference_run / "final" / "pareto.csv").open()))
    assert len(final) == len(summary["final_front"]) and all(
        (reference_run / "final" / r["onnx"]).is_file() for r in final
    )
    # Each round's search is scored on the table playing the device, as a device=fitted search is:
    # its front's measured latencies are the column's, and summary.json carries regret.
    for k in (1, 2):
        search_dir = reference_run / "rounds" / str(k) / "search"
        searched = json.loads((search_dir / "summary.json").read_text())
        assert searched["measured"]["objectives"]["latency_ms"]["n_measured"] == searched["pareto_size"]
        assert len(searched["regret"]["regret"]) == 5 and searched["regret"]["mean"] >= 0
        for row in csv.DictReader((search_dir / "pareto.csv").open()):
            assert float(row["latency_ms.measured"]) == float(truth[table.lookup(row["arch"])])
    # TensorBoard: per round the hypervolumes of summary.json and the front's parity
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(reference_run / "tensorboard"))
    board.Reload()
    measured = [(e.step, e.value) for e in board.Scalars("pipeline/hypervolume_measured")]
    assert measured == [
        (k, pytest.approx(e["hypervolume_measured"], rel=1e-6)) for k, e in enumerate(summary["rounds"], 1)
    ]
    assert [e.step for e in board.Images("parity/front latency_ms")] == [1, 2]
    # round 2 started from round 1's front
    first_front = json.loads((reference_run / "rounds" / "1" / "search.json").read_text())["rows"]
    round_two = list(csv.DictReader((reference_run / "rounds" / "2" / "search" / "trials.csv").open()))
    assert [r["arch"] for r in round_two[: len(first_front)]] == [r["arch"] for r in first_front]


def test_a_rerun_of_a_finished_run_redoes_nothing_and_other_settings_are_refused(
    reference_run: Path, tmp_path: Path
) -> None:
    before = (reference_run / "summary.json").read_text()
    again = run_pipeline(reference_run, *SMALL)
    assert again.returncode == 0, again.stderr[-3000:]
    assert without_timings(json.loads(before)) == without_timings(
        json.loads((reference_run / "summary.json").read_text())
    )
    assert "round 0: profile done before" in again.stdout + again.stderr
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(reference_run / "tensorboard"))
    board.Reload()  # the rerun added no round: no step twice
    assert [e.step for e in board.Scalars("pipeline/hypervolume_measured")] == [1, 2]
    refused = run_pipeline(reference_run, *SMALL, "n_profile=17")
    assert refused.returncode != 0 and "n_profile" in refused.stderr


# (stage, round, count): a kill after that many durable writes of the stage (-1: after its work)
KILLS = [
    ("profile", 0, 5),
    ("fit", 1, -1),
    ("search", 1, 7),
    ("measure", 1, 1),
    ("report", 2, -1),
    ("export", 2, -1),
]


@pytest.mark.parametrize(
    ("stage", "round_", "count"),
    [pytest.param(*kill, marks=[] if kill[0] == "search" else pytest.mark.slow, id=kill[0]) for kill in KILLS],
)
def test_a_kill_in_any_stage_loses_nothing(
    stage: str, round_: int, count: int, reference_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    killed_at(run_dir, stage, round_, count, *SMALL)
    assert not (run_dir / "rounds" / str(round_) / f"{stage}.json").exists()  # killed inside the stage
    rows = profile_rows(run_dir)
    study = run_dir / "rounds" / str(round_) / "search" / "journal.log"
    kept = trials(study) if study.is_file() else []
    if stage == "search":
        assert len(kept) == count  # the trials told before the kill
    resumed = run_pipeline(run_dir, *SMALL)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert profile_rows(run_dir)[: len(rows)] == rows  # no measured row lost or re-measured
    if kept:
        assert trials(study)[: len(kept)] == kept
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rounds_run"] == 2 and summary["export"]["rows"] == len(summary["final_front"])
    assert summary["device_answers"] == len(profile_rows(run_dir))  # each answer counted once
    if stage != "search":
        # a resumed search asks a fresh sampler (its generator restarts), so only there may the
        # trials after the kill differ from an unbroken run's; everywhere else the run is the same
        reference = json.loads((reference_run / "summary.json").read_text())
        assert without_timings(summary)["rounds"] == without_timings(reference)["rounds"]
        assert summary["final_front"] == reference["final_front"]


@pytest.mark.slow
def test_a_short_live_run_on_this_cpu(tmp_path: Path) -> None:
    run_dir = tmp_path / "live"
    result = run_pipeline(
        run_dir,
        "+space.instance.channels=4",
        "+space.instance.cells_per_stage=1",
        "device.latency_ms.warmup=1",
        "device.latency_ms.repeats=3",
        "n_profile=8",
        "budget.n_trials=8",
        "sampler.population_size=4",
        "predictor=layer_sum",
        "max_rounds=2",
        "progress=false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["bench"] == "LiveBench" and summary["device"] == "cpu_onnxruntime_t1_b1_fp32"
    assert all(row["latency_ms"] > 0 for row in summary["final_front"])
    device = json.loads((run_dir / "profile" / "device.json").read_text())
    assert device["device"]["fingerprint"] == summary["device_fingerprint"]
    assert device["settings"]["repeats"] == 3 and "round 1: front of" in (run_dir / "pipeline.log").read_text()


def compose_pipeline(*overrides: str):  # noqa: ANN201 - DictConfig
    from hydra import compose, initialize_config_dir

    from nas.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("pipeline", overrides=list(overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("device=note10", "space=ofa"), "device 'note10' has no `bench`"),
        (
            ("device=raspi4", "objectives=synflow_latency_energy"),
            r"objectives \['energy_mj'\] cannot be measured on 'raspi4'",
        ),
        (("device=raspi4", "objectives=synflow_params"), "hold no device metric"),
    ],
)
def test_what_the_loop_cannot_measure_is_refused_before_anything_runs(
    overrides: tuple[str, ...], message: str, data_dir: Path
) -> None:
    from nas.cli.pipeline import build_bench, measured_objectives

    cfg = compose_pipeline(*overrides, f"data_dir={data_dir}")
    with pytest.raises(ValueError, match=message):
        measured_objectives(cfg, build_bench(cfg))
