"""Runtimes: how a built network is executed for a latency measurement.

Each runtime is a small class (configs pick one by ``_target_``); ``prepare`` does all the slow
setup (export, session creation) so the callable it returns times inference only.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from latency_predictors.measure._measure import DeviceTimedRun
from nas.export import INPUT_NAME, OUTPUT_NAME, export_onnx

# onnxruntime's optimisation levels, by the names configs use.
_GRAPH_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


#: Numeric precisions :class:`OnnxRuntimeCPU` can run a network at.
PRECISIONS = ("fp32", "int8")

#: Calibration batches for static int8 quantisation: the example plus this many seeded draws.
CALIBRATION_DRAWS = 7


def _check_threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    return threads


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``, restoring the previous count after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Runtime(ABC):
    """One way of running inference on this machine with a fixed thread count."""

    name: str
    threads: int

    @abstractmethod
    def prepare(self, model: nn.Module, example: torch.Tensor, workdir: Path) -> Callable[[], None]:
        """Set up ``model`` on ``example``; return a function running one inference.

        A runtime whose device has its own clock returns a :class:`DeviceTimedRun` (still a
        plain callable), and the ``measure_*`` functions time it by that clock.
        ``workdir`` may receive files (an exported graph); the caller owns and removes it.
        """

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Runtime name, library version, threads and execution provider, for run records."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threads={self.threads})"


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # onnxruntime.quantization warns through the root logger (once per folded bias, per tensor
    # without shape); a profile of thousands of networks must not print them all.
    previous = logging.root.level
    logging.root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logging.root.setLevel(previous)


def calibration_batches(example: torch.Tensor, draws: int = CALIBRATION_DRAWS) -> list[np.ndarray]:
    """The example batch plus ``draws`` standard-normal batches of its shape from seeds 1.."""
    batches = [example.detach().cpu().numpy()]
    for seed in range(1, draws + 1):
        generator = torch.Generator().manual_seed(seed)
        batches.append(torch.randn(example.shape, generator=generator, dtype=example.dtype).numpy())
    return batches


def quantize_int8(
    fp32_path: Path, example: torch.Tensor, path: Path, calibration: Sequence[np.ndarray] | None = None
) -> Path:
    """Write a statically int8-quantised copy of the ONNX file ``fp32_path`` to ``path``.

    Why static QDQ: for conv nets on CPU, onnxruntime fuses QuantizeLinear/DequantizeLinear
    around convolutions into integer QLinearConv kernels, which is where int8 gains (2x on an
    NB201 cell net, AVX-512 VNNI, one thread). Dynamic quantisation only covers MatMul/Gemm
    well; its ConvInteger path measured 2x *slower* than fp32 there. Activations are uint8 and
    weights int8 per output channel (onnxruntime's recommended x86 pairing). Ranges are calibrated
    (min/max) on ``calibration`` (input batches), by default :func:`calibration_batches`,
    deterministic, so a network always quantises alike; latency does not depend on the ranges,
    only accuracy does, so a deployed model is calibrated on real images instead.
    ``quant_pre_process`` first turns the exporter's constant biases into initializers, which
    static quantisation requires.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(calibration_batches(example) if calibration is None else calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    prepared = Path(path).with_suffix(".pre.onnx")
    with _quiet_root_logger():
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(
            str(prepared),
            str(path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    prepared.unlink()
    return Path(path)


class OnnxRuntimeCPU(Runtime):
    """The network exported to ONNX (TorchScript exporter) and run by onnxruntime on the CPU.

    ``precision="int8"`` quantises the exported graph statically (see :func:`quantize_int8`) and
    times the quantised graph; ``"fp32"`` times the export as is.
    """

    def __init__(self, threads: int = 1, graph_optimization: str = "all", precision: str = "fp32") -> None:
        if graph_optimization not in _GRAPH_OPTIMIZATION:
            raise ValueError(f"graph_optimization {graph_optimization!r} is not one of {sorted(_GRAPH_OPTIMIZATION)}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {list(PRECISIONS)}")
        self.threads = _check_threads(threads)
        self.graph_optimization = graph_optimization
        self.precision = precision
        self._level = _GRAPH_OPTIMIZATION[graph_optimization]
        # The optimisation level and precision change the latency, so non-defaults show in the name.
        self.name = "onnxruntime"
        if graph_optimization != "all":
            self.name += f"_{graph_optimization}"
        if precision != "fp32":
            self.name += f"_{precision}"

    def prepare(self, model: nn.Module, example: torch.Tensor, workdir: Path) -> Callable[[], None]:
        # Tracing a small batch gains nothing from threads, and under CPU contention (other
        # trials, other processes) torch's spinning OpenMP threads made export 3-5x slower.
        with torch_threads(1):
            path = export_onnx(model, example, Path(workdir) / "model.onnx", dynamo=False)
        if self.precision == "int8":
            path = quantize_int8(path, example, Path(workdir) / "model.int8.onnx")
        session = ort.InferenceSession(str(path), self.session_options(), providers=["CPUExecutionProvider"])
        feed = {INPUT_NAME: example.detach().cpu().numpy()}
        outputs = [OUTPUT_NAME]

        def run() -> None:
            session.run(outputs, feed)

        return run

    def session_settings(self) -> dict[str, Any]:
        """The ``onnxruntime.SessionOptions`` this runtime sets, by attribute name: what a deployed
        model's manifest tells its user to set."""
        return {
            "intra_op_num_threads": self.threads,
            "inter_op_num_threads": 1,
            "execution_mode": "ORT_SEQUENTIAL",
            "graph_optimization_level": self._level.name,
            "providers": ["CPUExecutionProvider"],
        }

    def session_options(self) -> ort.SessionOptions:
        """Options for a session that runs as this runtime measures (:meth:`session_settings`)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = self._level
        options.log_severity_level = 3
        return options

    def __repr__(self) -> str:
        return (
            f"OnnxRuntimeCPU(threads={self.threads}, graph_optimization={self.graph_optimization!r},"
            f" precision={self.precision!r})"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "version": ort.__version__,
            "threads": self.threads,
            "execution_provider": "CPUExecutionProvider",
            "graph_optimization": self.graph_optimization,
            "precision": self.precision,
        }


class TorchEagerCPU(Runtime):
    """The ``nn.Module`` itself, run eagerly by PyTorch on the CPU under ``inference_mode``."""

    name = "torch_eager"
    #: What runs the module, for run records.
    provider = "cpu"

    def __init__(self, threads: int = 1) -> None:
        self.threads = _check_threads(threads)

    def _runnable(self, model: nn.Module, example: torch.Tensor) -> Callable[[torch.Tensor], Any]:
        # The module may be shared with other objectives; never switch it to eval in place.
        return copy.deepcopy(model).eval() if model.training else model

    def prepare(self, model: nn.Module, example: torch.Tensor, workdir: Path) -> Callable[[], None]:
        x = example.detach().cpu()
        net = self._runnable(model, x)
        threads = self.threads

        def run() -> None:
            # Switching per call costs well under a microsecond and keeps the process-wide
            # setting untouched between calls, whoever calls this.
            with torch_threads(threads), torch.inference_mode():
                net(x)

        return run

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "version": torch.__version__,
            "threads": self.threads,
            "execution_provider": self.provider,
        }


class TorchCompileCPU(TorchEagerCPU):
    """The ``nn.Module`` compiled by ``torch.compile`` (inductor, static shapes) for the CPU and
    run under ``inference_mode``, as :class:`TorchEagerCPU` runs the module itself.

    Compiling is setup, not inference: ``prepare`` compiles and runs the example once (10-40 s
    for an NB201 network on one core of this machine, which needs a C++ compiler), so the timed
    calls run the generated kernels. Each ``prepare`` first resets dynamo: networks of one space
    share their ``forward`` code, and past dynamo's recompile limit a new network would silently
    run eagerly. Inductor fixes its kernels' thread count when it compiles, so it compiles under
    ``threads``.
    """

    name = "torch_compile"
    provider = "cpu (inductor)"

    def _runnable(self, model: nn.Module, example: torch.Tensor) -> Callable[[torch.Tensor], Any]:
        torch._dynamo.reset()
        with torch_threads(self.threads), torch.inference_mode():
            compiled = torch.compile(copy.deepcopy(model).eval(), dynamic=False, fullgraph=True)
            compiled(example)
        return compiled


class CudaEventRun(DeviceTimedRun):
    """One inference on the GPU, timed by CUDA events recorded on the current stream around it."""

    def __init__(self, net: nn.Module, x: torch.Tensor, device: torch.device, threads: int) -> None:
        self._net = net
        self._x = x
        self._device = device
        self._threads = threads
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def timed_ms(self) -> float:
        # The host thread count matters only for launch overhead; keep it fixed all the same.
        with torch_threads(self._threads), torch.inference_mode(), torch.cuda.device(self._device):
            self._start.record()
            self._net(self._x)
            self._end.record()
            # Waiting for the end event bounds the sample to this inference's kernels, and makes
            # the call return only once the work is done (energy meters need that too).
            self._end.synchronize()
        return float(self._start.elapsed_time(self._end))


class TorchCUDA(Runtime):
    """The ``nn.Module`` run eagerly by PyTorch on an NVIDIA GPU, timed with CUDA events.

    ``prepare`` moves an eval-mode copy of the model and the example to ``cuda:<device_index>``
    and returns a :class:`CudaEventRun`: the ``measure_*`` functions then take GPU time from the
    events rather than the host clock, which around asynchronous launches would time the launch.
    cuDNN autotuning is left off (PyTorch's default), so a measurement does not depend on which
    algorithm a benchmark pass happened to pick.
    """

    name = "torch_cuda"

    def __init__(self, device_index: int = 0, threads: int = 1) -> None:
        self.threads = _check_threads(threads)
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"runtime torch_cuda asked for, but torch.cuda.is_available() is False on "
                f"{socket.gethostname()} (torch {torch.__version__}, built for CUDA "
                f"{torch.version.cuda}); use OnnxRuntimeCPU or TorchEagerCPU"
            )
        count = torch.cuda.device_count()
        if isinstance(device_index, bool) or not isinstance(device_index, int) or not 0 <= device_index < count:
            raise ValueError(f"device_index must be one of 0..{count - 1} (GPUs visible), got {device_index!r}")
        self.device_index = device_index
        self.device = torch.device("cuda", device_index)

    def prepare(self, model: nn.Module, example: torch.Tensor, workdir: Path) -> CudaEventRun:
        # A copy: the caller's module stays on its device and in its mode.
        net = copy.deepcopy(model).eval().to(self.device)
        x = example.detach().to(self.device)
        return CudaEventRun(net, x, self.device, self.threads)

    def describe(self) -> dict[str, Any]:
        properties = torch.cuda.get_device_properties(self.device_index)
        return {
            "runtime": self.name,
            "version": torch.__version__,
            "threads": self.threads,
            "execution_provider": f"cuda:{self.device_index}",
            "device": properties.name,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }

    def __repr__(self) -> str:
        return f"TorchCUDA(device_index={self.device_index}, threads={self.threads})"
