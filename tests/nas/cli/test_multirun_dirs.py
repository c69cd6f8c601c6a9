"""A multirun's job folders are named by the values each job sweeps."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from nas.cli import redact_passwords, sweep_subdir
from tests.nas.cli.helpers import run_command


@pytest.mark.slow
def test_a_seed_and_sampler_sweep_names_each_folder_by_its_values(tmp_path: Path, data_dir: Path) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"  # one database for the whole sweep
    result = run_command(
        "search",
        "-m",
        "seed=0,1",
        "sampler=random,tpe",
        "budget.n_trials=2",
        "storage=url",
        f"storage.url={database}",
        "device=raspi4",
        "objectives=accuracy_latency",
        "metrics=none",
        "export.onnx=false",
        "tensorboard=false",
        "progress=false",
        f"data_dir={data_dir}",
        f"hydra.sweep.dir={tmp_path}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folders = {p.parent.name: p.parent for p in tmp_path.glob("*/summary.json")}
    assert set(folders) == {
        "0_sampler=random,seed=0",
        "1_sampler=tpe,seed=0",
        "2_sampler=random,seed=1",
        "3_sampler=tpe,seed=1",
    }
    for name, folder in folders.items():  # each name matches what its job ran with
        ran = OmegaConf.load(folder / ".hydra" / "overrides.yaml")
        assert {o for o in ran if o.startswith(("seed=", "sampler="))} == set(name.partition("_")[2].split(","))
    # Four jobs on one database: four studies named by what they swept, none merged into another.
    studies = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(database)}
    assert studies == {
        f"nb201-raspi4-accuracy+latency_ms-{sampler}-s{seed}": 2 for sampler in ("random", "tpe") for seed in (0, 1)
    }


def test_passwords_in_urls_are_redacted() -> None:
    text = "storage.url=postgresql+psycopg://hwnas:s3cr%40t@10.0.0.1:5432/db\nurl: 'mysql://u:p@h/d'\nsqlite:///a.db"
    assert redact_passwords(text) == (
        "storage.url=postgresql+psycopg://hwnas:***@10.0.0.1:5432/db\nurl: 'mysql://u:***@h/d'\nsqlite:///a.db"
    )


def job(tmp_path: Path, sweep: list[str], overrides: list[str], num: int = 0) -> str:
    """The folder name of job ``num`` of a sweep saved the way Hydra's sweeper saves it."""
    OmegaConf.save(OmegaConf.create({"hydra": {"overrides": {"task": sweep}}}), tmp_path / "multirun.yaml")
    root = OmegaConf.create(
        {
            "hydra": {
                "sweep": {"dir": str(tmp_path)},
                "overrides": {"task": overrides},
                "job": {
                    "num": num,
                    "config": {"override_dirname": {"kv_sep": "=", "item_sep": ",", "exclude_keys": ["data_dir"]}},
                },
            }
        }
    )
    return sweep_subdir(_root_=root)


def test_values_holding_slashes_or_colons_make_one_folder_name(tmp_path: Path) -> None:
    sweep = ["storage.url=sqlite:////tmp/a.db,sqlite:////tmp/b.db", "data_dir=/x", "budget=smoke"]
    names = {
        job(tmp_path, sweep, [f"storage.url=sqlite:////tmp/{db}.db", "data_dir=/x", "budget=smoke"]) for db in "ab"
    }
    assert names == {"0_storage.url=sqlite_tmp_a.db", "0_storage.url=sqlite_tmp_b.db"}


def test_a_long_name_is_cut_and_stays_distinct(tmp_path: Path) -> None:
    keys = [f"+constraints.metric_{i}.upper" for i in range(20)]
    sweep = [f"{k}=1,2" for k in keys]
    names = {job(tmp_path, sweep, [f"{k}={v}" for k in keys]) for v in (1, 2)}
    assert len(names) == 2 and all(len(n.encode()) <= 160 for n in names)


def test_without_a_sweep_record_every_override_names_the_folder(tmp_path: Path) -> None:
    root = OmegaConf.create(
        {
            "hydra": {
                "sweep": {"dir": str(tmp_path / "elsewhere")},
                "overrides": {"task": ["seed=3", "budget=smoke"]},
                "job": {
                    "num": 2,
                    "config": {"override_dirname": {"kv_sep": "-", "item_sep": "__", "exclude_keys": []}},
                },
            }
        }
    )
    assert sweep_subdir(_root_=root) == "2_budget-smoke__seed-3"
