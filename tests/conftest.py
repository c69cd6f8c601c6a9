"""Shared fixtures. The benchmark tables are found through one setting: HWNAS_DATA."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
#: The PostgreSQL fixture (a server started by .ci/start-postgres) for every test that asks for it.
pytest_plugins = ["tests.nas.postgres"]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tests run networks at batch 1-2, where intra-op threads gain nothing, and on a shared
    2-core machine OpenMP barriers wait out other processes' time slices (a 1 ms block then takes
    100+ ms: one test file went from 18 s to 116 s). Measurement code sets its own threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data_dir_setting() -> Path:
    return Path(os.environ.get("HWNAS_DATA", DEFAULT_DATA)).resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared benchmark tables; skips (or fails under CI=true) when they are absent."""
    path = data_dir_setting()
    if not (path / "nb201" / "archs.csv").is_file():
        message = (
            f"benchmark tables not found at {path}: put the shared tables at ../shared/data "
            "beside the repository or set HWNAS_DATA=/path/to/data"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
