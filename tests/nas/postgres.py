"""A fresh database per test on the PostgreSQL server named by HWNAS_TEST_POSTGRES_URL."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

SETTING = "HWNAS_TEST_POSTGRES_URL"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """``postgresql://`` URL of an empty database, dropped after the test; skips (or fails under
    CI=true) when no server is configured."""
    base = os.environ.get(SETTING)
    if not base:
        message = (
            f"no PostgreSQL server for the shared-storage tests: set {SETTING}=postgresql://"
            "user:pw@127.0.0.1/db (a role that may create databases), e.g. the URL that "
            ".ci/start-postgres prints (run it as root on Debian: it installs and starts one)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = make_url(base)
    # Why a database per test: reruns and parallel tests never see each other's studies.
    name = f"hwnas_test_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        # The README's form: no +driver, so SQLAlchemy picks its default PostgreSQL driver.
        yield server.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        _drop(admin, name)
        admin.dispose()


def _drop(admin: sqlalchemy.Engine, name: str, attempts: int = 20) -> None:
    """Drop the test database. FORCE ends this role's leftover sessions, but not the server's own:
    a server process such as an autovacuum worker visiting the new database (likelier on a loaded
    machine; seen once in a full run here) makes the drop fail with InsufficientPrivilege until it
    leaves, within moments; so try again."""
    for attempt in range(attempts):
        try:
            with admin.connect() as connection:
                connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except sqlalchemy.exc.DBAPIError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
