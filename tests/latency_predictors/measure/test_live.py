"""Live latency: real networks timed with real runtimes, checked on structure and big margins."""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import nas
from latency_predictors.measure import (
    LatencyStats,
    MeasuredLatency,
    OnnxRuntimeCPU,
    Runtime,
    TorchEagerCPU,
    measure_latency_ms,
)


class TinyConvSpace(nas.SearchSpace):
    """A stem conv to ``width`` channels, ``depth`` more 3x3 convs, pooling and a classifier."""

    name = "tiny_conv"
    input_shape = (3, 32, 32)

    def genes(self) -> tuple[nas.Gene, ...]:
        return (nas.Gene("width", (4, 16, 64)), nas.Gene("depth", (1, 3)))

    def format(self, genes: Mapping[str, object]) -> str:
        return f"w{genes['width']}-d{genes['depth']}"

    def parse_genes(self, string: str) -> dict[str, int]:
        match = re.fullmatch(r"w(\d+)-d(\d+)", string)
        if match is None:
            raise nas.ArchitectureError(f"{string!r} is not of the form w<width>-d<depth>")
        return {"width": int(match[1]), "depth": int(match[2])}

    def build(self, arch: nas.Architecture, seed: int = 0) -> nn.Module:
        width, depth = int(arch["width"]), int(arch["depth"])
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(depth):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
        return nn.Sequential(*layers)


class WrongChannelsSpace(TinyConvSpace):
    """Builds networks expecting 5 input channels, so preparing them on 3-channel input fails."""

    def build(self, arch: nas.Architecture, seed: int = 0) -> nn.Module:
        return nn.Sequential(nn.Conv2d(5, 4, 3), nn.Flatten())


SPACE = TinyConvSpace()
RUNTIMES = [OnnxRuntimeCPU(threads=1), TorchEagerCPU(threads=1)]


def candidate(string: str, space: nas.SearchSpace = SPACE) -> nas.Candidate:
    return nas.Candidate(space.parse(string), space)


@pytest.mark.parametrize("runtime", RUNTIMES, ids=lambda r: r.name)
def test_measured_latency_is_positive_with_consistent_stats(runtime: Runtime) -> None:
    objective = MeasuredLatency(runtime=runtime, warmup=2, repeats=7)
    value = objective.evaluate(candidate("w16-d1"))
    assert math.isfinite(value) and value > 0
    stats = objective.last_stats["w16-d1"]
    assert isinstance(stats, LatencyStats)
    assert stats.median_ms == value
    assert 0 < stats.min_ms <= stats.median_ms
    assert stats.min_ms <= stats.mean_ms
    assert stats.iqr_ms >= 0
    assert stats.repeats == 7


@pytest.mark.parametrize("runtime", RUNTIMES, ids=lambda r: r.name)
def test_much_bigger_network_is_slower(runtime: Runtime) -> None:
    # w64-d3 does about 400x the multiply-adds of w4-d1: no scheduling noise can reverse that.
    objective = MeasuredLatency(runtime=runtime, warmup=2, repeats=7)
    tiny = objective(candidate("w4-d1"))
    big = objective(candidate("w64-d3"))
    assert big > 2 * tiny
    assert set(objective.last_stats) == {"w4-d1", "w64-d3"}


def test_objective_declares_measurement_cost_and_minimisation() -> None:
    objective = MeasuredLatency()
    assert objective.name == "latency_ms"
    assert objective.cost is nas.Cost.MEASUREMENT
    assert objective.direction is nas.Direction.MINIMIZE
    assert isinstance(objective.runtime, OnnxRuntimeCPU) and objective.runtime.threads == 1
    assert (objective.warmup, objective.repeats, objective.batch_size) == (5, 20, 1)


def test_device_describes_runtime_threads_and_batch() -> None:
    device = MeasuredLatency(runtime=OnnxRuntimeCPU(threads=2), batch_size=4).device()
    assert device.name == "cpu_onnxruntime_t2_b4_fp32"
    assert device.source == "live"
    assert device.hardware
    assert device.runtime.startswith("onnxruntime ")
    assert (device.threads, device.batch_size, device.precision) == (2, 4, "fp32")
    assert MeasuredLatency().device().name == "cpu_onnxruntime_t1_b1_fp32"
    assert MeasuredLatency().device() == MeasuredLatency().device()
    assert MeasuredLatency(runtime=TorchEagerCPU()).device().fingerprint != MeasuredLatency().device().fingerprint


