"""Optuna's RDBStorage, with errors that say what went wrong and what to do.

Optuna turns a missing database driver into "Failed to import DB access module" and leaves the
real cause (which module, for which dialect) in the exception chain, which Hydra does not print.
SQLAlchemy 2 reads ``postgresql://`` as ``postgresql+psycopg`` (psycopg 3), so a user who installed
psycopg2 meets exactly that. Here the message names the URL's dialect and driver, the module that
cannot be imported and the package to install; a server that cannot be reached is named by host and
port. URLs appear in messages with the password masked.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError, ProgrammingError

from nas.errors import HwnasError

#: What to do when a driver module cannot be imported, by module name.
DRIVER_FIXES: dict[str, str] = {
    "psycopg": "pip install 'hwnas[postgres]' (psycopg[binary], psycopg 3); or, if psycopg2 is "
    "what you have installed, write postgresql+psycopg2:// instead",
    "psycopg2": "pip install psycopg2-binary; or write postgresql:// and pip install 'hwnas[postgres]' (psycopg 3)",
    "pg8000": "pip install pg8000; or write postgresql:// and pip install 'hwnas[postgres]'",
    "MySQLdb": "pip install mysqlclient; or write mysql+pymysql:// and pip install PyMySQL",
    "pymysql": "pip install PyMySQL",
}
# Why: libpq and MySQL name the port they tried, but a message of ours should too.
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
URL_FORM = "dialect[+driver]://user:password@host[:port]/database, e.g. postgresql://user:pw@host/hwnas"


class StorageURLError(HwnasError, ValueError):
    """A storage URL that SQLAlchemy cannot parse, or whose dialect or driver it does not know."""


class StorageDriverError(HwnasError, ImportError):
    """A storage URL whose database driver module cannot be imported."""


class StorageConnectionError(HwnasError, ConnectionError):
    """A storage database that cannot be reached or opened (server down, wrong login, no database)."""


#: Attempts at opening a storage whose schema another worker may be creating at the same moment.
SCHEMA_ATTEMPTS = 5


def rdb_storage(url: str, **kwargs: Any) -> optuna.storages.RDBStorage:
    """``optuna.storages.RDBStorage(url, **kwargs)``, raising the errors above instead of its own.

    Workers started together on an empty database race to create Optuna's tables and version row
    (RDBStorage does it without a lock: optuna/optuna#1092); the loser sees a duplicate-key or
    "already exists" error. Opening again then finds the schema the winner made, so those errors
    are retried a few times before they are raised.
    """
    parsed = _parse(url)
    masked = parsed.render_as_string(hide_password=True)
    for attempt in range(1, SCHEMA_ATTEMPTS + 1):
        try:
            return _open(url, parsed, masked, kwargs)
        except (IntegrityError, ProgrammingError):
            if attempt == SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _open(url: str, parsed: URL, masked: str, kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    try:
        return optuna.storages.RDBStorage(url, **kwargs)
    except NoSuchModuleError as e:
        raise StorageURLError(f"storage URL {masked}: {_unknown_dialect(parsed)}") from e
    except ImportError as e:
        raise StorageDriverError(_missing_driver(parsed, masked, e)) from e
    except OperationalError as e:
        raise StorageConnectionError(_unreachable(parsed, masked, e)) from e


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError as e:
        # Why not echo the URL: an unparsable one may still hold a password.
        raise StorageURLError(f"storage URL is not a database URL; write {URL_FORM}") from e


def _unknown_dialect(url: URL) -> str:
    if url.get_backend_name() == "postgres":
        return "SQLAlchemy has no dialect 'postgres'; PostgreSQL is postgresql://user:pw@host/db"
    return f"SQLAlchemy {sqlalchemy.__version__} has no dialect or driver {url.drivername!r}; write {URL_FORM}"


def _missing_driver(url: URL, masked: str, error: ImportError) -> str:
    # Optuna raises its own ImportError from SQLAlchemy's; the deepest one names the module.
    cause: BaseException | None = error
    deepest = error
    while cause is not None:
        if isinstance(cause, ImportError):
            deepest = cause
        cause = cause.__cause__ or cause.__context__
    driver = url.get_driver_name()
    module = deepest.name or driver
    fix = DRIVER_FIXES.get(module, f"pip install the package that provides the module {module!r}")
    # Why say which driver: with no +driver in the URL, SQLAlchemy's default is easy to miss.
    chosen = (
        "the"
        if "+" in url.drivername
        else (
            f"{url.drivername}:// means {url.get_backend_name()}+{driver} in SQLAlchemy {sqlalchemy.__version__}, whose"
        )
    )
    return f"storage URL {masked}: {chosen} driver module {module!r} cannot be imported ({deepest}). To fix: {fix}."


def _unreachable(url: URL, masked: str, error: OperationalError) -> str:
    reason = " ".join(str(error.orig).split())  # the driver's own words, without SQLAlchemy's link
    if url.host is None:
        return f"cannot open the storage database {masked}: {reason}"
    port = url.port or DEFAULT_PORTS.get(url.get_backend_name(), "its default port")
    return (
        f"cannot connect to the storage database {url.database!r} at {url.host}:{port} as user "
        f"{url.username!r} ({masked}). Check that the server runs and accepts TCP connections "
        f"there, the user and password, and that the database exists. The driver says: {reason}"
    )
