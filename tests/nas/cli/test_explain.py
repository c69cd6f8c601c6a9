"""How commands end: an error a user can fix is one message and exit status 2; Ctrl-C or SIGTERM
is a message and 130, with what was written kept and the same command going on from there."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas import USER_ERROR_EXIT, HwnasError
from tests.nas.cli.helpers import REPO, run_command
from tests.nas.cli.test_profile_cli import DEVICE, TINY

#: ValueError subclasses that are not about a user's input: raised and caught inside hwnas.
INTERNAL = {"_Refused"}


def _classes() -> list[type]:
    found = []
    for package in ("nas", "latency_predictors", "search_spaces"):
        for module in pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}."):
            if ".cli" in module.name:
                continue
            for _, value in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
                if value.__module__ == module.name:
                    found.append(value)
    return found


def test_every_error_about_input_is_an_hwnas_error() -> None:
    """A ValueError of hwnas's own is about input a user gave, so the commands explain it."""
    errors = [c for c in _classes() if issubclass(c, ValueError) and c.__name__ not in INTERNAL]
    assert len(errors) >= 12
    assert [c.__qualname__ for c in errors if not issubclass(c, HwnasError)] == []


def test_a_bad_file_is_one_message_and_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "predictor.npz"
    junk.write_bytes(b"not a zip")
    result = run_command(
        "search", "device=predicted", f"device.latency={junk}", "progress=false", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert result.returncode == USER_ERROR_EXIT == 2
    said = result.stdout + result.stderr
    assert "PredictorFileError" in said and str(junk) in said and "Traceback" not in said


def test_sigterm_stops_a_profile_keeping_its_rows_and_the_rerun_completes(tmp_path: Path) -> None:
    out = tmp_path / "profile"
    command = [
        sys.executable,
        "-m",
        "nas.cli.profile",
        *TINY,
        "selection.pool=60",
        "n_archs=40",
        f"hydra.run.dir={out}",
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    table = out / "latency_ms.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if table.is_file() and len(table.read_text().splitlines()) > 3:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-3000:]
    assert "SIGTERM: stopped" in stdout + stderr and "Traceback" not in stdout + stderr
    kept = table.read_text().splitlines()[1:]
    assert 3 <= len(kept) < 40
    rerun = run_command("profile", *TINY, "selection.pool=60", "n_archs=40", f"hydra.run.dir={out}", timeout_s=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    rows = table.read_text().splitlines()[1:]
    assert len(rows) == 40 and rows[: len(kept)] == kept  # kept as measured, none twice
    assert len({row.split(",")[0] for row in rows}) == 40
    assert DEVICE in table.read_text().splitlines()[0]


@pytest.mark.parametrize("command", ["fit", "score", "train_supernet", "export", "compare", "pipeline"])
def test_every_command_explains_instead_of_a_traceback(command: str, tmp_path: Path) -> None:
    """A setting that names a file which is not there: one message, exit 2, in every command."""
    missing = tmp_path / "no_such_folder"
    setting = {
        "fit": f"data_dir={missing}",
        "score": f"selection=list selection.path={missing}",
        "train_supernet": f"data=imagefolder data.root={missing}",
        "export": f"run_dir={missing}",
        "compare": f"runs=[{missing}]",
        "pipeline": f"device=raspi4 objectives=accuracy_latency data_dir={missing}",
    }[command]
    result = run_command(command, *setting.split(), f"hydra.run.dir={tmp_path / 'run'}", timeout_s=300)
    said = result.stdout + result.stderr
    assert result.returncode == 2, (result.returncode, said[-3000:])
    assert str(missing) in said and "Traceback" not in said


@pytest.mark.parametrize("option", ["device=predicted", "deployment=profiled"])
def test_a_setting_left_to_the_user_is_named_when_missing(option: str, tmp_path: Path) -> None:
    """device=predicted and deployment=profiled need the predictor's run (device.latency): asked
    for by name, exit 2, no traceback."""
    result = run_command("search", option, f"hydra.run.dir={tmp_path}")
    assert result.returncode == USER_ERROR_EXIT
    assert "missing setting: device.latency has no value" in result.stderr
    assert "Traceback" not in result.stderr
