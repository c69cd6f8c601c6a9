"""What hwnas's samplers share: Optuna's sampler interface over a space's genes, and the study's
trials read back as architectures.

An :class:`ArchitectureSampler` proposes a whole architecture per trial (``sample_relative``
over every gene), so it works wherever an Optuna sampler does: ``study.ask``, storages shared by
workers, resumed studies, ``set_constraint``. It keeps no state that the study does not hold:
each proposal reads the study's trials again, so a resumed or shared study is simply read.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas._architecture import ArchitectureError
from nas._capabilities import DisconnectedSpace, dedup_keys
from nas._space import SearchSpace
from nas.search import REUSED_KEY


@dataclass(frozen=True)
class History:
    """The study's trials as architectures: what was evaluated, with which values, and which
    architectures are taken (evaluated, running, failed) and must not be proposed again.

    ``values`` are in minimisation form (maximised objectives negated), one row per evaluated
    complete trial; ``violations`` hold its constraint values (<= 0 is feasible); ``failed`` holds
    the genes of every failed trial (an objective refused the network)."""

    indices: np.ndarray  # (evaluated, genes) choice indices
    values: np.ndarray  # (evaluated, objectives), minimised
    violations: np.ndarray  # (evaluated, constraints)
    taken: frozenset[str]  # dedup keys of every evaluated, running or failed architecture
    metric_names: tuple[str, ...] | None
    failed: np.ndarray = field(default_factory=lambda: np.empty((0, 0), dtype=np.int64))  # (failed, genes)

    @property
    def feasible(self) -> np.ndarray:
        return (self.violations <= 0).all(axis=1)

    def __len__(self) -> int:
        return len(self.indices)


class ArchitectureSampler(optuna.samplers.BaseSampler):
    """An Optuna sampler that proposes one architecture of ``space`` per trial.

    Subclasses implement :meth:`propose`. ``seed`` seeds every random choice (a numpy
    ``Generator``; Optuna's fallback for parameters outside the space has its own seed).
    """

    def __init__(self, space: SearchSpace, seed: int | None = None) -> None:
        self.space = space
        self._rng = np.random.default_rng(seed)
        self._fallback = optuna.samplers.RandomSampler(seed=seed)
        self._distributions = space.distributions()
        self._rows: dict[int, tuple[str, np.ndarray] | None] = {}  # trial number -> (key, indices)

    @abstractmethod
    def propose(self, history: History, directions: Sequence[StudyDirection]) -> np.ndarray:
        """The next architecture's gene choice indices, one int per gene; its dedup key should
        not be in ``history.taken``."""

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if set(search_space) != set(self._distributions):
            return {}  # asked for something other than this space's genes: leave it to the fallback
        row = self.propose(self.history(study), study.directions)
        return self.space.from_indices(row[None, :])[0].params

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._fallback.reseed_rng()

    def history(self, study: Study) -> History:
        """The study's trials read as architectures (each trial's genes parsed once)."""
        trials = study.get_trials(deepcopy=False)
        n_objectives = len(study.directions)
        signs = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions])
        constraint_names = sorted({k for t in trials if t.state == TrialState.COMPLETE for k in t.constraints})
        taken, rows, values, violations, failed = set(), [], [], [], []
        for trial in trials:
            if trial.state in (TrialState.WAITING, TrialState.PRUNED):
                continue
            parsed = self._row(trial)
            if parsed is None:
                continue
            key, row = parsed
            taken.add(key)
            if trial.state == TrialState.FAIL:
                failed.append(row)
            if trial.state != TrialState.COMPLETE or REUSED_KEY in trial.user_attrs:  # a repeat: not evaluated
                continue
            rows.append(row)
            values.append(np.asarray(trial.values, dtype=float) * signs)
            violations.append([trial.constraints.get(name, 0.0) for name in constraint_names])
        genes = len(self._distributions)
        return History(
            indices=np.array(rows, dtype=np.int64).reshape(len(rows), genes),
            values=np.array(values, dtype=float).reshape(len(rows), n_objectives),
            violations=np.array(violations, dtype=float).reshape(len(rows), len(constraint_names)),
            taken=frozenset(taken),
            metric_names=tuple(study.metric_names) if study.metric_names else None,
            failed=np.array(failed, dtype=np.int64).reshape(len(failed), genes),
        )

    def _row(self, trial: FrozenTrial) -> tuple[str, np.ndarray] | None:
        if trial.number not in self._rows or trial.state == TrialState.RUNNING:
            try:
                arch = self.space.architecture(trial.params)
            except ArchitectureError:  # a trial of other parameters (still running, or foreign)
                parsed = None
            else:
                indices = self.space.encoding.indices([arch])
                parsed = dedup_keys(self.space, indices)[0], indices[0]
            if trial.state == TrialState.RUNNING:
                return parsed  # its parameters may still grow: do not remember them
            self._rows[trial.number] = parsed
        return self._rows[trial.number]

    def random_new(self, taken: frozenset[str], tries: int = 1000) -> np.ndarray:
        """A uniformly drawn architecture not yet taken (and not disconnected); after ``tries``
        draws that all were, the last draw."""
        row = None
        for _ in range(tries):
            arch = self.space.sample(self._rng)
            indices = self.space.encoding.indices([arch])
            row = indices[0]
            if usable(self.space, indices)[0] and dedup_keys(self.space, indices)[0] not in taken:
                break
        assert row is not None
        return row


def usable(space: SearchSpace, indices: np.ndarray) -> np.ndarray:
    """Rows worth an evaluation: not a network that ignores its input."""
    if isinstance(space, DisconnectedSpace):
        return ~space.disconnected_of(indices)
    return np.ones(len(indices), dtype=bool)
