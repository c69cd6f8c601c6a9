"""The errors hwnas explains: input or setup a user can fix, as opposed to a bug in hwnas.

Each such error derives from :class:`HwnasError` and from the built-in type it always had (so
``except ValueError`` keeps working): ``class TableFormatError(HwnasError, ValueError)``. The
commands print its message, without a traceback, and exit with :data:`USER_ERROR_EXIT`; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["USER_ERROR_EXIT", "HwnasError", "MissingFileError", "user_error"]

#: Exit status of a command refused for its input (argparse's, for a bad command line).
USER_ERROR_EXIT = 2


class HwnasError(Exception):
    """Input or setup a user can fix; the message names the value, where it came from and what to do."""


class MissingFileError(HwnasError, FileNotFoundError):
    """A file or folder a setting names that is not there (the message says which setting)."""


def user_error(error: BaseException) -> HwnasError | None:
    """The :class:`HwnasError` behind ``error`` (itself, or the one it was raised from or while
    handling, as when OmegaConf wraps what a resolver raised); None for anything else."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, HwnasError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
