"""How every command ends on an error it can explain, and on Ctrl-C or SIGTERM: one message in
the console and the run's log, no traceback. Any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf import DictConfig
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

from nas.errors import USER_ERROR_EXIT, user_error

log = logging.getLogger("hwnas")

T = TypeVar("T")

#: The exit status of a command stopped by Ctrl-C or SIGTERM, what finished written (128 + SIGINT).
INTERRUPTED_EXIT = 130


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised where the command is as Ctrl-C would be, so the same cleanup runs."""


def _terminate(signum: int, frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _say(level: int, message: str) -> None:
    """``message`` on stderr, where a shell and a scheduler look for errors, and in the run's log
    file (not again on the console, where Hydra's handler writes to stdout)."""
    print(message, file=sys.stderr)
    record = log.makeRecord(log.name, level, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _missing_key(error: MissingMandatoryValue | InterpolationToMissingValueError) -> str:
    """The key that has no value (an interpolation's error names the key that read it, and the
    missing one in its message)."""
    message = str(error).splitlines()[0]
    marker = "Missing mandatory value: "
    return message.split(marker, 1)[1].strip() if marker in message else str(error.full_key)


def explained(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """``task`` (a Hydra task function), ending with exit status 2 and the message of a
    :class:`nas.HwnasError` (also one raised while Hydra resolved a setting), or 130 on Ctrl-C or
    SIGTERM (what was written so far stays: every command writes as it goes)."""

    @functools.wraps(task)
    def run(cfg: DictConfig) -> T:
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
        try:
            return task(cfg)
        except KeyboardInterrupt as interrupt:
            name = str(interrupt) or "SIGINT"
            _say(logging.WARNING, f"{name}: stopped; what was written is kept, and the same command goes on from there")
            sys.exit(INTERRUPTED_EXIT)
        except (MissingMandatoryValue, InterpolationToMissingValueError) as missing:
            # a setting the chosen options leave to the user (e.g. device=predicted's device.latency)
            _say(logging.ERROR, f"missing setting: {_missing_key(missing)} has no value; give it on the command line")
            sys.exit(USER_ERROR_EXIT)
        except Exception as error:
            explained = user_error(error)
            if explained is None:
                raise
            _say(logging.ERROR, f"{type(explained).__name__}: {explained}")
            sys.exit(USER_ERROR_EXIT)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return run
