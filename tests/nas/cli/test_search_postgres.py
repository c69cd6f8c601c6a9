"""The README's shared-study command: hwnas-search workers on one PostgreSQL study, for real."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import pytest

from tests.nas.test_search import assert_one_budget_split_without_repeats

REPO = Path(__file__).resolve().parents[3]
BUDGET = 40


def search_command(url: str, data_dir: Path, run_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "nas.cli.search",
        "storage=url",
        f"storage.url={url}",
        "device=raspi4",
        "objectives=accuracy_latency",
        "metrics=none",
        f"budget.n_trials={BUDGET}",
        "export.onnx=false",
        "tensorboard=false",
        "progress=false",
        f"data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
    ]


@pytest.mark.slow
def test_two_workers_on_the_readme_postgresql_url_stop_together_at_the_budget(
    postgres_url: str, data_dir: Path, tmp_path: Path
) -> None:
    workers = [
        subprocess.Popen(
            [*search_command(postgres_url, data_dir, tmp_path / f"worker{i}"), f"worker={i}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    # Exactly one worker (the one that ran the last trial) wrote the outputs; the other says so.
    written = [i for i in range(2) if (tmp_path / f"worker{i}" / "summary.json").is_file()]
    assert len(written) == 1
    other = json.loads((tmp_path / f"worker{1 - written[0]}" / "worker.json").read_text())
    summary = json.loads((tmp_path / f"worker{written[0]}" / "summary.json").read_text())
    assert summary["study_name"] == other["study_name"] == "nb201-raspi4-accuracy+latency_ms-surrogate-s0"
    study = optuna.load_study(study_name=summary["study_name"], storage=postgres_url)
    assert_one_budget_split_without_repeats(study, BUDGET)
    last = max((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.number)
    assert summary["trials"]["evaluated"] == BUDGET
    assert last.user_attrs["worker"].split(":")[1] == str(workers[written[0]].pid)
    # The database's password is in no file of either run directory (.hydra's saved configs included).
    password = urlsplit(postgres_url).password
    assert password
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".json", ".log", ".csv"):
            assert f":{password}@" not in path.read_text(errors="replace"), path


@pytest.mark.slow
def test_a_missing_driver_reaches_the_terminal_with_its_fix(data_dir: Path, tmp_path: Path) -> None:
    if importlib.util.find_spec("pg8000") is not None:
        pytest.skip("pg8000 is installed here; this test needs a driver that is not")
    url = "postgresql+pg8000://user:secret@127.0.0.1/hwnas"
    result = subprocess.run(
        search_command(url, data_dir, tmp_path), cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    assert "'pg8000' cannot be imported" in result.stderr and "pip install pg8000" in result.stderr
