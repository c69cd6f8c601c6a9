"""configs/storage/url.yaml's storage: the README's postgresql:// URL works against a real server,
and a missing driver, an unknown dialect or an unreachable server gets a message that says why."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path

import optuna
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from nas.cli import CONFIG_DIR
from nas.storage import StorageConnectionError, StorageDriverError, StorageURLError


def url_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage ``hwnas-search storage=url storage.url=<url>`` builds."""
    cfg = OmegaConf.load(Path(CONFIG_DIR) / "storage" / "url.yaml")
    cfg.url = url
    return instantiate(cfg)


def raised_by_url_storage(url: str) -> BaseException:
    """The error behind Hydra's InstantiationException (the one the user reads)."""
    with pytest.raises(Exception) as caught:
        url_storage(url)
    return caught.value.__cause__ or caught.value


def test_readme_postgresql_url_opens_one_study_for_two_workers(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")
    first, second = url_storage(postgres_url), url_storage(postgres_url)
    study = optuna.create_study(study_name="shared", storage=first, directions=["minimize"] * 2)
    study.add_trial(optuna.trial.create_trial(values=[1.0, 2.0]))
    seen = optuna.load_study(study_name="shared", storage=second)
    assert [t.values for t in seen.get_trials()] == [[1.0, 2.0]]


def test_readme_url_without_psycopg_names_the_extra_and_psycopg2_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # psycopg 3 is what SQLAlchemy 2 loads for postgresql://; None in sys.modules makes its import
    # fail just as an environment without it does (the issue: only psycopg2-binary installed).
    monkeypatch.setitem(sys.modules, "psycopg", None)
    error = raised_by_url_storage("postgresql://user:secret@127.0.0.1/hwnas")
    assert isinstance(error, StorageDriverError)
    message = str(error)
    assert "postgresql+psycopg" in message and "'psycopg'" in message
    assert "pip install 'hwnas[postgres]'" in message and "postgresql+psycopg2://" in message
    assert "secret" not in message


def test_a_driver_that_is_not_installed_is_named_with_its_fix() -> None:
    if importlib.util.find_spec("pg8000") is not None:
        pytest.skip("pg8000 is installed here; this test needs a driver that is not")
    error = raised_by_url_storage("postgresql+pg8000://user:secret@127.0.0.1/hwnas")
    assert isinstance(error, StorageDriverError) and isinstance(error, ImportError)
    message = str(error)
    assert "'pg8000'" in message and "pip install pg8000" in message
    assert "postgresql+pg8000://user:***@127.0.0.1/hwnas" in message and "secret" not in message
    # The real cause stays in the chain, under Optuna's generic ImportError.
    assert isinstance(error.__cause__.__cause__, ModuleNotFoundError)


def test_postgres_scheme_is_pointed_to_postgresql() -> None:
    error = raised_by_url_storage("postgres://user:secret@127.0.0.1/hwnas")
    assert isinstance(error, StorageURLError)
    assert "postgresql://" in str(error) and "secret" not in str(error)


def test_unreachable_server_names_host_and_port_not_the_password() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = raised_by_url_storage(f"postgresql://user:secret@127.0.0.1:{port}/hwnas")
    assert isinstance(error, StorageConnectionError)
    message = str(error)
    assert f"127.0.0.1:{port}" in message and "'hwnas'" in message and "'user'" in message
    assert "Check that the server runs" in message and "secret" not in message
