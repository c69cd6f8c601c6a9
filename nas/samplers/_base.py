"""What hwnas's samplers share: Optuna's sampler interface over a space's genes, and the study's
trials read back as architectures.

An :class:`ArchitectureSampler` proposes a whole architecture per trial (``sample_relative``
over every gene), so it works wherever an Optuna sampler does: ``study.ask``, storages shared by
workers, resumed studies, ``set_constraint``. It keeps no state that the study does not hold:
each proposal reads the study's trials again, so a resumed or shared study is simply read.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
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
    taken: AbstractSet[str]  # dedup keys of every evaluated, running or failed architecture
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
        self._prefix: _Read | None = None

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
        """The study's trials read as architectures. Finished trials never change, so the leading
        run of them is read once and kept (:class:`_Read`); only the trials after it are read
        again: a proposal at trial 10,000 costs about what one at trial 100 does."""
        trials = study.get_trials(deepcopy=False)
        signs = tuple(1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions)
        prefix = self._prefix
        names = {
            k for t in trials[prefix.count if prefix else 0 :] if t.state == TrialState.COMPLETE for k in t.constraints
        }
        if (
            prefix is None
            or (prefix.study, prefix.signs) != (study.study_name, signs)
            or not names <= set(prefix.constraint_names)
        ):
            # First read, or a constraint the trials read so far lack (their violation reads 0).
            known = set(prefix.constraint_names) if prefix and prefix.study == study.study_name else set()
            prefix = self._prefix = _Read(len(self._distributions), signs, tuple(sorted(known | names)))
            prefix.study = study.study_name
        while prefix.count < len(trials) and trials[prefix.count].state.is_finished():
            prefix.add(trials[prefix.count], self._row(trials[prefix.count]))
            prefix.count += 1
        tail = _Read(len(self._distributions), signs, prefix.constraint_names)
        for trial in trials[prefix.count :]:
            tail.add(trial, self._row(trial))
        return History(
            indices=np.concatenate([prefix.column("indices"), tail.column("indices")]),
            values=np.concatenate([prefix.column("values"), tail.column("values")]),
            violations=np.concatenate([prefix.column("violations"), tail.column("violations")]),
            taken=_Taken(prefix.taken, tail.taken),
            metric_names=tuple(study.metric_names) if study.metric_names else None,
            failed=np.concatenate([prefix.column("failed"), tail.column("failed")]),
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

    def random_new(self, taken: AbstractSet[str], tries: int = 1000) -> np.ndarray:
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


class _Taken(AbstractSet[str]):
    """The union of two sets of keys, without copying either (membership is all samplers ask)."""

    def __init__(self, first: set[str], second: set[str]) -> None:
        self._first, self._second = first, second

    def __contains__(self, key: object) -> bool:
        return key in self._first or key in self._second

    def __iter__(self) -> Iterator[str]:
        yield from self._first
        yield from (k for k in self._second if k not in self._first)

    def __len__(self) -> int:
        return len(self._first) + sum(k not in self._first for k in self._second)


class _Read:
    """Trials read into :class:`History`'s columns, one at a time: rows appended since the last
    :meth:`column` are stacked onto the block kept from before (a copy, not a Python loop, per
    proposal)."""

    def __init__(self, genes: int, signs: tuple[float, ...], constraint_names: tuple[str, ...]) -> None:
        self.signs, self.constraint_names = signs, constraint_names
        self.count = 0  # how many of the study's leading trials were read (a prefix's)
        self.study = ""  # whose trials (a prefix's)
        self.taken: set[str] = set()
        widths = {"indices": genes, "values": len(signs), "violations": len(constraint_names), "failed": genes}
        dtypes = {"indices": np.int64, "values": float, "violations": float, "failed": np.int64}
        self._blocks = {c: np.empty((0, w), dtype=dtypes[c]) for c, w in widths.items()}
        self._pending: dict[str, list[Any]] = {c: [] for c in widths}

    def add(self, trial: FrozenTrial, parsed: tuple[str, np.ndarray] | None) -> None:
        if trial.state in (TrialState.WAITING, TrialState.PRUNED) or parsed is None:
            return
        key, row = parsed
        self.taken.add(key)
        if trial.state == TrialState.FAIL:
            self._pending["failed"].append(row)
        if trial.state != TrialState.COMPLETE or REUSED_KEY in trial.user_attrs:  # a repeat: not evaluated
            return
        self._pending["indices"].append(row)
        self._pending["values"].append([v * s for v, s in zip(trial.values, self.signs)])
        self._pending["violations"].append([trial.constraints.get(n, 0.0) for n in self.constraint_names])

    def column(self, name: str) -> np.ndarray:
        pending = self._pending[name]
        if pending:
            block = self._blocks[name]
            new = np.array(pending, dtype=block.dtype).reshape(len(pending), block.shape[1])
            self._blocks[name] = np.concatenate([block, new])
            pending.clear()
        return self._blocks[name]
