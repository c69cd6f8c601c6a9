"""Latency objectives: measured live on this machine through a pluggable runtime."""

from latency_predictors._live import MeasuredLatency, cpu_model_name
from latency_predictors._measure import LatencyStats, measure_latency_ms
from latency_predictors._runtimes import OnnxRuntimeCPU, Runtime, TorchEagerCPU, torch_threads

__all__ = [
    "LatencyStats",
    "MeasuredLatency",
    "OnnxRuntimeCPU",
    "Runtime",
    "TorchEagerCPU",
    "cpu_model_name",
    "measure_latency_ms",
    "torch_threads",
]
