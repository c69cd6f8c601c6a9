"""Runtimes: how a built network is executed for a latency measurement.

Each runtime is a small class (configs pick one by ``_target_``); ``prepare`` does all the slow
setup (export, session creation) so the callable it returns times inference only.
"""

from __future__ import annotations

import contextlib
import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import onnxruntime as ort
import torch
from torch import nn

from nas.export import INPUT_NAME, OUTPUT_NAME, export_onnx


# onnxruntime's optimisation levels, by the names configs use.
_GRAPH_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


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

        ``workdir`` may receive files (an exported graph); the caller owns and removes it.
        """

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Runtime name, library version, threads and execution provider, for run records."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(threads={self.threads})"


class OnnxRuntimeCPU(Runtime):
    """The network exported to ONNX (TorchScript exporter) and run by onnxruntime on the CPU."""

    def __init__(self, threads: int = 1, graph_optimization: str = "all") -> None:
        if graph_optimization not in _GRAPH_OPTIMIZATION:
            raise ValueError(
                f"graph_optimization {graph_optimization!r} is not one of {sorted(_GRAPH_OPTIMIZATION)}"
            )
        self.threads = _check_threads(threads)
        self.graph_optimization = graph_optimization
        self._level = _GRAPH_OPTIMIZATION[graph_optimization]
        # The optimisation level changes the latency, so a non-default one shows in the name.
        self.name = "onnxruntime" if graph_optimization == "all" else f"onnxruntime_{graph_optimization}"

    def prepare(self, model: nn.Module, example: torch.Tensor, workdir: Path) -> Callable[[], None]:
        # Tracing a small batch gains nothing from threads, and under CPU contention (other
        # trials, other processes) torch's spinning OpenMP threads made export 3-5x slower.
        with torch_threads(1):
            path = export_onnx(model, example, Path(workdir) / "model.onnx", dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = self._level
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {INPUT_NAME: example.detach().cpu().numpy()}
        outputs = [OUTPUT_NAME]

        def run() -> None:
            session.run(outputs, feed)

        return run

    def __repr__(self) -> str:
        return f"OnnxRuntimeCPU(threads={self.threads}, graph_optimization={self.graph_optimization!r})"

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "version": ort.__version__,
            "threads": self.threads,
            "execution_provider": "CPUExecutionProvider",
            "graph_optimization": self.graph_optimization,
        }


class TorchEagerCPU(Runtime):
    """The ``nn.Module`` itself, run eagerly by PyTorch on the CPU under ``inference_mode``."""

    name = "torch_eager"

    def __init__(self, threads: int = 1) -> None:
        self.threads = _check_threads(threads)

    def prepare(self, model: nn.Module, example: torch.Tensor, workdir: Path) -> Callable[[], None]:
        # The module may be shared with other objectives; never switch it to eval in place.
        net = copy.deepcopy(model).eval() if model.training else model
        x = example.detach().cpu()
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
            "execution_provider": "cpu",
        }
