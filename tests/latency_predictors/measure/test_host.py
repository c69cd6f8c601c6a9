"""Host metadata: every field present, read or saying why not, and JSON-ready."""

from __future__ import annotations

import json
import os
import sys

import onnxruntime
import torch

from latency_predictors.measure import host_metadata


def test_host_metadata_fields() -> None:
    info = host_metadata()
    json.dumps(info)
    assert info["logical_cores"] == os.cpu_count()
    assert info["python"] == sys.version.split()[0]
    assert info["torch"] == torch.__version__ and info["onnxruntime"] == onnxruntime.__version__
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["cpu_model"] and info["kernel"]
    for key in ("governor", "freq_cur_mhz", "freq_min_mhz", "freq_max_mhz", "physical_cores"):
        value = info[key]
        assert isinstance(value, (int, float)) or (isinstance(value, str) and value), key
    if isinstance(info["freq_max_mhz"], float):
        assert info["freq_max_mhz"] > 0
    assert info["cuda"]["available"] == torch.cuda.is_available()
