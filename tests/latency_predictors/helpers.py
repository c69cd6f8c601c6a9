"""Shared by the predictor tests: rows of a shared table as architectures and targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas import Architecture, SearchSpace
from nas.tables import cached_table

#: A device fingerprint for predictors fitted in tests.
DEVICE = "0123456789abcdef"


def table_rows(
    data_dir: Path, space: SearchSpace, rows: np.ndarray, device: str = "raspi4"
) -> tuple[list[Architecture], np.ndarray]:
    """The architectures of ``rows`` of ``space``'s table and their ``device`` latencies."""
    table = cached_table(data_dir / space.name)
    return [space.parse(table.archs[i]) for i in rows], table.column("latency_ms", device)[rows]
