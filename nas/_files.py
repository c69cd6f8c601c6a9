"""Files written whole or not at all: the text goes to a temporary file beside the target, is
flushed to disk, and the file is renamed over the target, so a kill (or a power cut) leaves the
old content or the new one, never half of either. Every run file, marker and repaired row file
is written this way."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["replace_text"]


def replace_text(path: Path, text: str) -> None:
    """``path`` now holds exactly ``text`` (UTF-8, newlines as given)."""
    temporary = path.with_name(f".{path.name}.partial")
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
