"""hwnas-train-supernet end to end: a tiny real run through Hydra, then its resumption."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from nas.cli import CONFIG_DIR
from nas.training import ImageDataset, SamplingStrategy
from tests.nas.cli.helpers import run_command

TINY = (
    "++space.instance.channels=4",
    "++space.instance.cells_per_stage=1",
    "epochs=1",
    "evaluation.archs=2",
    "evaluation.bn_batches=1",
    "progress=false",
)


def train(*overrides: str) -> subprocess.CompletedProcess:
    return run_command("train_supernet", *TINY, *overrides)


@pytest.mark.parametrize(
    "override",
    [f"{group}={p.stem}" for group in ("data", "strategy") for p in sorted((Path(CONFIG_DIR) / group).glob("*.yaml"))],
)
def test_every_data_and_strategy_option_composes_and_instantiates(override: str, tmp_path: Path) -> None:
    extra = ["data.root=" + str(tmp_path)] if override == "data=imagefolder" else []
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train_supernet", overrides=[override, *extra])
    assert isinstance(instantiate(cfg.data), ImageDataset)
    assert isinstance(instantiate(cfg.strategy), SamplingStrategy)
    assert instantiate(cfg.space.instance, num_classes=7).num_classes == 7


def test_tiny_run_writes_checkpoint_accuracies_and_summary(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = train(f"hydra.run.dir={run_dir}", f"data_dir={tmp_path / 'no_tables'}")
    assert result.returncode == 0, result.stderr[-3000:]
    with (run_dir / "inherited_accuracy.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["arch"] for r in rows][-2:] == [
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    ]
    assert len(rows) == 4 and all(0 <= float(r["accuracy"]) <= 100 and int(r["params"]) > 0 for r in rows)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["training"]["epochs"] == 1 and summary["training"]["images_per_s"] > 0
    assert summary["spearman_vs_published"]["rho"] is None  # no table in this data_dir
    assert summary["wall_time_s"] > 0
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run_dir / "tensorboard"))
    board.Reload()
    assert [(e.step, e.value) for e in board.Scalars("train/loss")] == [(1, pytest.approx(checkpoint["losses"][0]))]
    assert board.Histograms("eval/inherited_accuracy")[0].histogram_value.num == len(rows)
    assert board.Scalars("eval/mean_accuracy")[0].value == pytest.approx(summary["evaluation"]["mean_accuracy"])


@pytest.mark.slow
def test_a_rerun_in_the_same_directory_resumes_and_reports_spearman(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    first = train(f"hydra.run.dir={run_dir}", f"data_dir={data_dir}", "strategy=sandwich")
    assert first.returncode == 0, first.stderr[-3000:]
    with (run_dir / "inherited_accuracy.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert all(r["published_accuracy"] for r in rows)
    spearman = json.loads((run_dir / "summary.json").read_text())["spearman_vs_published"]
    assert spearman["n"] == 4 and -1 <= spearman["rho"] <= 1

    again = train(f"hydra.run.dir={run_dir}", f"data_dir={data_dir}", "strategy=sandwich")
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["training"]["resumed_from_epoch"] == 1 and resumed["training"]["images"] == 0
    with (run_dir / "inherited_accuracy.csv").open() as f:
        assert list(csv.DictReader(f)) == rows  # same weights, same seeded calibration batches
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(run_dir / "tensorboard"))
    board.Reload()  # the rerun trained and evaluated nothing new: no step twice
    assert [e.step for e in board.Scalars("train/loss")] == [1] == [e.step for e in board.Scalars("eval/mean_accuracy")]
