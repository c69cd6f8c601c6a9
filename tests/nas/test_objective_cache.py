"""CachedObjective: a real objective evaluated once per architecture across every study of a
storage (several devices) and across a reopened storage (a resume), for each storage kind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from nas import Candidate
from nas.objective_cache import CachedObjective
from tests.nas.toy import Capacity, ParamCount, ToySpace


class CountedParams(ParamCount):
    """The toy parameter count, counting the times it really builds a model."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.calls = 0

    def __call__(self, candidate: Candidate) -> float:
        self.calls += 1
        return super().__call__(candidate)


def candidates(n: int, seed: int) -> list[Candidate]:
    space = ToySpace()
    rng = np.random.default_rng(seed)
    return [Candidate(space.sample(rng), space) for _ in range(n)]


def sqlite(tmp_path: Path) -> Callable[[], optuna.storages.BaseStorage]:
    return lambda: optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'run.db'}")


def journal(tmp_path: Path) -> Callable[[], optuna.storages.BaseStorage]:
    return lambda: JournalStorage(JournalFileBackend(str(tmp_path / "run.log")))


def check_once_per_architecture(reopen: Callable[[], optuna.storages.BaseStorage], resumable: bool) -> None:
    storage = reopen()
    params = CountedParams("params")
    # Two devices' searches asking for the same architectures, in different orders: one wrapper
    # shared by both (as hwnas-search devices=[...] builds it), and one opened on the same
    # storage afterwards (a device searched by a later process).
    shared = CachedObjective(params, storage, "toy")
    seen = candidates(12, seed=0)
    values = [shared(c) for c in seen]
    assert [shared(c) for c in reversed(seen)] == values[::-1]
    later = CachedObjective(params, storage, "toy")
    assert [later(c) for c in seen] == values
    distinct = len({c.arch.id for c in seen})
    assert params.calls == shared.evaluations == distinct and later.evaluations == 0
    if not resumable:
        return
    # The run resumed: a fresh process opens the same storage; only new architectures are built.
    resumed = CachedObjective(params, reopen(), "toy")
    more = candidates(12, seed=1)
    assert [resumed(c) for c in seen] == values
    assert resumed.evaluations == 0
    for c in more:
        assert resumed(c) == ParamCount("p")(c)
    assert resumed.evaluations == len({c.arch.id for c in more} - {c.arch.id for c in seen})
    assert params.calls == len({c.arch.id for c in seen + more})


def test_memory_storage_shares_values_between_devices() -> None:
    check_once_per_architecture(optuna.storages.InMemoryStorage, resumable=False)


@pytest.mark.parametrize("kind", [sqlite, journal])
def test_file_storages_keep_values_across_a_resume(tmp_path: Path, kind: Callable) -> None:
    check_once_per_architecture(kind(tmp_path), resumable=True)


def test_postgresql_keeps_values_across_a_resume(postgres_url: str) -> None:
    check_once_per_architecture(lambda: optuna.storages.RDBStorage(postgres_url), resumable=True)


def test_objectives_with_another_source_or_space_never_share_values(tmp_path: Path) -> None:
    storage = sqlite(tmp_path)()
    candidate = candidates(1, seed=0)[0]
    params = CachedObjective(ParamCount("score"), storage, "toy")
    capacity = CachedObjective(Capacity("score"), storage, "toy")  # same name, another meaning
    other_space = CachedObjective(ParamCount("score"), storage, "toy2")
    assert params(candidate) == ParamCount("p")(candidate)
    assert capacity(candidate) == Capacity("c")(candidate) != params(candidate)
    assert other_space(candidate) == params(candidate) and other_space.evaluations == 1


def test_the_wrapper_reads_as_the_objective_it_caches() -> None:
    inner = Capacity("acc")
    cached = CachedObjective(inner, optuna.storages.InMemoryStorage(), "toy")
    assert (cached.name, cached.direction, cached.cost) == (inner.name, inner.direction, inner.cost)
    assert (cached.source(), cached.describe()) == (inner.source(), inner.describe())
