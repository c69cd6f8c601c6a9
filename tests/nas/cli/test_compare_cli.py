"""hwnas-compare on a real sweep: groups, their spread recomputed from each run's summary.json."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from tests.nas.cli.helpers import run_command
from tests.nas.cli.test_search_cli import read_csv, run_search


def test_a_sweep_over_devices_samplers_and_seeds_compares_by_setting(tmp_path: Path, data_dir: Path) -> None:
    """A multirun through the joblib launcher (two jobs at once), its folders named by every swept
    value, then hwnas-compare on the sweep's directory."""
    sweep = tmp_path / "sweep"
    result = run_search(
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "device=raspi4,fpga",
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
    compared = run_command("compare", f"runs=[{sweep}]", f"hydra.run.dir={out}", timeout_s=300)
    assert compared.returncode == 0, compared.stderr[-3000:]
    folders = sorted(p.name.split("_", 1)[1] for p in sweep.iterdir() if p.is_dir())
    assert folders == sorted(
        f"device={d},sampler={s},seed={n}" for d in ("raspi4", "fpga") for s in ("random", "mutation") for n in (0, 1)
    )
    rows = {(r["device"], r["sampler"]): r for r in read_csv(out / "compare.csv")}
    assert len(rows) == 4
    for (device, sampler), row in rows.items():
        option = sampler.removesuffix("Sampler").lower()
        summaries = [
            json.loads(p.read_text()) for p in sweep.glob(f"*_device={device},sampler={option},seed=*/summary.json")
        ]
        assert len(summaries) == int(row["runs"]) == 2 and row["seeds"] == "0 1"
        regrets = [s["regret"]["mean"] for s in summaries]
        assert float(row["mean_regret_mean"]) == pytest.approx(statistics.fmean(regrets))
        assert float(row["mean_regret_std"]) == pytest.approx(statistics.stdev(regrets))
        assert float(row["hypervolume_max"]) == pytest.approx(max(s["hypervolume"] for s in summaries))
    for device in ("raspi4", "fpga"):
        assert f"(compare/fronts_{device}.png)" in (out / "compare.md").read_text()
        assert (out / "compare" / f"fronts_{device}.png").stat().st_size > 1000


def test_the_slurm_launcher_config_extends_submitits(tmp_path: Path) -> None:
    result = run_search("--cfg", "hydra", "hydra/launcher=slurm", "hydra.launcher.partition=cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "_target_: hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in result.stdout
    assert "partition: cpu" in result.stdout and "cpus_per_task: 2" in result.stdout


def test_a_directory_without_searches_is_named(tmp_path: Path) -> None:
    result = run_command("compare", f"runs=[{tmp_path}]", f"hydra.run.dir={tmp_path / 'out'}", timeout_s=300)
    assert result.returncode != 0 and str(tmp_path) in result.stderr and "no search run" in result.stderr
