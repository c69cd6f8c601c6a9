"""hwnas-profile end to end: real measurements of tiny NB201 networks with onnxruntime."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from omegaconf import DictConfig

from nas.cli import CONFIG_DIR
from nas.cli.profile import check_settings
from nas.tables import BenchmarkTable
from tests.nas.cli.helpers import run_command

DEVICE = "cpu_onnxruntime_t1_b1_fp32"
# NB201 strings do not encode channels: the space config goes into the profile's fingerprint.
TINY = (
    "+space.instance.channels=4",
    "+space.instance.cells_per_stage=1",
    "warmup=1",
    "repeats=3",
    "max_repeats=3",
    "progress=false",
)


def run_profile(*overrides: str) -> subprocess.CompletedProcess:
    return run_command("profile", *overrides, timeout_s=300)


def test_profile_writes_a_table_and_a_rerun_measures_only_the_missing(tmp_path: Path) -> None:
    out = tmp_path / "profile"
    # A threshold no measured spread stays under flags every row (3 timed runs: IQR > 0).
    first = run_profile(*TINY, "selection.pool=20", "n_archs=6", "unstable_iqr_ratio=1e-9", f"hydra.run.dir={out}")
    assert first.returncode == 0, first.stderr[-3000:]
    assert {
        "archs.csv",
        "latency_ms.csv",
        "energy_mj.csv",
        "spreads.csv",
        "device.json",
        "profile.log",
        "profile_summary.json",
    } <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "profile_summary.json").read_text())
    # 3 runs of at most 3 give no 95% interval of the median: no row converges
    assert (summary["rows"], summary["unstable_rows"], summary["not_converged_rows"]) == (6, 6, 6)
    assert summary["unstable_indices"] == list(range(6)) and summary["this_run"]["measured"] == 6
    assert "6 of 6 rows are unstable (IQR above 1e-09 of the median" in first.stdout
    assert "6 of 6 rows did not converge" in first.stdout
    table = BenchmarkTable.load(out)
    assert len(table) == 6 and table.devices("latency_ms") == (DEVICE,)
    latencies = table.column("latency_ms", DEVICE).copy()
    assert (latencies > 0).all() and np.isnan(table.column("energy_mj", DEVICE)).all()
    manifest = json.loads((out / "device.json").read_text())
    assert manifest["device"]["name"] == DEVICE and manifest["device"]["threads"] == 1
    assert manifest["space"]["instance"]["channels"] == 4
    assert manifest["settings"]["repeats"] == 3 and manifest["energy_meter"].startswith("none: ")
    assert manifest["host"]["logical_cores"] >= 1

    second = run_profile(
        *TINY, "selection.pool=20", "n_archs=8", "layers=true", "unstable_iqr_ratio=1e9", f"hydra.run.dir={out}"
    )
    assert second.returncode == 0, second.stderr[-3000:]
    layer_rows = (out / "layers.csv").read_text().splitlines()
    assert layer_rows[0] == "key,input_shape,latency_ms,iqr_ms,repeats" and len(layer_rows) > 5
    assert "6 already measured, 2 to measure" in (out / "profile.log").read_text()
    summary = json.loads((out / "profile_summary.json").read_text())
    # the threshold judges rows, it is not a measurement setting: the resume goes on, counting all rows
    assert (summary["rows"], summary["unstable_rows"], summary["not_converged_rows"]) == (8, 0, 8)
    assert summary["unstable_iqr_ratio"] == 1e9 and summary["this_run"]["measured"] == 2
    assert "rows are unstable" not in second.stdout and "8 of 8 rows did not converge" in second.stdout
    grown = BenchmarkTable.load(out)
    assert len(grown) == 8 and grown.archs[:6] == table.archs
    np.testing.assert_array_equal(grown.column("latency_ms", DEVICE)[:6], latencies)  # not re-measured
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    board = EventAccumulator(str(out / "tensorboard"), size_guidance={"histograms": 0})
    board.Reload()  # every row once, at its index, across the resume
    logged = board.Scalars("profile/latency_ms")
    assert [e.step for e in logged] == list(range(8))
    np.testing.assert_allclose([e.value for e in logged], grown.column("latency_ms", DEVICE), rtol=1e-6)
    assert [e.step for e in board.Histograms("profile/latency_ms_histogram")] == [6, 8]


def live_device(*overrides: str):  # noqa: ANN201 - nas.Device
    """The device ``hwnas-search`` measures on with these device overrides, and its config name."""
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("search", overrides=list(overrides))
    return cfg.device.name, instantiate(cfg.device.latency_ms).device()


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_profiling_this_cpu_and_searching_it_live_name_one_device(threads: int, tmp_path: Path) -> None:
    """One device identity: a profile and a live search of this CPU with the same runtime,
    threads, batch and precision give one name and one fingerprint (so a predictor fitted on the
    profile matches the search); another thread count gives another device."""
    out = tmp_path / "profile"
    result = run_profile(*TINY, "selection.pool=4", "n_archs=1", f"threads={threads}", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    (column,) = BenchmarkTable.load(out).devices("latency_ms")
    profiled = BenchmarkTable.load(out).device(column)
    name, live = live_device(f"device.latency_ms.runtime.threads={threads}")
    assert column == profiled.name == live.name == name == f"cpu_onnxruntime_t{threads}_b1_fp32"
    assert profiled == live and profiled.fingerprint == live.fingerprint
    other_name, other = live_device(f"device.latency_ms.runtime.threads={3 - threads}")
    assert other_name != name and other.fingerprint != profiled.fingerprint


@pytest.mark.parametrize("device", ["cpu", "cpu_int8", "cpu_torch"])
def test_every_live_device_config_is_named_by_the_measuring_rule(device: str) -> None:
    name, live = live_device(f"device={device}", "device.latency_ms.batch_size=4")
    assert name == live.name and "_b4_" in name


def test_a_bad_list_line_fails_before_anything_is_measured(tmp_path: Path) -> None:
    listing = tmp_path / "archs.txt"
    listing.write_text(
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n"
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|\n"
        "|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|\n"
    )
    out = tmp_path / "profile"
    result = run_profile(*TINY, "selection=list", f"selection.path={listing}", f"hydra.run.dir={out}")
    assert result.returncode != 0
    assert f"{listing} line 3" in result.stderr and "nor_conv_5x5" in result.stderr
    assert not (out / "archs.csv").exists()


def compose_profile(*overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("profile", overrides=list(overrides))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("threads=0", "threads must be an integer >= 1, got 0"),
        ("batch_size=-2", "batch_size must be an integer >= 1, got -2"),
        ("n_archs=1.5", "n_archs must be an integer >= 1, got 1.5"),
        ("precision=fp16", "precision must be one of ['fp32', 'int8'], got 'fp16'"),
        ("layers=some", "layers must be false, true or only, got 'some'"),
        ("repeats=0", "repeats must be an integer >= 1, got 0"),
        ("max_repeats=10", "max_repeats must be an integer >= repeats (20), got 10"),
        ("rel_tolerance=2", "rel_tolerance must be in (0, 1)"),
        (
            "unstable_iqr_ratio=0",
            "unstable_iqr_ratio must be a number > 0, e.g. 0.5 (IQR above half the median), got 0",
        ),
        (
            "unstable_iqr_ratio=wide",
            "unstable_iqr_ratio must be a number > 0, e.g. 0.5 (IQR above half the median), got 'wide'",
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_value(override: str, message: str) -> None:
    # In process (main checks these first, before building anything): a subprocess each is 2.5 s.
    with pytest.raises(ValueError) as error:
        check_settings(compose_profile(override))
    assert message in str(error.value)


def test_an_unknown_runtime_lists_the_options() -> None:
    with pytest.raises(MissingConfigException) as error:
        compose_profile("runtime=tensorrt")
    assert all(option in str(error.value) for option in ("onnxruntime_cpu", "torch_cpu", "torch_cuda"))


@pytest.mark.parametrize("runtime", ["onnxruntime_cpu", "torch_cpu", "torch_cuda"])
def test_runtime_options_compose(runtime: str) -> None:
    # Composed only: TorchCUDA needs a GPU to instantiate.
    cfg = compose_profile(f"runtime={runtime}")
    assert cfg.runtime.instance._target_.startswith("latency_predictors.")
    assert check_settings(cfg).networks and not check_settings(cfg).layers
