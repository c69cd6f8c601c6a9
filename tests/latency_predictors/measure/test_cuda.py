"""The CUDA runtime: a clear error without a GPU; CUDA-event timing where there is one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latency_predictors.measure import (
    CudaEventRun,
    TorchCUDA,
    measure_until_stable,
    reference_input,
    reference_model,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU; the no-GPU error cannot arise")
def test_asking_for_cuda_without_gpu_is_a_clear_error() -> None:
    with pytest.raises(
        RuntimeError,
        match=r"torch_cuda asked for, but torch.cuda.is_available\(\) is False on .*OnnxRuntimeCPU or TorchEagerCPU",
    ):
        TorchCUDA()


@needs_cuda
def test_cuda_events_time_the_gpu(tmp_path: Path) -> None:
    model = reference_model()
    run = TorchCUDA().prepare(model, reference_input(8), tmp_path)
    assert isinstance(run, CudaEventRun)
    assert next(model.parameters()).device.type == "cpu"  # the caller's module is not moved
    stats = measure_until_stable(run, warmup=5, min_repeats=20, max_repeats=500)
    assert stats.median_ms > 0 and stats.repeats >= 20
    run()  # a plain call runs one synchronised inference


@needs_cuda
def test_cuda_describe_and_bad_index() -> None:
    info = TorchCUDA().describe()
    assert info["runtime"] == "torch_cuda" and info["device"]
    with pytest.raises(ValueError, match="device_index.*99"):
        TorchCUDA(device_index=99)
