"""latency_predictors.measure's modules are private: everything else uses its public face."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import latency_predictors
import latency_predictors.measure

REPO = Path(__file__).resolve().parents[3]
PACKAGE = REPO / "latency_predictors" / "measure"
OWN_TESTS = Path(__file__).resolve().parent  # white-box tests of the private modules' helpers
PRIVATE_MODULE = re.compile(r"^latency_predictors(\.measure)?\._")
PUBLIC_FACES = {"latency_predictors", "latency_predictors.measure"}


def private_imports(source: str) -> list[str]:
    """The private measurement modules (or private names of the public faces) ``source`` imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if PRIVATE_MODULE.match(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if PRIVATE_MODULE.match(node.module):
                found.append(node.module)
            elif node.module in PUBLIC_FACES:
                found += [f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("_")]
    return found


def outside_files(suffix: str) -> list[Path]:
    roots = [REPO / name for name in ("nas", "search_spaces", "latency_predictors", "scripts", "tests", "configs")]
    return sorted(
        path
        for root in roots
        for path in root.rglob(f"*{suffix}")
        if not path.is_relative_to(PACKAGE) and not path.is_relative_to(OWN_TESTS)
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from latency_predictors.measure._profile import ProfileWriter", ["latency_predictors.measure._profile"]),
        ("import latency_predictors.measure._drift as d", ["latency_predictors.measure._drift"]),
        ("from latency_predictors.measure import _energy, RaplMeter", ["latency_predictors.measure._energy"]),
        ("from latency_predictors._selection import uniform", ["latency_predictors._selection"]),
        ("from latency_predictors.measure import ProfileWriter\nimport latency_predictors", []),
        ("from latency_predictors.predictors._format import read_header", []),  # another package's rule
    ],
)
def test_the_check_finds_private_imports(source: str, expected: list[str]) -> None:
    assert private_imports(source) == expected


def test_nothing_outside_the_package_imports_its_private_modules() -> None:
    files = outside_files(".py")
    assert REPO / "nas" / "cli" / "profile.py" in files and REPO / "scripts" / "gpu_proof.py" in files
    offenders = {str(path.relative_to(REPO)): found for path in files if (found := private_imports(path.read_text()))}
    assert offenders == {}, "import these names from latency_predictors.measure instead"


def test_no_config_targets_a_private_module() -> None:
    targets = {
        str(path.relative_to(REPO)): line.strip()
        for path in outside_files(".yaml")
        for line in path.read_text().splitlines()
        if re.search(r"latency_predictors(\.measure)?\._", line)
    }
    assert targets == {}


def test_the_public_face_is_whole_and_reexported_at_the_top() -> None:
    for name in latency_predictors.measure.__all__:
        assert getattr(latency_predictors.measure, name) is getattr(latency_predictors, name), name
    assert set(latency_predictors.measure.__all__) <= set(latency_predictors.__all__)
    assert len(set(latency_predictors.measure.__all__)) == len(latency_predictors.measure.__all__)
