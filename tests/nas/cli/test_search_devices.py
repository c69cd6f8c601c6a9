"""hwnas-search devices=[...]: one study and front per device, a proxy evaluated once per
architecture for all of them (and across a resume), and the cross-device summary."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.nas.cli.test_search_cli import read_csv, run_search
from tests.nas.cli.test_search_predicted import table_column

DEVICES = ["raspi4", "fpga", "pixel3"]
REPO = Path(__file__).resolve().parents[3]


def search_devices(run_dir: Path, data_dir: Path, *extra: str, devices: list[str] = DEVICES, tensorboard: bool = False):
    return run_search(
        f"devices=[{','.join(devices)}]",
        "objectives=synflow_latency",
        "metrics=none",
        "sampler.population_size=8",
        "export.onnx=false",
        f"tensorboard={str(tensorboard).lower()}",
        f"data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
        *extra,
    )


def complete_archs(run_dir: Path) -> set[str]:
    """Architectures some device evaluated (not a repeat its storage answered)."""
    return {
        r["arch"]
        for d in DEVICES
        for r in read_csv(run_dir / "devices" / d / "trials.csv")
        if r["state"] == "COMPLETE" and not r["reused_from_trial"]
    }


def test_three_devices_one_front_each_the_proxy_once_and_a_robust_front(tmp_path: Path, data_dir: Path) -> None:
    run_dir = tmp_path / "run"
    result = search_devices(run_dir, data_dir, "budget.n_trials=24", "report=true", tensorboard=True)
    assert result.returncode == 0, result.stderr[-3000:]
    _check_boards(run_dir)
    # What TensorBoard's own server serves for it (scripts/check_tensorboard.py, run by hand too)
    served = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_tensorboard.py"), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert served.returncode == 0 and served.stdout.rstrip().endswith("ok"), served.stdout + served.stderr[-3000:]
    assert all(f"HParams filtered to {d}:" in served.stdout for d in DEVICES)
    report = (run_dir / "report.md").read_text()
    assert "(report/overlay.png)" in report and (run_dir / "report" / "overlay.png").is_file()
    assert all(
        f"(devices/{d}/report.md)" in report and (run_dir / "devices" / d / "report.md").is_file() for d in DEVICES
    )
    for device in DEVICES:
        summary = json.loads((run_dir / "devices" / device / "summary.json").read_text())
        assert summary["device"] == device and summary["trials"]["evaluated"] == 24
        published = table_column(data_dir, "latency_ms", device)
        assert all(
            float(r["latency_ms"]) == published[r["arch"]]
            for r in read_csv(run_dir / "devices" / device / "pareto.csv")
        )
    # synflow was computed once per architecture, whichever device asked first.
    top = json.loads((run_dir / "summary.json").read_text())
    seen = complete_archs(run_dir)
    assert top["shared_objectives"]["synflow"]["evaluated_in_this_run"] == len(seen) > 24
    # The robust front, checked against the tables: nothing in the union of the fronts dominates
    # it (score up, worst normalised latency down), and it holds every undominated architecture.
    cross = json.loads((run_dir / "cross_device.json").read_text())
    fronts = {d: {r["arch"] for r in read_csv(run_dir / "devices" / d / "pareto.csv")} for d in DEVICES}
    union = set().union(*fronts.values())
    synflow = {
        r["arch"]: float(r["synflow"])
        for d in DEVICES
        for r in read_csv(run_dir / "devices" / d / "trials.csv")
        if r["synflow"]
    }
    medians = {}  # each device's median latency over the distinct architectures it completed
    for d in DEVICES:
        rows = read_csv(run_dir / "devices" / d / "trials.csv")
        medians[d] = statistics.median(
            {r["arch"]: float(r["latency_ms"]) for r in rows if r["state"] == "COMPLETE"}.values()
        )
    columns = {d: table_column(data_dir, "latency_ms", d) for d in DEVICES}
    worst = {a: max(columns[d][a] / medians[d] for d in DEVICES) for a in union}
    robust = {r["arch"] for r in cross["robust_front"]}

    def dominates(a: str, b: str) -> bool:
        return synflow[a] >= synflow[b] and worst[a] <= worst[b] and (synflow[a] > synflow[b] or worst[a] < worst[b])

    assert robust and all(not any(dominates(a, r) for a in union) for r in robust)
    assert all(any(dominates(r, a) for r in robust) for a in union - robust)
    for row in cross["robust_front"]:
        assert np.isclose(row["worst_normalised_cost"], worst[row["arch"]])
    shared = {tuple(sorted(r["devices"])) for r in cross["on_several_fronts"]}
    expected = {tuple(sorted(d for d in DEVICES if a in fronts[d])) for a in union}
    assert shared == {s for s in expected if len(s) > 1}
    assert (run_dir / "cross_device.csv").read_text().startswith("arch,score,worst_normalised_cost")

    # Resumed with a larger budget: only architectures no earlier trial had are evaluated.
    again = search_devices(run_dir, data_dir, "budget.n_trials=32")
    assert again.returncode == 0, again.stderr[-3000:]
    top = json.loads((run_dir / "summary.json").read_text())
    assert top["shared_objectives"]["synflow"]["evaluated_in_this_run"] == len(complete_archs(run_dir) - seen)
    assert top["shared_objectives"]["synflow"]["architectures_cached"] == len(complete_archs(run_dir))

    other = search_devices(run_dir, data_dir, "budget.n_trials=32", devices=["raspi4", "fpga"])
    assert other.returncode != 0 and "holds the searches of devices=['raspi4', 'fpga', 'pixel3']" in other.stderr
    single = run_search("device=raspi4", f"data_dir={data_dir}", f"hydra.run.dir={run_dir}")
    assert single.returncode != 0 and "Resume it with devices=['raspi4', 'fpga', 'pixel3']" in single.stderr


def test_a_repeated_or_unknown_device_is_refused(tmp_path: Path, data_dir: Path) -> None:
    repeated = search_devices(tmp_path / "a", data_dir, devices=["raspi4", "fpga", "raspi4"])
    assert repeated.returncode != 0 and "names ['raspi4'] more than once" in repeated.stderr
    unknown = search_devices(tmp_path / "b", data_dir, devices=["raspi4", "raspi9"])
    assert unknown.returncode != 0 and "'raspi9' is not a device" in unknown.stderr and "v100_1" in unknown.stderr
    # Refused before the run directory was bound to the misspelt list: the corrected one may use it.
    assert not (tmp_path / "b" / "devices.json").exists()
    single = run_search(
        "device=fpga",
        "budget.n_trials=2",
        "export.onnx=false",
        "tensorboard=false",
        f"data_dir={data_dir}",
        f"hydra.run.dir={tmp_path / 'c'}",
    )
    assert single.returncode == 0, single.stderr[-3000:]
    devices = search_devices(tmp_path / "c", data_dir, devices=["raspi4", "fpga"])
    assert devices.returncode != 0 and "holds the single-device search of device 'fpga'" in devices.stderr


def test_an_option_with_settings_is_a_mapping_and_runs_as_its_command_line_would(
    tmp_path: Path, data_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    fitted = "{option:fitted,name:pixel3,n_train:30}"
    mixed = search_devices(run_dir, data_dir, "budget.n_trials=4", devices=["raspi4", fitted])
    assert mixed.returncode == 0, mixed.stderr[-3000:]
    # hwnas-search device=fitted device.name=pixel3 device.n_train=30, kept under its device's name.
    study = json.loads((run_dir / "devices" / "pixel3" / "study.json").read_text())
    assert "fitted on 30 rows" in study["identity"]["sources"]["latency_ms"]
    assert (run_dir / "devices" / "pixel3" / "fitted").is_dir()
    assert json.loads((run_dir / "cross_device.json").read_text())["devices"] == ["raspi4", "pixel3"]
    other = "{option:fitted,name:pixel3,n_train:40}"
    changed = search_devices(run_dir, data_dir, "budget.n_trials=4", devices=["raspi4", other])
    assert changed.returncode != 0 and "'n_train': 30" in changed.stderr and "'n_train': 40" in changed.stderr
    bare = search_devices(tmp_path / "b", data_dir, devices=["raspi4", "fitted"])
    assert bare.returncode != 0 and "'fitted' needs settings" in bare.stderr and "{option:fitted" in bare.stderr
    twice = search_devices(tmp_path / "c", data_dir, devices=["pixel3", fitted])
    assert twice.returncode != 0 and "gives device names ['pixel3', 'pixel3']" in twice.stderr


def _check_boards(run_dir: Path) -> None:
    """One TensorBoard run per device and the overlay of their fronts in tensorboard/; in hparams/
    one experiment whose device domain lists every device, one session per complete trial."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    assert sorted(p.name for p in (run_dir / "tensorboard").iterdir()) == sorted([*DEVICES, "overlay"])
    for device in DEVICES:
        board = EventAccumulator(str(run_dir / "tensorboard" / device))
        board.Reload()
        rows = read_csv(run_dir / "devices" / device / "trials.csv")
        assert [e.step for e in board.Scalars("search/evaluations")] == [int(r["number"]) for r in rows]
        assert "pareto/synflow_vs_latency_ms" in board.Tags()["images"]
        sessions = list((run_dir / "hparams" / device).iterdir())
        assert len(sessions) == sum(r["state"] == "COMPLETE" for r in rows)
    overlay = EventAccumulator(str(run_dir / "tensorboard" / "overlay"))
    overlay.Reload()
    assert overlay.Tags()["images"] == ["pareto/latency_ms_vs_synflow"]
    experiment = EventAccumulator(str(run_dir / "hparams"))
    experiment.Reload()
    content = experiment.PluginTagToContent("hparams")["_hparams_/experiment"]
    infos = plugin_data_pb2.HParamsPluginData.FromString(content).experiment.hparam_infos
    metrics = {m.name.tag for m in plugin_data_pb2.HParamsPluginData.FromString(content).experiment.metric_infos}
    # synflow is shared (one column); each device's latency is its own, so no axis mixes devices
    assert {"objective/synflow", *(f"objective/latency_ms@{d}" for d in DEVICES)} <= metrics
    assert "objective/latency_ms" not in metrics
    session = sorted((run_dir / "hparams" / "fpga").iterdir())[0]
    values = EventAccumulator(str(session))
    values.Reload()
    assert {"objective/synflow", "objective/latency_ms@fpga"} <= set(values.Tags()["scalars"])
    device = next(h for h in infos if h.name == "device")
    assert sorted(v.string_value for v in device.domain_discrete.values) == sorted(DEVICES)
