"""The bad-input probe's cases, a few of each kind in CI (``python scripts/probe_bad_inputs.py``
runs all of them by hand): each is refused cleanly, naming the bad value."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.nas.cli.helpers import REPO

sys.path.insert(0, str(REPO / "scripts"))
try:
    from probe_bad_inputs import CASES, run_case
finally:
    sys.path.remove(str(REPO / "scripts"))

SAMPLED = [
    "search n_trials fraction",
    "search constraint not a mapping",
    "table repeated architecture",
    "predictor array edited",
    "profile list not utf-8",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", SAMPLED)
def test_a_probe_case_is_handled_as_expected(name: str, data_dir: Path) -> None:
    (case,) = [c for c in CASES if c.name == name]
    outcome, message = run_case(case, data_dir)
    assert outcome == case.expect, message
    assert case.names in message
