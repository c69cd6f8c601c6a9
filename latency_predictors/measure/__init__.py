"""Measurement on this machine: what hwnas-profile and live searches time, and how.

This package owns: runtimes that prepare a network for timing (onnxruntime fp32/int8, PyTorch
eager CPU, CUDA events), the timing itself (warm-up, repeats, adaptive stopping, Tukey outliers,
stability checks), energy meters (RAPL, NVML), the live latency objective and the one rule that
names the device a runtime measures on, drift monitoring against a fixed reference network, host
metadata, which architectures a profile measures (selections), and profiles: network and layer
tables written row by row, resumable, in the benchmark-table format (their ``device.json`` is
written and read by :class:`nas.Device`).

Everything outside this package imports these names from here (or from ``latency_predictors``);
the ``_x`` modules are private.
"""

from latency_predictors.measure._bench import (
    Bench,
    BenchError,
    LiveBench,
    Reading,
    TableBench,
    measure_into,
    open_profile,
)
from latency_predictors.measure._deployed import DeployedLatency
from latency_predictors.measure._drift import (
    DriftError,
    DriftMonitor,
    DriftReport,
    reference_input,
    reference_model,
)
from latency_predictors.measure._energy import (
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
from latency_predictors.measure._fidelity import (
    DEAD_VARIANCE,
    DeployedAccuracy,
    Int8Agreement,
    Int8Fidelity,
    compare_int8,
    int8_fidelity,
    quantize_on_images,
)
from latency_predictors.measure._host import host_metadata
from latency_predictors.measure._layers import (
    LAYERS_FILE,
    LayerProfileWriter,
    all_layers,
    covering_architectures,
    distinct_layers,
    profile_layers,
)
from latency_predictors.measure._live import MeasuredLatency, cpu_model_name, runtime_device
from latency_predictors.measure._measure import (
    UNSTABLE_IQR_RATIO,
    DeviceTimedRun,
    LatencyStats,
    check_iqr_ratio,
    check_repeat_counts,
    measure_latency_ms,
    measure_until_stable,
)
from latency_predictors.measure._profile import (
    NO_ENERGY_METER,
    SPREADS_FILE,
    EnergyMeasure,
    Measure,
    ProfileCorruptError,
    ProfileMismatchError,
    ProfileRun,
    ProfileWriter,
    RowStability,
    profile_architectures,
)
from latency_predictors.measure._runtimes import (
    PRECISIONS,
    CudaEventRun,
    OnnxRuntimeCPU,
    Runtime,
    TorchCompileCPU,
    TorchCUDA,
    TorchEagerCPU,
    quantize_int8,
    torch_threads,
)
from latency_predictors.measure._selection import (
    Selection,
    SelectionError,
    every,
    from_list,
    read_architecture_list,
    stratified_by_flops,
    uniform,
)

__all__ = [
    "DEAD_VARIANCE",
    "Bench",
    "BenchError",
    "LiveBench",
    "Reading",
    "TableBench",
    "measure_into",
    "open_profile",
    "LAYERS_FILE",
    "NO_ENERGY_METER",
    "PRECISIONS",
    "SPREADS_FILE",
    "UNSTABLE_IQR_RATIO",
    "CudaEventRun",
    "DeviceTimedRun",
    "DriftError",
    "DriftMonitor",
    "DriftReport",
    "EnergyMeasure",
    "EnergyMeasurementError",
    "EnergyMeter",
    "EnergyMeterUnavailable",
    "EnergyPermissionError",
    "EnergyProbe",
    "EnergyStats",
    "LatencyStats",
    "LayerProfileWriter",
    "Measure",
    "MeasuredLatency",
    "DeployedAccuracy",
    "Int8Agreement",
    "Int8Fidelity",
    "compare_int8",
    "int8_fidelity",
    "quantize_on_images",
    "DeployedLatency",
    "NvmlMeter",
    "OnnxRuntimeCPU",
    "ProfileCorruptError",
    "ProfileMismatchError",
    "ProfileRun",
    "ProfileWriter",
    "RaplMeter",
    "RowStability",
    "Runtime",
    "Selection",
    "SelectionError",
    "TorchCUDA",
    "TorchCompileCPU",
    "TorchEagerCPU",
    "all_layers",
    "check_iqr_ratio",
    "check_repeat_counts",
    "covering_architectures",
    "cpu_model_name",
    "detect_energy_meter",
    "distinct_layers",
    "every",
    "from_list",
    "host_metadata",
    "measure_energy_mj",
    "measure_latency_ms",
    "measure_until_stable",
    "probe_energy_meters",
    "profile_architectures",
    "profile_layers",
    "quantize_int8",
    "read_architecture_list",
    "reference_input",
    "reference_model",
    "runtime_device",
    "stratified_by_flops",
    "torch_threads",
    "uniform",
]
