"""One process per run directory and worker: the same command started twice on one directory
would interleave two runs' trials, rows and files. Workers of one search share a directory on
purpose, each with its own ``worker=`` index, so the lock is the pair (directory, worker).

The lock is an advisory ``flock`` on ``<run dir>/.hwnas-worker<N>.lock``, held while the process
lives: a killed process releases it, so a rerun is never locked out by a stale file.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import IO

from nas.errors import USER_ERROR_EXIT

_HELD: dict[Path, IO[str]] = {}


def lock_file(run_dir: Path, worker: int) -> Path:
    return run_dir / f".hwnas-worker{worker}.lock"


def claim(run_dir: Path, worker: int, command: str) -> None:
    """Hold ``run_dir``'s lock for ``worker``, or end the process with one message naming the
    process that holds it (exit 2): nothing has been written into the directory yet."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = lock_file(run_dir, worker)
    if path in _HELD:
        return
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        print(
            f"RunDirectoryInUse: {run_dir} is in use by {holder} as worker={worker}. Wait for it, give "
            "another run directory (hydra.run.dir=...), or, to add a worker to the same search, another "
            "worker=<index>",
            file=sys.stderr,
        )
        raise SystemExit(USER_ERROR_EXIT) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{command} (pid {os.getpid()})\n")
    handle.flush()
    _HELD[path] = handle


def release(run_dir: Path, worker: int) -> None:
    handle = _HELD.pop(lock_file(run_dir, worker), None)
    if handle is not None:
        handle.close()  # closing drops the flock
