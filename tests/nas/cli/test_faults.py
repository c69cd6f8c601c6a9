"""The fault-injection script's fast part, in CI: hwnas-search and hwnas-profile SIGKILLed at a
random moment and rerun lose nothing, count the budget exactly and leave nothing running
(``python scripts/inject_faults.py`` runs every command, several kills each, by hand)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.nas.cli.helpers import REPO


@pytest.mark.slow
@pytest.mark.parametrize("command", ["search", "profile"])
def test_a_killed_command_loses_nothing_when_rerun(command: str, tmp_path: Path, data_dir: Path) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from inject_faults import cases, inject
    finally:
        sys.path.remove(str(REPO / "scripts"))
    said: list[str] = []
    problems = inject(cases(data_dir)[command], tmp_path, kills=1, rng=np.random.default_rng(0), log=said.append)
    assert problems == [], (problems, said)
    assert said and said[0].startswith(f"{command}: kill 1 at")
