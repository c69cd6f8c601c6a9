"""hwnas-compare on a real sweep: groups, their spread recomputed from each run's summary.json."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nas.cli.test_search_cli import read_csv, run_search

REPO = Path(__file__).resolve().parents[3]


def test_a_sweep_over_samplers_and_seeds_compares_by_sampler(tmp_path: Path, data_dir: Path) -> None:
    sweep = tmp_path / "sweep"
    result = run_search(
        "-m",
        "device=raspi4",
        "objectives=accuracy_latency",
        "metrics=none",
        "sampler=random,mutation",
        "seed=0,1",
        "budget.n_trials=12",
        "export.onnx=false",
        "tensorboard=false",
        f"data_dir={data_dir}",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "compare"
    compared = subprocess.run(
        [sys.executable, "-m", "nas.cli.compare", f"runs=[{sweep}]", f"hydra.run.dir={out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compared.returncode == 0, compared.stderr[-3000:]
    rows = {r["sampler"]: r for r in read_csv(out / "compare.csv")}
    assert sorted(rows) == ["MutationSampler", "RandomSampler"]
    for sampler, row in rows.items():
        summaries = [
            json.loads(p.read_text())
            for p in sweep.glob("*/summary.json")
            if sampler.lower().startswith(p.parent.name.split("sampler=")[1].split(",")[0])
        ]
        assert len(summaries) == int(row["runs"]) == 2 and row["seeds"] == "0 1"
        regrets = [s["regret"]["mean"] for s in summaries]
        assert float(row["mean_regret_mean"]) == pytest.approx(statistics.fmean(regrets))
        assert float(row["mean_regret_std"]) == pytest.approx(statistics.stdev(regrets))
        assert float(row["hypervolume_max"]) == pytest.approx(max(s["hypervolume"] for s in summaries))
    assert "(compare/fronts_raspi4.png)" in (out / "compare.md").read_text()
    assert (out / "compare" / "fronts_raspi4.png").stat().st_size > 1000


def test_a_directory_without_searches_is_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nas.cli.compare", f"runs=[{tmp_path}]", f"hydra.run.dir={tmp_path / 'out'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and str(tmp_path) in result.stderr and "no search run" in result.stderr
