"""Latency objectives: measured live on this machine through a pluggable runtime; energy meters,
drift monitoring and host metadata for measured profiles."""

from latency_predictors._drift import (
    DriftError,
    DriftMonitor,
    DriftReport,
    reference_input,
    reference_model,
)
from latency_predictors._energy import (
    EnergyMeasurementError,
    EnergyMeter,
    EnergyMeterUnavailable,
    EnergyPermissionError,
    EnergyProbe,
    EnergyStats,
    NvmlMeter,
    RaplMeter,
    detect_energy_meter,
    measure_energy_mj,
    probe_energy_meters,
)
from latency_predictors._host import host_metadata
from latency_predictors._layers import LayerProfileWriter, all_layers, distinct_layers, profile_layers
from latency_predictors._live import MeasuredLatency, cpu_model_name
from latency_predictors._measure import (
    DeviceTimedRun,
    LatencyStats,
    measure_latency_ms,
    measure_until_stable,
)
from latency_predictors.predictors import (
    FlopsPredictor,
    GradientBoostingPredictor,
    LayerSumPredictor,
    MLPEnsemblePredictor,
)
from latency_predictors._profile import (
    ProfileCorruptError,
    ProfileMismatchError,
    ProfileWriter,
    profile_architectures,
)
from latency_predictors._runtimes import (
    PRECISIONS,
    CudaEventRun,
    OnnxRuntimeCPU,
    Runtime,
    TorchCUDA,
    TorchEagerCPU,
    quantize_int8,
    torch_threads,
)
from latency_predictors._selection import FromList, Stratified, Uniform, from_list, stratified_by_flops, uniform

__all__ = [
    "FlopsPredictor",
    "GradientBoostingPredictor",
    "LayerSumPredictor",
    "MLPEnsemblePredictor",
    "CudaEventRun",
    "DeviceTimedRun",
    "DriftError",
    "DriftMonitor",
    "DriftReport",
    "EnergyMeasurementError",
    "EnergyMeter",
    "EnergyMeterUnavailable",
    "EnergyPermissionError",
    "EnergyProbe",
    "EnergyStats",
    "FromList",
    "LatencyStats",
    "LayerProfileWriter",
    "MeasuredLatency",
    "NvmlMeter",
    "OnnxRuntimeCPU",
    "PRECISIONS",
    "ProfileCorruptError",
    "ProfileMismatchError",
    "ProfileWriter",
    "RaplMeter",
    "Runtime",
    "Stratified",
    "TorchCUDA",
    "TorchEagerCPU",
    "Uniform",
    "all_layers",
    "cpu_model_name",
    "detect_energy_meter",
    "distinct_layers",
    "from_list",
    "host_metadata",
    "measure_energy_mj",
    "measure_latency_ms",
    "measure_until_stable",
    "probe_energy_meters",
    "profile_architectures",
    "profile_layers",
    "quantize_int8",
    "reference_input",
    "reference_model",
    "stratified_by_flops",
    "torch_threads",
    "uniform",
]