def test_runtime_describe_fields() -> None:
    import onnxruntime

    ort_info = OnnxRuntimeCPU(threads=2, graph_optimization="basic").describe()
    assert ort_info["runtime"] == "onnxruntime_basic"
    assert ort_info["version"] == onnxruntime.__version__
    assert ort_info["threads"] == 2
    assert ort_info["execution_provider"] == "CPUExecutionProvider"
    torch_info = TorchEagerCPU(threads=1).describe()
    assert torch_info == {
        "runtime": "torch_eager",
        "version": torch.__version__,
        "threads": 1,
        "execution_provider": "cpu",
    }


@pytest.mark.parametrize("runtime_type", [OnnxRuntimeCPU, TorchEagerCPU])
def test_runtimes_restore_torch_thread_setting(runtime_type: type[Runtime], tmp_path: Path) -> None:
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    model = SPACE.build(SPACE.parse("w4-d1")).eval()
    run = runtime_type(threads=other).prepare(model, SPACE.example_input(), tmp_path)
    assert torch.get_num_threads() == before
    measure_latency_ms(run, warmup=1, repeats=2)
    assert torch.get_num_threads() == before


def test_torch_eager_leaves_shared_model_mode_alone(tmp_path: Path) -> None:
    model = SPACE.build(SPACE.parse("w4-d1")).train()
    TorchEagerCPU().prepare(model, SPACE.example_input(), tmp_path)()
    assert model.training


def test_onnx_files_are_removed_after_measurement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Point tempfile at an empty folder of our own, so leftovers are visible and attributable.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    MeasuredLatency(warmup=0, repeats=1)(candidate("w4-d1"))
    assert list(tmp_path.iterdir()) == []


def test_unpreparable_network_is_an_objective_error() -> None:
    with pytest.raises(nas.ObjectiveError, match="w4-d1"):
        MeasuredLatency(warmup=0, repeats=1)(candidate("w4-d1", WrongChannelsSpace()))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"warmup": -1, "repeats": 3}, "warmup.*-1"), ({"warmup": 0, "repeats": 0}, "repeats.*0")],
)
def test_bad_counts_are_rejected(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        measure_latency_ms(lambda: None, **kwargs)
    with pytest.raises(ValueError, match=message):
        MeasuredLatency(**kwargs)


def test_bad_runtime_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="threads.*0"):
        OnnxRuntimeCPU(threads=0)
    with pytest.raises(ValueError, match="threads.*-2"):
        TorchEagerCPU(threads=-2)
    with pytest.raises(ValueError, match="graph_optimization 'max'"):
        OnnxRuntimeCPU(graph_optimization="max")
    with pytest.raises(ValueError, match="batch_size.*0"):
        MeasuredLatency(batch_size=0)


def test_measure_counts_calls_and_honours_min_time() -> None:
    calls: list[int] = []
    stats = measure_latency_ms(lambda: calls.append(1), warmup=3, repeats=4)
    assert len(calls) == 7 and stats.repeats == 4
    # A no-op takes far less than 20 ms, so min_time_s must add timed calls beyond `repeats`.
    stats = measure_latency_ms(lambda: None, warmup=0, repeats=2, min_time_s=0.02)
    assert stats.repeats > 2


def _ort_output(path: Path, x: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


def test_int8_graph_is_quantised_and_agrees_with_fp32(tmp_path: Path) -> None:
    import onnx

    from latency_predictors.measure import quantize_int8
    from nas.export import export_onnx

    model = SPACE.build(SPACE.parse("w16-d3")).eval()
    x = SPACE.example_input(4)
    fp32 = export_onnx(model, x, tmp_path / "model.onnx")
    int8 = quantize_int8(fp32, x, tmp_path / "model.int8.onnx")
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    reference, quantised = _ort_output(fp32, x), _ort_output(int8, x)
    # 8-bit activations carry ~1% error per layer; the logits stay within a few percent.
    rel_l2 = float(np.linalg.norm(quantised - reference) / np.linalg.norm(reference))
    assert rel_l2 < 0.1, rel_l2
    assert list(tmp_path.iterdir()) != [] and not (tmp_path / "model.int8.pre.onnx").exists()


def test_int8_runtime_measures_and_is_named() -> None:
    runtime = OnnxRuntimeCPU(threads=1, precision="int8")
    assert runtime.name == "onnxruntime_int8"
    assert runtime.describe()["precision"] == "int8"
    assert OnnxRuntimeCPU(graph_optimization="basic", precision="int8").name == "onnxruntime_basic_int8"
    objective = MeasuredLatency(runtime=runtime, warmup=1, repeats=3)
    assert objective(candidate("w16-d1")) > 0


def test_unknown_precision_lists_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"precision 'fp16' is not one of \['fp32', 'int8'\]"):
        OnnxRuntimeCPU(precision="fp16")
