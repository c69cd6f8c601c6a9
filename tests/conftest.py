"""Shared fixtures. The benchmark tables are found through one setting: HWNAS_DATA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


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
