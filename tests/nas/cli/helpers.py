"""Running hwnas's commands as a user does, in a fresh Python process: the CLI tests' one way in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def run_command(
    command: str, *overrides: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout_s: float = 600
) -> subprocess.CompletedProcess:
    """``python -m nas.cli.<command> <overrides>`` in ``cwd`` (environment ``env``, default this
    one's); its exit status and output, captured."""
    return subprocess.run(
        [sys.executable, "-m", f"nas.cli.{command}", *overrides],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
