"""hwnas-fit predictor=few_shot: sources pretrain on a pool, the target adapts from 10 rows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from nas.cli._options import OptionError
from nas.cli.fit import _source_columns
from nas.fitting import ParsedTable
from nas.tables import cached_table
from search_spaces import NB201Space
from tests.nas.cli.helpers import REPO, run_command

N_ROWS, N_SOURCE, SEED = 1500, 300, 0
SOURCES = ("gold_6226", "pixel3", "titan_rtx_1")


def write_table(directory: Path, data_dir: Path, blank_outside_pool: bool) -> Path:
    """The first N_ROWS nb201 rows; optionally every source value outside the pool set to NaN."""
    table = cached_table(data_dir / "nb201")
    pool = np.random.default_rng([SEED, 1]).permutation(N_ROWS)[:N_SOURCE]  # fit.yaml's documented draw
    outside = np.ones(N_ROWS, dtype=bool)
    outside[pool] = False
    directory.mkdir()
    with (directory / "archs.csv").open("w") as f:
        f.write("index,arch\n" + "".join(f"{i},{table.archs[i]}\n" for i in range(N_ROWS)))
    columns = {d: table.column("latency_ms", d)[:N_ROWS].copy() for d in ("raspi4", *SOURCES)}
    if blank_outside_pool:
        for device in SOURCES:
            columns[device][outside] = np.nan
    with (directory / "latency_ms.csv").open("w") as f:
        f.write("index," + ",".join(columns) + "\n")
        for i in range(N_ROWS):
            f.write(f"{i}," + ",".join("" if np.isnan(c[i]) else repr(float(c[i])) for c in columns.values()) + "\n")
    return directory


def run_few_shot(table: Path, run_dir: Path, *more: str) -> subprocess.CompletedProcess:
    overrides = [
        f"table_dir={table}",
        "device=table",
        "device.name=raspi4",
        "predictor=few_shot",
        "n_train=10",
        f"source_devices=[{','.join(SOURCES)}]",
        f"n_source={N_SOURCE}",
        f"seed={SEED}",
        f"hydra.run.dir={run_dir}",
        *more,
    ]
    return run_command("fit", *overrides, timeout_s=300)


def test_sources_from_another_table_fit_as_from_the_targets_own(tmp_path: Path, data_dir: Path) -> None:
    """The target column alone in a table of its own (a profile measured here) with
    source_table_dir naming the sources' table gives the predictions of one shared table."""
    shared = write_table(tmp_path / "shared", data_dir, blank_outside_pool=False)
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "archs.csv").write_text((shared / "archs.csv").read_text())
    with (shared / "latency_ms.csv").open() as f:
        rows = list(csv.reader(f))
    column = rows[0].index("raspi4")
    (alone / "latency_ms.csv").write_text("".join(f"{row[0]},{row[column]}\n" for row in rows))
    assert run_few_shot(shared, tmp_path / "one").returncode == 0
    split = run_few_shot(alone, tmp_path / "two", f"source_table_dir={shared}", "source_devices=all")
    assert split.returncode == 0, split.stderr[-3000:]
    one, two = ((tmp_path / run / "test_predictions.csv").read_text() for run in ("one", "two"))
    assert one == two
    metrics = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert metrics["source_table_dir"] == str(shared.resolve()) and metrics["table_dir"] == str(alone.resolve())
    assert metrics["source_devices"] == list(SOURCES)  # all: every column of the source table but raspi4
    wrong = run_few_shot(alone, tmp_path / "three", f"source_table_dir={shared}", "source_devices=pixel3")
    assert wrong.returncode == 2 and "source_devices='pixel3': give a list" in wrong.stderr


