"""nas's core plugs components in through its interfaces: it must not import them (or Hydra)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import nas

FORBIDDEN = ("search_spaces", "latency_predictors", "hydra", "omegaconf")
CORE = sorted(m.name for m in pkgutil.walk_packages(nas.__path__, "nas.") if not m.name.startswith("nas.cli"))


def test_core_modules_import_no_component_and_no_hydra() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {CORE!r}: importlib.import_module(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"nas core imported {result.stdout.strip()}"
    assert "nas.search" in CORE and "nas.pareto" in CORE
