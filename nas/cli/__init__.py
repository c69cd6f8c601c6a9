"""Entry points: the only code that sees Hydra's DictConfig."""

from pathlib import Path

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