def test_source_measurements_outside_the_pool_are_never_read(tmp_path: Path, data_dir: Path) -> None:
    runs = {}
    for blank in (False, True):
        table = write_table(tmp_path / f"table_{blank}", data_dir, blank)
        result = run_few_shot(table, tmp_path / f"run_{blank}")
        assert result.returncode == 0, result.stderr[-3000:]
        runs[blank] = tmp_path / f"run_{blank}"
    full, blanked = ((runs[b] / "test_predictions.csv").read_text() for b in (False, True))
    assert full == blanked  # blanking every non-pool source value changes nothing
    metrics = json.loads((runs[False] / "metrics.json").read_text())
    assert metrics["source_devices"] == list(SOURCES) and metrics["n_source"] == N_SOURCE
    assert metrics["source_rows_skipped"] == {d: 0 for d in SOURCES}
    assert metrics["n_test"] == N_ROWS - N_SOURCE - 10 and metrics["spearman"] > 0.8
    with (runs[False] / "test_predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["arch", "measured", "predicted", "lower", "upper"]


@pytest.mark.parametrize(
    ("space_name", "family", "own_layer_sum"),
    [
        ("nb201", "BoostedLayerSumPredictor", True),
        ("fbnet", "BoostedLayerSumPredictor", True),
        ("ofa", "GradientBoostingPredictor", False),
    ],
)
def test_each_space_names_a_source_predictor_that_builds(
    space_name: str, family: str, own_layer_sum: bool, data_dir: Path
) -> None:
    from hydra.utils import instantiate

    from nas.cli.fit import compose_fit

    cfg = compose_fit(f"space={space_name}", "predictor=few_shot", f"data_dir={data_dir}")
    space = instantiate(cfg.space.instance)
    source = instantiate(cfg.few_shot.source)(space=space, device_fingerprint="f" * 16)
    assert type(source).__name__ == family
    assert instantiate(cfg.predictor)(space=space, device_fingerprint="f" * 16).own_layer_sum is own_layer_sum
    # the space's config describes the space only
    assert "few_shot_source" not in cfg.space and "few_shot_own_layer_sum" not in cfg.space
    other = compose_fit(f"space={space_name}", "predictor@few_shot.source=flops", f"data_dir={data_dir}")
    assert type(instantiate(other.few_shot.source)(space=space, device_fingerprint="f")).__name__ == "FlopsPredictor"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("metric", "target", "source_options"),
    [
        ("latency_ms", "raspi4", ()),
        # an energy target learns from the latency columns too, as the benchmark's energy cells do
        ("energy_mj", "pi5_onnx", ("source_metric=[energy_mj,latency_ms]",)),
    ],
)
def test_the_few_shot_benchmark_cell_is_hwnas_fits_to_the_last_digit(
    tmp_path: Path, data_dir: Path, metric: str, target: str, source_options: tuple[str, ...]
) -> None:
    # scripts/bench_few_shot.py's nb201 cell for the target, k=10, seed 0, and the hwnas-fit
    # command its docstring names: every other column as a source, table order. A smaller source
    # pool and fewer out-of-fold folds than the defaults, given to both alike, keep it short
    pool, folds = 300, "few_shot.source.folds=3"
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from bench_few_shot import few_shot_benchmark
    finally:
        sys.path.remove(str(REPO / "scripts"))
    (record,) = few_shot_benchmark(
        data_dir, [f"nb201:{metric}"], [10], [0], [target], n_source=pool, log=lambda _: None, overrides=[folds]
    )
    table = cached_table(data_dir / "nb201")
    metrics_read = [metric] if metric == "latency_ms" else [metric, "latency_ms"]
    expected = [f"{m}:{d}" for m in metrics_read for d in table.devices(m) if d != target]
    assert record.sources == tuple(expected)
    result = run_command(
        "fit",
        "predictor=few_shot",
        f"metric={metric}",
        f"device={target}",
        "n_train=10",
        "seed=0",
        "source_devices=all",
        *source_options,
        f"n_source={pool}",
        folds,
        f"data_dir={data_dir}",
        f"hydra.run.dir={tmp_path}",
        timeout_s=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["spearman"], metrics["within_10pct"], metrics["coverage"], metrics["n_test"]) == (
        record.spearman,
        record.within_10pct,
        record.coverage,
        record.n_test,
    )
    # which sources the adapted predictor leaned on: reported by hwnas-fit (by device name for one
    # source metric, metric:device for several), the same in the benchmark (by metric:device)
    benchmark = {
        (name.removeprefix(f"{metric}:") if len(metrics_read) == 1 else name): share
        for name, share in record.leaned_on.items()
    }
    assert {name: round(share, 4) for name, share in metrics["leaned_on"].items()} == benchmark
    assert abs(sum(metrics["leaned_on"].values()) - 1) < 1e-9


def test_source_columns_of_one_metric_or_several(data_dir: Path) -> None:
    data = ParsedTable.parse(NB201Space(), cached_table(data_dir / "nb201"))
    table = data.table

    def columns(devices: object, metric: object) -> dict[str, tuple[str, str]]:
        cfg = OmegaConf.create({"source_devices": devices, "source_metric": metric, "device": {"name": "pi5_onnx"}})
        return _source_columns(cfg, data)

    assert columns("all", "latency_ms") == {
        d: ("latency_ms", d) for d in table.devices("latency_ms") if d != "pi5_onnx"
    }
    both = columns("all", ["energy_mj", "latency_ms"])
    assert list(both) == [f"{m}:{d}" for m in ("energy_mj", "latency_ms") for d in table.devices(m) if d != "pi5_onnx"]
    assert columns(["fpga", "raspi4"], ["energy_mj", "latency_ms"]) == {
        "energy_mj:fpga": ("energy_mj", "fpga"),
        "latency_ms:fpga": ("latency_ms", "fpga"),
        "latency_ms:raspi4": ("latency_ms", "raspi4"),
    }
    with pytest.raises(OptionError, match=r"source_devices \['raspi5'\] have no energy_mj or latency_ms column"):
        columns(["raspi4", "raspi5"], ["energy_mj", "latency_ms"])
    with pytest.raises(OptionError, match="source_devices='raspi4': give a list"):
        columns("raspi4", "latency_ms")
