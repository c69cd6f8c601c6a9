"""One process per run directory and worker (nas.cli._lock): a second one is refused before it
writes anything; another worker index is welcome; a killed holder leaves no lock behind."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import _lock
from nas.errors import USER_ERROR_EXIT
from tests.nas.cli.helpers import REPO, run_command

HOLD = "import sys, time; from pathlib import Path; from nas.cli import _lock; _lock.claim(Path(sys.argv[1]), 0, 'holder'); print('held', flush=True); time.sleep(600)"


def hold(run_dir: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_held_directory_refuses_the_same_worker_and_admits_another(tmp_path: Path) -> None:
    holder = hold(tmp_path)
    try:
        with pytest.raises(SystemExit) as refused:
            _lock.claim(tmp_path, 0, "test")
        assert refused.value.code == USER_ERROR_EXIT
        _lock.claim(tmp_path, 1, "test")
        _lock.release(tmp_path, 1)
    finally:
        holder.kill()
        holder.wait()
    _lock.claim(tmp_path, 0, "test")  # the killed holder's lock went with it
    _lock.release(tmp_path, 0)


def test_a_second_search_on_a_run_directory_in_use_is_refused_before_writing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    holder = hold(run_dir)
    try:
        refused = run_command(
            "search", "budget.n_trials=2", "export.onnx=false", f"hydra.run.dir={run_dir}", cwd=tmp_path
        )
        assert refused.returncode == USER_ERROR_EXIT, refused.stderr[-2000:]
        assert f"{run_dir} is in use by holder (pid {holder.pid}) as worker=0" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert sorted(p.name for p in run_dir.iterdir()) == [".hwnas-worker0.lock"]
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    again = run_command("search", "budget.n_trials=2", "export.onnx=false", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (run_dir / "trials.csv").is_file()
