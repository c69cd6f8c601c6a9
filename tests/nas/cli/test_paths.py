"""Where the commands read tables and write outputs does not depend on the working directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig

from nas.cli import CONFIG_DIR
from tests.nas.cli.helpers import REPO, run_command

DEFAULT_DATA = REPO.parent / "shared" / "data"
COMMANDS = ["search", "fit", "profile", "train_supernet"]
TABLE_SEARCH = (
    "device=raspi4",
    "objectives=accuracy_latency",
    "metrics=none",
    "budget.n_trials=2",
    "export.onnx=false",
    "tensorboard=false",
    "progress=false",
)


def without_data_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "HWNAS_DATA"}


def run(command: str, *overrides: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_command(command, *overrides, cwd=cwd, env=env)


@pytest.mark.parametrize("command", COMMANDS)
def test_data_and_output_folders_hang_off_the_checkout_not_the_cwd(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HWNAS_DATA", raising=False)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(command, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # run.dir interpolates the chosen options
    assert cfg.data_dir == str(DEFAULT_DATA.resolve())
    assert Path(cfg.hydra.run.dir).is_relative_to(REPO) and Path(cfg.hydra.sweep.dir).is_relative_to(REPO)

    monkeypatch.setenv("HWNAS_DATA", "tables")  # a relative setting is taken from the working directory
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        assert compose(command).data_dir == str(tmp_path.resolve() / "tables")


@pytest.mark.slow
def test_a_search_from_elsewhere_finds_the_default_tables_and_logs_its_run_dir(tmp_path: Path) -> None:
    if not (DEFAULT_DATA / "nb201" / "archs.csv").is_file():
        pytest.skip(f"the tables are not at the default {DEFAULT_DATA}")
    result = run("search", *TABLE_SEARCH, cwd=tmp_path, env=without_data_env())
    assert result.returncode == 0, result.stderr[-3000:]
    logged = re.search(r"run directory: (\S+)", result.stdout + result.stderr)
    assert logged, (result.stdout + result.stderr)[-3000:]
    run_dir = Path(logged.group(1))
    try:
        assert run_dir.is_absolute() and run_dir.is_relative_to(REPO / "outputs")
        assert json.loads((run_dir / "summary.json").read_text())["device"] == "raspi4"
        assert not list(tmp_path.iterdir())  # nothing written where the command was started
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        for parent in (run_dir.parent, REPO / "outputs"):  # left empty by this test alone
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()


@pytest.mark.slow
def test_a_missing_data_folder_names_both_ways_to_set_it(tmp_path: Path) -> None:
    missing = tmp_path / "no_tables"
    result = run(
        "search",
        *TABLE_SEARCH,
        f"data_dir={missing}",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        env=without_data_env(),
    )
    assert result.returncode != 0
    assert str(missing / "nb201") in result.stderr
    assert "HWNAS_DATA=" in result.stderr and "data_dir=" in result.stderr


@pytest.mark.slow
def test_train_supernet_without_tables_warns_and_says_why_rho_is_null(tmp_path: Path) -> None:
    missing, run_dir = tmp_path / "no_tables", tmp_path / "run"
    result = run(
        "train_supernet",
        "++space.instance.channels=4",
        "++space.instance.cells_per_stage=1",
        "epochs=1",
        "evaluation.archs=2",
        "evaluation.bn_batches=1",
        "progress=false",
        f"data_dir={missing}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env=without_data_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    warning = [line for line in (run_dir / "train_supernet.log").read_text().splitlines() if "[WARNING]" in line]
    assert any(str(missing / "nb201") in line and "HWNAS_DATA" in line for line in warning), warning
    spearman = json.loads((run_dir / "summary.json").read_text())["spearman_vs_published"]
    assert spearman["rho"] is None
    assert str(missing / "nb201") in spearman["reason"] and "data_dir=" in spearman["reason"]
