"""Objective values kept in a run's Optuna storage, so an architecture is evaluated once per run.

A run that searches several devices shares the objectives that do not depend on the device (an
accuracy, a proxy, a parameter count): every device's study asks for them, and recomputing a
proxy per device (or after a resume) would only spend time on identical numbers. A
:class:`CachedObjective` wraps such an objective; its values live as user attributes of one
study of the same storage (named by the objective and its :meth:`~nas.Objective.source`, so two
objectives with different meanings never share values), keyed by the architecture's id, so every
storage Optuna has (memory, SQLite, journal file, PostgreSQL) keeps them, and a resumed run or
another worker on the same storage reads them back.
"""

from __future__ import annotations

import hashlib

import optuna

from nas._objective import Candidate, Objective

#: Prefix of the cache studies' names in a storage (next to the search studies).
CACHE_PREFIX = "hwnas-cache:"


class CachedObjective(Objective):
    """``inner``, evaluated at most once per architecture across every study of ``storage``.

    ``evaluations`` counts the calls that reached ``inner`` in this process (a cached value costs
    one dictionary lookup)."""

    def __init__(self, inner: Objective, storage: optuna.storages.BaseStorage | str, space: str) -> None:
        super().__init__(inner.name)
        self.inner = inner
        self.direction, self.cost, self.integer = inner.direction, inner.cost, inner.integer
        digest = hashlib.sha1(f"{space}\0{inner.name}\0{inner.source()}".encode()).hexdigest()[:16]
        name = f"{CACHE_PREFIX}{inner.name}:{digest}"
        self.study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True)
        self._values: dict[str, float] = {k: float(v) for k, v in self.study.user_attrs.items()}
        self.evaluations = 0

    def __call__(self, candidate: Candidate) -> float:
        key = candidate.arch.id
        value = self._values.get(key)
        if value is None:
            value = self.inner.evaluate(candidate)
            self.evaluations += 1
            self.study.set_user_attr(key, value)
            self._values[key] = value
        return value

    @property
    def cached(self) -> int:
        """How many architectures' values this cache holds (read at open, plus those computed since)."""
        return len(self._values)

    def details(self, candidate: Candidate) -> dict[str, float | int | bool]:
        return {}

    def describe(self) -> str:
        return self.inner.describe()

    def describe_details(self) -> dict[str, str]:
        return {}

    def source(self) -> str:
        return self.inner.source()

    def truth(self) -> Objective | None:
        return self.inner.truth()

    def oracle(self) -> dict[str, float] | None:
        return self.inner.oracle()
