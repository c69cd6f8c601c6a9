"""Searching on predictors: device=fitted (zero-training) and device=predicted (hwnas-fit's files),
interval bounds, and the returned front scored against the table the predictor was fitted on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.nas.cli.test_fit_cli import run_fit
from tests.nas.cli.test_search_cli import read_csv, run_search

QUICK = ("metrics=none", "export.onnx=false", "tensorboard=false")


def table_column(data_dir: Path, metric: str, device: str) -> dict[str, float]:
    """arch -> value of one device column, read straight from the CSV files."""
    index = {r["index"]: r["arch"] for r in read_csv(data_dir / "nb201" / "archs.csv")}
    return {index[r["index"]]: float(r[device]) for r in read_csv(data_dir / "nb201" / f"{metric}.csv") if r[device]}


@pytest.fixture(scope="module")
def raspi4_fit(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """hwnas-fit's run directory for nb201 raspi4 latency on 50 rows, seed 0 (its default predictor)."""
    run_dir = tmp_path_factory.mktemp("fit") / "raspi4"
    result = run_fit("device=raspi4", "n_train=50", "seed=0", f"data_dir={data_dir}", f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_a_fitted_device_fits_as_hwnas_fit_does_and_scores_its_front_on_the_table(
    tmp_path: Path, data_dir: Path, raspi4_fit: Path
) -> None:
    run_dir = tmp_path / "run"
    result = run_search(
        "device=fitted",
        "device.name=raspi4",
        "device.n_train=50",
        "objectives=synflow_latency",
        "budget.n_trials=30",
        *QUICK,
        f"data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The predictor is hwnas-fit's: the same rows, the same predictions of every other row.
    fitted = run_dir / "fitted" / "latency_ms"
    assert read_csv(fitted / "test_predictions.csv") == read_csv(raspi4_fit / "test_predictions.csv")
    assert json.loads((fitted / "metrics.json").read_text())["n_train"] == 50
    # The search saw predictions; the front is scored on the published column.
    published = table_column(data_dir, "latency_ms", "raspi4")
    front = read_csv(run_dir / "pareto.csv")
    assert front and all(float(r["latency_ms.measured"]) == published[r["arch"]] for r in front)
    assert any(float(r["latency_ms"]) != published[r["arch"]] for r in front)
    summary = json.loads((run_dir / "summary.json").read_text())
    agreement = summary["measured"]["objectives"]["latency_ms"]
    measured = np.array([published[r["arch"]] for r in front])
    predicted = np.array([float(r["latency_ms"]) for r in front])
    assert agreement["n_measured"] == len(front)
    assert agreement["mape"] == pytest.approx(np.mean(np.abs(predicted - measured) / measured))
    # Regret, by brute force: the synflow search is judged on the table's accuracy and latency.
    accuracy = {r["arch"]: float(r["cifar10_test_acc"]) for r in read_csv(data_dir / "nb201" / "archs.csv")}
    regret = summary["regret"]
    budgets = np.percentile(list(published.values()), [10, 30, 50, 70, 90])
    np.testing.assert_allclose(regret["budgets"], budgets)
    for budget, value in zip(budgets, regret["regret"]):
        best = max(accuracy[a] for a, c in published.items() if c <= budget)
        found = max((accuracy[r["arch"]] for r in front if published[r["arch"]] <= budget), default=0.0)
        assert value == pytest.approx(best - found)
    assert "cifar10_test_acc" in regret["score"] and regret["score"].startswith("synflow")


def test_a_predicted_device_answers_from_hwnas_fit_files(tmp_path: Path, data_dir: Path, raspi4_fit: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_search(
        "device=predicted",
        f"device.latency={raspi4_fit}",
        "objectives=accuracy_latency",
        "budget.n_trials=30",
        *QUICK,
        f"data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["device"] == "raspi4" and summary["study_name"] == "nb201-raspi4-accuracy+latency_ms-surrogate-s0"
    # Latencies are the fitted predictor's: equal to what hwnas-fit predicted for the same rows.
    predicted = {r["arch"]: float(r["predicted"]) for r in read_csv(raspi4_fit / "test_predictions.csv")}
    # (a repeat's values are its original's: an isomorph answered from the storage)
    trials = [r for r in read_csv(run_dir / "trials.csv") if r["arch"] in predicted and not r["reused_from_trial"]]
    assert trials and all(float(r["latency_ms"]) == pytest.approx(predicted[r["arch"]], rel=1e-12) for r in trials)
    published = table_column(data_dir, "latency_ms", "raspi4")
    assert all(float(r["latency_ms.measured"]) == published[r["arch"]] for r in read_csv(run_dir / "pareto.csv"))


def test_a_predictor_of_another_space_metric_or_device_is_refused(
    tmp_path: Path, data_dir: Path, raspi4_fit: Path
) -> None:
    other_space = run_search("space=fbnet", "device=predicted", f"device.latency={raspi4_fit}", f"data_dir={data_dir}")
    assert other_space.returncode != 0
    assert "fitted for space 'nb201'" in other_space.stderr and "space 'fbnet'" in other_space.stderr
    as_energy = run_search(
        "device=predicted",
        f"device.latency={raspi4_fit}",
        f"device.energy={raspi4_fit}",
        "objectives=synflow_latency_energy",
        f"data_dir={data_dir}",
    )
    assert as_energy.returncode != 0 and "predicts latency_ms, not energy_mj" in as_energy.stderr
    energy_dir = tmp_path / "energy"
    fitted = run_fit(
        "device=pi5_onnx",
        "metric=energy_mj",
        "predictor=layer_sum",
        "n_train=50",
        f"data_dir={data_dir}",
        f"hydra.run.dir={energy_dir}",
    )
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    two_devices = run_search(
        "device=predicted",
        f"device.latency={raspi4_fit}",
        f"device.energy={energy_dir}",
        "objectives=synflow_latency_energy",
        f"data_dir={data_dir}",
        f"hydra.run.dir={tmp_path / 'mixed'}",
    )
    assert two_devices.returncode != 0
    fingerprints = [
        json.loads((d / "metrics.json").read_text())["device_fingerprint"] for d in (raspi4_fit, energy_dir)
    ]
    assert "two devices" in two_devices.stderr and all(f in two_devices.stderr for f in fingerprints)


def test_a_bound_on_the_upper_interval_holds_when_measured_more_often(tmp_path: Path, data_dir: Path) -> None:
    """The same fitted search with the bound on the predicted value and on its upper 90% end: every
    returned architecture obeys its bound as predicted, and summary.json counts, from the table,
    those that break it when measured (checked here by brute force)."""
    published = table_column(data_dir, "latency_ms", "raspi4")
    broken = {}
    for bound in ("value", "upper90"):
        run_dir = tmp_path / bound
        result = run_search(
            "device=fitted",
            "device.name=raspi4",
            "objectives=accuracy_latency",
            "+constraints.latency_ms.upper=12",
            f"+constraints.latency_ms.bound={bound}",
            "budget.n_trials=60",
            "sampler=nsga2",  # the bound, not the sampler, is under test
            *QUICK,
            f"data_dir={data_dir}",
            f"hydra.run.dir={run_dir}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        column = "latency_ms" if bound == "value" else "latency_ms.upper90"
        front = read_csv(run_dir / "pareto.csv")
        assert front and all(float(r[column]) <= 12 for r in front)
        if bound == "upper90":
            assert all(float(r["latency_ms.upper90"]) >= float(r["latency_ms"]) for r in front)
        name = f"{column}<=12"
        counted = json.loads((run_dir / "summary.json").read_text())["measured"]["constraints"][name]
        broken[bound] = sum(published[r["arch"]] > 12 for r in front)
        assert counted["broken_when_measured"] == broken[bound] and counted["n_measured"] == len(front)


@pytest.mark.parametrize(
    ("bound", "message"),
    [("upper80", "calibrated to hold 90%"), ("upper", "upper<percent>"), ("upper90", "gives no intervals")],
)
def test_interval_bounds_that_cannot_hold_are_refused(bound: str, message: str, tmp_path: Path, data_dir: Path) -> None:
    predictor = ["predictor=layer_sum"] if message == "gives no intervals" else []
    result = run_search(
        "device=fitted",
        "device.name=raspi4",
        *predictor,
        "+constraints.latency_ms.upper=5",
        f"+constraints.latency_ms.bound={bound}",
        f"data_dir={data_dir}",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]


def test_few_labels_predict_the_accuracy_and_the_table_scores_the_front(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_search(
        "objectives=few_label_latency",
        "proxy@objectives.accuracy.predictor.scores.members=[params,flops]",
        "objectives.accuracy.n_labels=20",
        "device=raspi4",
        "budget.n_trials=8",
        *QUICK,
        f"data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = {r["arch"]: float(r["cifar10_test_acc"]) for r in read_csv(data_dir / "nb201" / "archs.csv")}
    front = read_csv(run_dir / "pareto.csv")
    assert front and all(float(r["accuracy.measured"]) == accuracy[r["arch"]] for r in front)
    assert any(float(r["accuracy"]) != accuracy[r["arch"]] for r in front)
