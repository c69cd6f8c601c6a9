"""hwnas-export end to end: a real search, then its models exported, checked and read back."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from tests.nas.cli.helpers import run_command
from tests.nas.cli.test_search_cli import read_csv, run_search

QUICK = ("measure.warmup=1", "measure.repeats=3", "progress=false")


def export(*overrides: str) -> subprocess.CompletedProcess:
    return run_command("export", *QUICK, *overrides)


@pytest.fixture(scope="module")
def search_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("search") / "run"
    result = run_search(
        "device=raspi4",
        "objectives=accuracy_latency",
        "budget.n_trials=14",
        "export.onnx=false",
        "tensorboard=false",
        f"data_dir={data_dir}",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def _run(session_path: Path, batch: int) -> np.ndarray:
    session = ort.InferenceSession(str(session_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.zeros((batch, 3, 32, 32), np.float32)})[0]


def test_the_front_exports_checked_runnable_and_self_describing(search_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = export(f"run_dir={search_dir}", "int8=true", "fp16=true", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    front = read_csv(search_dir / "pareto.csv")
    rows = read_csv(out / "export.csv")
    assert [r["arch"] for r in rows] == [r["arch"] for r in front] and all(r["error"] == "" for r in rows)
    for row, searched in zip(rows, front):
        directory = out / row["directory"]
        manifest = json.loads((directory / "manifest.json").read_text())
        model = directory / "model.onnx"
        onnx.checker.check_model(onnx.load(model), full_check=True)
        assert manifest["files"]["fp32"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest() == row["sha256"]
        facts = {p.key: p.value for p in onnx.load(model).metadata_props}
        assert facts["hwnas.arch"] == manifest["arch"] == searched["arch"] and facts["hwnas.device"] == "raspi4"
        assert "untrained" in facts["hwnas.weights"] and "untrained" in manifest["weights"]
        assert float(facts["hwnas.latency_ms.onnxruntime"]) == pytest.approx(
            float(row["latency_ms_onnxruntime"]), rel=1e-3
        )
        assert manifest["latency_ms"]["estimated_by_search"] == pytest.approx(float(searched["latency_ms"]))
        assert manifest["latency_ms"]["onnxruntime_here"]["median_ms"] > 0
        assert all(p["passed"] for p in manifest["parity"].values()) and set(manifest["parity"]) == {"1", "8"}
        assert manifest["input"]["shape"] == ["batch", 3, 32, 32] and manifest["opset"] == 18
        for name in ("model.onnx", "model.int8.onnx", "model.fp16.onnx"):
            for batch in (1, 8):
                assert _run(directory / name, batch).shape == (batch, 10)
        assert 0 <= manifest["files"]["int8"]["top1_agreement"] <= 1


def test_top_k_trials_and_archs_select_what_they_name(search_dir: Path, tmp_path: Path) -> None:
    trials = [r for r in read_csv(search_dir / "trials.csv") if r["state"] == "COMPLETE" and not r["reused_from_trial"]]
    best = max(trials, key=lambda r: float(r["accuracy"]))
    result = export(f"run_dir={search_dir}", "select=top_k", "k=1", f"hydra.run.dir={tmp_path / 'top'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["arch"] for r in read_csv(tmp_path / "top" / "export.csv")] == [best["arch"]]
    chosen = trials[3]
    result = export(
        f"run_dir={search_dir}", "select=trials", f"trials=[{chosen['number']}]", f"hydra.run.dir={tmp_path / 't'}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [r["trial"] for r in read_csv(tmp_path / "t" / "export.csv")] == [chosen["number"]]
    bad = "|nor_conv_3x3~0|+|bogus~0|"
    result = export(f"run_dir={search_dir}", "select=archs", f"archs=['{bad}']", f"hydra.run.dir={tmp_path / 'a'}")
    assert result.returncode != 0 and bad in result.stderr
    result = export(f"run_dir={search_dir}", "select=trials", "trials=[99999]", f"hydra.run.dir={tmp_path / 'm'}")
    assert result.returncode != 0 and "99999" in result.stderr


def test_a_checkpoint_gives_the_trained_subnet_bn_recalibrated(tmp_path: Path, data_dir: Path) -> None:
    from nas.training import InheritedAccuracy, SklearnDigits, SupernetTrainer, UniformSampling
    from search_spaces import NB201Space

    space = NB201Space(channels=4, cells_per_stage=1)
    supernet_dir = tmp_path / "supernet"
    SupernetTrainer(
        space.supernet(), SklearnDigits(), UniformSampling(), epochs=1, checkpoint_dir=supernet_dir, progress=False
    ).fit()
    search = tmp_path / "run"
    tiny = ("++space.instance.channels=4", "++space.instance.cells_per_stage=1")
    result = run_search(
        *tiny, "device=raspi4", "objectives=accuracy_latency", "budget.n_trials=6", "export.onnx=false",
        "tensorboard=false", f"data_dir={data_dir}", f"hydra.run.dir={search}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "export"
    result = export(
        f"run_dir={search}", f"checkpoint={supernet_dir}", "data=digits", "select=top_k", "k=1", f"hydra.run.dir={out}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    row = read_csv(out / "export.csv")[0]
    manifest = json.loads((out / row["directory"] / "manifest.json").read_text())
    assert manifest["weights"].startswith("trained: the subnet of the supernet")
    expected = InheritedAccuracy(supernet_dir, SklearnDigits()).subnet(space, space.parse(row["arch"]))
    x = space.example_input(8)
    session = ort.InferenceSession(str(out / row["onnx"]), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]
    with torch.inference_mode():
        np.testing.assert_allclose(got, expected(x).numpy(), rtol=1e-4, atol=1e-4)
        assert not np.allclose(got, space.build(space.parse(row["arch"])).eval()(x).numpy(), atol=1e-3)
