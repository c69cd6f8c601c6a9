"""Every command's --help says what it does, its main options, an example, and only its own groups."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from omegaconf import DictConfig, OmegaConf

from nas.cli import CONFIG_DIR
from tests.nas.cli.helpers import run_command

COMMANDS = ["search", "fit", "profile", "train_supernet", "pipeline", "score", "export", "compare"]
ALL_GROUPS = {p.name for p in Path(CONFIG_DIR).iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__")}


def own_groups(command: str) -> set[str]:
    defaults = OmegaConf.load(Path(CONFIG_DIR) / f"{command}.yaml").defaults
    return {next(iter(e)) for e in defaults if isinstance(e, DictConfig) and not next(iter(e)).startswith("override ")}


@pytest.mark.parametrize("command", COMMANDS)
def test_help_describes_the_command_and_lists_only_its_groups(command: str, tmp_path: Path) -> None:
    result = run_command(command, "--help", cwd=tmp_path, timeout_s=300)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout
    name = f"hwnas-{command.replace('_', '-')}"
    assert text.startswith(f"{name}: ")  # what it does, first
    assert f"Usage: {name} " in text and "Main options" in text
    assert re.search(rf"^Examples:\n  {name} ", text, re.MULTILINE)
    section = text.split("Config groups", 1)[1].split("\n\n", 1)[0]
    assert set(re.findall(r"^  (\w+): ", section, re.MULTILINE)) == own_groups(command)
    assert not {g for g in ALL_GROUPS - own_groups(command) if re.search(rf"^\s*{g}: ", text, re.MULTILINE)}
    # The current values are shown, with the command line's overrides applied.
    assert "data_dir=" in text or command in ("profile", "export", "compare")  # none reads the tables
