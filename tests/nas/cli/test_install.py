"""A non-editable install runs: the wheel carries the configs and every command finds them.

The wheel is built from this checkout and installed with ``pip install --target`` into a temporary
folder; each command then runs from another temporary folder with only that install on
PYTHONPATH, so nothing can fall back on the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
COMMANDS = ["search", "fit", "profile", "train_supernet", "pipeline", "score", "export", "compare"]
ROOTS = ["nas", "search_spaces", "latency_predictors"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the --target folder, the wheel) of a fresh build of this checkout."""
    wheels, target = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("target")
    # Built from a copy of the checkout's files (tracked, and new ones git does not ignore): a build
    # in the checkout would leave build/ there, whose stale modules could slip into later wheels.
    source = tmp_path_factory.mktemp("source")
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # No build isolation: the build uses this environment's setuptools instead of downloading one.
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True)
    (wheel,) = wheels.glob("hwnas-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    return target, wheel


def run_installed(target: Path, cwd: Path, *command: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "HWNAS_DATA")}
    env["PYTHONPATH"] = str(target)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_wheel_holds_every_package_and_config(installed: tuple[Path, Path]) -> None:
    _, wheel = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(REPO)) for root in ROOTS for p in (REPO / root).rglob("__init__.py")}
    assert {p for p in packages if f"{p}/__init__.py" not in names} == set()  # pyproject.toml's list
    configs = {str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.yaml")}
    assert {c for c in configs if f"hwnas_configs/{c}" not in names} == set()


@pytest.mark.slow
def test_the_installed_code_and_configs_are_the_ones_used(installed: tuple[Path, Path], tmp_path: Path) -> None:
    target, _ = installed
    result = run_installed(
        target, tmp_path, sys.executable, "-c", "import nas, nas.cli; print(nas.__file__); print(nas.cli.CONFIG_DIR)"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    code, configs = result.stdout.split()
    assert Path(code).resolve().is_relative_to(target.resolve())
    assert Path(configs).resolve() == (target / "hwnas_configs").resolve()


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_runs_from_the_wheel(command: str, installed: tuple[Path, Path], tmp_path: Path) -> None:
    target, _ = installed
    script = f"hwnas-{command.replace('_', '-')}"  # the console script pip wrote
    help_text = run_installed(target, tmp_path, str(target / "bin" / script), "--help")
    assert help_text.returncode == 0, help_text.stderr[-3000:]
    assert f"{script}:" in help_text.stdout
    given = {"export": [f"run_dir={tmp_path}"], "compare": [f"runs=[{tmp_path}]"]}.get(command, [])  # required values
    job = run_installed(
        target, tmp_path, sys.executable, "-m", f"nas.cli.{command}", *given, "--cfg", "job", "--resolve"
    )
    assert job.returncode == 0, job.stderr[-3000:]
    if command not in ("export", "compare"):  # the commands that read no tables
        # Not a checkout: the tables default to ../shared/data beside the working directory.
        assert f"data_dir: {tmp_path.parent.resolve() / 'shared' / 'data'}" in job.stdout
