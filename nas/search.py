"""An Optuna ask/tell loop over a search space: the storage keeps every trial, so resuming is free.

One trial: ask Optuna for genes -> validate them into an Architecture -> evaluate every objective
and recorded metric, cheapest first -> set constraint values -> tell. A repeat (the same canonical
architecture, or an isomorph of one, as :func:`nas.dedup_key` says) is answered from the storage
and does not count against the budget: the budget counts evaluations. An objective that fails or
returns NaN fails only its trial (the reason is kept in the trial's user attributes); one that holds
no value for the architecture (a table without its row) prunes it, spending nothing; a worker that
dies leaves a RUNNING trial, which the next run on the same host marks failed and asks again (a
trial that never got its worker's tag, because the worker died right after asking, is recognised
by its age instead, from any host).
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled  # what study.optimize uses
from optuna.trial import FrozenTrial, TrialState

from nas._capabilities import dedup_key
from nas._objective import Candidate, Constraint, Objective, ObjectiveError, UnavailableError
from nas._space import SearchSpace
from nas.errors import HwnasError

log = logging.getLogger(__name__)

# User attribute keys: the trial's record in the storage, read back by nas.results.
ARCH_KEY = "arch"
FAIL_KEY = "fail_reason"
WORKER_KEY = "worker"
METRIC_PREFIX = "metric:"
DETAIL_PREFIX = "detail:"
REUSED_KEY = "reused_from_trial"
DEDUP_KEY = "dedup_key"  # equal for repeats: the canonical string, or the isomorphism class
#: A trial pruned because another worker was evaluating the same architecture (not evaluated).
BUSY_KEY = "evaluated_by_trial"
IDENTITY_KEY = "hwnas"  # the study's user attribute holding Search.identity()
RECOVERED_KEY = "recovered"  # a dead worker's trial, failed by another: not an evaluation
#: A trial pruned because an objective holds no value for its architecture (not evaluated).
UNAVAILABLE_KEY = "unavailable"


class SearchSetupError(HwnasError, ValueError):
    """A search that cannot start: conflicting names, unknown constraint metrics, a resumed study
    with other objectives, a table that holds too little of the space to search."""


class SearchAbortedError(HwnasError, RuntimeError):
    """A search that cannot go on: every trial fails, or every proposed architecture lacks a
    value. What finished is in the study; the message says what to fix."""


@dataclass
class Search:
    """A multi-objective search of ``space`` for ``objectives`` under ``constraints``.

    ``metrics`` are measured and recorded for every trial but not optimised; constraints may bound
    objectives and metrics alike. The study is created in ``storage`` (an Optuna storage object or
    URL; ``None`` keeps it in memory) or loaded from it when it already exists.
    """

    space: SearchSpace
    objectives: Sequence[Objective]
    sampler: optuna.samplers.BaseSampler
    storage: optuna.storages.BaseStorage | str | None = None
    study_name: str = "hwnas"
    constraints: Sequence[Constraint] = ()
    metrics: Sequence[Objective] = ()
    max_consecutive_failures: int = 20
    # Architectures a table lacks are skipped, not evaluated; this many in a row means the
    # sampler keeps proposing outside what the table holds.
    max_consecutive_unavailable: int = 200
    #: A measure that knows its values up front (a table) must know at least this share of the
    #: space's architectures: on a sampled table a search would seldom propose one it knows.
    min_table_coverage: float = 0.5
    # A sampler that proposes only architectures already evaluated has exhausted what it can
    # find (a small space, a converged population): stop after this many repeats in a row.
    max_consecutive_repeats: int = 500
    # A worker tags its trial milliseconds after asking for it; a RUNNING trial still untagged
    # after this long belongs to a worker that died in between.
    untagged_grace_s: float = 30.0
    #: How long the end of a run waits for trials still running (other workers' finish, a dead
    #: worker's is recovered meanwhile) before the budget counts as spent.
    settle_s: float = 600.0
    #: Trials between two info-level summaries in the log (every trial gets a debug line).
    log_every: int = 25
    _ledger: _Ledger = field(default_factory=lambda: _Ledger(), init=False, repr=False)
    #: Whether the last ``run`` stopped on Ctrl-C or SIGTERM (its finished trials are in the study).
    interrupted: bool = field(default=False, init=False, repr=False)
    _failed: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.storage is None:
            # One storage per Search, so study() returns the same study every time.
            self.storage = optuna.storages.InMemoryStorage()
        names = [m.name for m in self.measures]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SearchSetupError(f"objective/metric names must be unique; repeated: {duplicates}")
        if not self.objectives:
            raise SearchSetupError("a search needs at least one objective")
        for constraint in self.constraints:
            if constraint.metric not in names:
                raise SearchSetupError(
                    f"constraint {constraint.name!r} bounds {constraint.metric!r}, which is neither an "
                    f"objective nor a recorded metric; available: {names}"
                )
        self._check_coverage()

    def _check_coverage(self) -> None:
        # Tables list networks: a deployed space's candidates share its networks' rows.
        networks = self.space.networks
        size = networks.size()
        for measure in self.measures:
            known = measure.oracle()
            if known is not None and len(known) < self.min_table_coverage * size:
                raise SearchSetupError(
                    f"{measure.name!r} ({measure.source()}) has values for {len(known):,} of the {size:.3g} "
                    f"architectures of {networks.name}: a search would seldom propose one it holds. "
                    "Search a predictor fitted to its rows instead (hwnas-search device=fitted "
                    "device.name=<its column>), or a table that covers the space"
                )

    @property
    def measures(self) -> list[Objective]:
        """Objectives and metrics in evaluation order: cheapest first, so failures come early."""
        return sorted([*self.objectives, *self.metrics], key=lambda m: m.cost)

    @property
    def directions(self) -> list[str]:
        return [o.direction.value for o in self.objectives]

    def study(self) -> optuna.Study:
        """The study in the storage: created, or loaded and checked to be this same search."""
        study = optuna.create_study(
            storage=self.storage,
            sampler=self.sampler,
            study_name=self.study_name,
            directions=self.directions,
            load_if_exists=True,
        )
        identity = self.identity()
        stored = study.user_attrs.get(IDENTITY_KEY)
        if stored is None:
            study.set_user_attr(IDENTITY_KEY, identity)
            with warnings.catch_warnings():  # experimental since Optuna 3.2, and what samplers read
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([o.name for o in self.objectives])
            return study
        unchecked = sorted(set(identity) - set(stored))
        if unchecked:  # a study written by an earlier hwnas: check what it recorded
            log.warning("study %r predates the identity fields %s; they cannot be checked", self.study_name, unchecked)
        changed = {k: (stored[k], v) for k, v in identity.items() if k in stored and stored[k] != v}
        if changed:
            listed = "; ".join(f"{k}: stored {old!r}, now {new!r}" for k, (old, new) in changed.items())
            raise SearchSetupError(
                f"study {self.study_name!r} in this storage was created for another search ({listed}); "
                "resuming it would mix their values into one front. Use another study_name (or run "
                "directory), or the original settings to resume"
            )
        return study

    def identity(self) -> dict[str, object]:
        """What makes two runs the same search, stored with the study and checked on resume: the
        space (with its settings), the objectives and where their values come from (device and
        runtime for a live latency, the column for a table), the constraints and the sources of the
        metrics they bound. Other recorded metrics may change: one added on resume is measured."""
        bounded = {c.metric for c in self.constraints}
        kept = [m for m in self.measures if any(m is o for o in self.objectives) or m.name in bounded]
        return {
            "space": self.space.name,
            "space_settings": repr(self.space),
            "objectives": [o.name for o in self.objectives],
            "directions": self.directions,
            "sources": {m.name: m.source() for m in kept},
            "constraints": [c.name for c in self.constraints],
        }

    def run(
        self,
        n_trials: int,
        timeout_s: float | None = None,
        show_progress: bool = True,
        callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
        status: Callable[[], Mapping[str, object]] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> optuna.Study:
        """Run until the study holds ``n_trials`` evaluations (finished trials that were not
        answered from the storage, from any run or worker).

        ``status`` gives what the progress bar and the periodic log summary show beside the
        counts (front size, hypervolume). ``should_stop`` is asked before each trial (a command's
        SIGTERM or Ctrl-C sets it): the loop then ends after the trial in progress. A
        KeyboardInterrupt inside a trial fails it with that reason and ends the loop too. Either
        way ``interrupted`` is set and the study returned, so the caller writes what finished."""
        study = self.study()
        self.interrupted = False
        self._failed = 0
        self._recover_dead_workers(study)
        ledger = self._ledger = _Ledger()
        done = ledger.evaluations(study)
        if done:
            log.info("study %r resumes with %d evaluations", self.study_name, done)
        progress = _progress(total=n_trials, initial=min(done, n_trials), enabled=show_progress)
        loop = _Loop(n_trials, timeout_s, time.monotonic(), progress, callbacks, status, should_stop)
        # The budget is reached counting running trials; wait for them (a dead worker's is
        # recovered and asked again, to be run here) before calling it spent.
        while self._loop(study, loop):
            self._settle(study)
            if ledger.evaluations(study, running=True) >= n_trials:
                break
        _advance(progress, ledger.evaluations(study), n_trials)
        progress.close()
        return study

    def _loop(self, study: optuna.Study, loop: _Loop) -> bool:
        """Run trials until the budget is reached counting running ones (True), or the search
        stops for another reason: a timeout, a signal, a sampler with nothing new (False)."""
        ledger, n_trials = self._ledger, loop.n_trials
        failures_in_a_row = repeats_in_a_row = unavailable_in_a_row = 0
        # Count trials other workers are running too, so that workers sharing a storage stop at
        # n_trials together.
        while (now_done := ledger.evaluations(study, running=True)) < n_trials:
            _advance(loop.progress, now_done, n_trials)
            if loop.timeout_s is not None and time.monotonic() - loop.started > loop.timeout_s:
                log.info("timeout of %.0f s reached after %d evaluations", loop.timeout_s, now_done)
                return False
            if loop.should_stop is not None and loop.should_stop():
                self.interrupted = True
                log.warning("stopping after %d evaluations: the finished trials are kept", ledger.evaluations(study))
                return False
            try:
                frozen = self._run_trial(study, n_trials)
            except KeyboardInterrupt:
                self.interrupted = True
                log.warning("interrupted after %d evaluations: the finished trials are kept", ledger.evaluations(study))
                return False
            self._report(frozen, loop.progress, ledger.evaluations(study), loop.status)
            failures_in_a_row = failures_in_a_row + 1 if frozen.state == TrialState.FAIL else 0
            if failures_in_a_row >= self.max_consecutive_failures:
                raise SearchAbortedError(
                    f"{failures_in_a_row} trials failed in a row, so the search stopped (its finished trials "
                    f"are kept); last reason: {frozen.user_attrs.get(FAIL_KEY)}"
                )
            unavailable_in_a_row = unavailable_in_a_row + 1 if UNAVAILABLE_KEY in frozen.user_attrs else 0
            if unavailable_in_a_row >= self.max_consecutive_unavailable:
                raise SearchAbortedError(
                    f"{unavailable_in_a_row} architectures in a row had no value to look up, so the search "
                    f"stopped (its finished trials are kept); last: {frozen.user_attrs.get(FAIL_KEY)}"
                )
            repeats_in_a_row = repeats_in_a_row + 1 if not _evaluated(frozen) else 0
            for callback in loop.callbacks:
                callback(study, frozen)
            if repeats_in_a_row >= self.max_consecutive_repeats:
                log.warning(
                    "the sampler proposed %d architectures in a row that were already evaluated: it has "
                    "found all it can (a small space, or a converged population); stopping at %d evaluations",
                    repeats_in_a_row,
                    ledger.evaluations(study),
                )
                return False
        return True

    def _settle(self, study: optuna.Study, wait_s: float | None = None) -> None:
        """Wait until no trial of the study runs: other workers' finish, dead workers' are
        recovered (``settle_s`` at most)."""
        deadline = time.monotonic() + (self.settle_s if wait_s is None else wait_s)
        while _count_running(study) and time.monotonic() < deadline:
            time.sleep(1.0)
            self._recover_dead_workers(study)

    def _report(
        self,
        trial: FrozenTrial,
        progress: Any,
        evaluated: int,
        status: Callable[[], Mapping[str, object]] | None,
    ) -> None:
        """A debug line per trial; the progress bar's figures; an info summary every ``log_every``."""
        values = trial.values if trial.state == TrialState.COMPLETE else None
        log.debug(
            "trial %d %s %s %s%s",
            trial.number,
            trial.state.name,
            trial.user_attrs.get(ARCH_KEY, ""),
            values,
            f" ({trial.user_attrs[FAIL_KEY]})" if FAIL_KEY in trial.user_attrs else "",
        )
        if trial.state == TrialState.FAIL:
            self._failed += 1
        shown = {"failed": self._failed, **(status() if status else {})}  # status may count resumed runs too
        progress.set_postfix(shown, refresh=False)
        if (trial.number + 1) % self.log_every == 0:
            log.info(
                "trial %d: %d evaluations, %s",
                trial.number,
                evaluated,
                ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()),
            )

    def writes_outputs(self, study: optuna.Study, wait_s: float = 600.0) -> bool:
        """Whether this worker writes the run's outputs, once its loop has ended: exactly one of
        the workers sharing ``study`` does. Each waits until no trial is running (others finish
        their last trial; a dead worker's trial is waited for ``wait_s`` at most), then the one
        that ran the last finished trial writes; a worker that ran no trial (it found the budget
        already spent) writes too, so rerunning any worker of a finished study writes them."""
        me = _worker_id()
        if not any(t.user_attrs.get(WORKER_KEY) == me for t in study.get_trials(deepcopy=False)):
            return True
        self._settle(study, wait_s)
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
        last = max(finished, key=lambda t: t.number, default=None)
        return last is None or last.user_attrs.get(WORKER_KEY) == me

    def _run_trial(self, study: optuna.Study, n_trials: int) -> optuna.trial.FrozenTrial:
        with warnings.catch_warnings():  # hwnas runs the heartbeat thread study.optimize would
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
            trial = study.ask()
        if is_heartbeat_enabled(study._storage):  # beating before tagged: a tagged trial is always found stale
            study._storage.record_heartbeat(trial._trial_id)
        trial.set_user_attr(WORKER_KEY, _worker_id())
        # Tagged before its genes are drawn (what study.ask(distributions) would do first): a
        # worker killed while its sampler proposes (a surrogate's fit, a tenth of a second) leaves
        # a tagged, beating trial, found by its stale heartbeat or its dead pid, not an untagged
        # one that a rerun can only wait out for untagged_grace_s.
        for name, distribution in self.space.distributions().items():
            trial._suggest(name, distribution)
        # Where the storage keeps heartbeats, a thread records this trial's while it runs, so a
        # worker that dies anywhere (another host, a reused pid) is found by its silence.
        with get_heartbeat_thread(trial._trial_id, study._storage):
            return self._evaluate_trial(study, trial, n_trials)

    def _evaluate_trial(self, study: optuna.Study, trial: optuna.Trial, n_trials: int) -> FrozenTrial:
        try:
            arch = self.space.architecture(trial.params)
            key = dedup_key(self.space, arch)
            trial.set_user_attr(ARCH_KEY, arch.string)
            trial.set_user_attr(DEDUP_KEY, key)
            if key not in self._ledger.reuse:
                pruned = self._claim(study, trial, key, n_trials)
                if pruned is not None:
                    return pruned
            values = self._evaluate(Candidate(arch, self.space), trial, key)
        except UnavailableError as error:
            # Nothing was measured: a table's missing row or empty cell must not spend the budget
            # (a bad row would otherwise fail every trial proposing it).
            log.debug("trial %d skipped: %s", trial.number, error)
            trial.set_user_attr(UNAVAILABLE_KEY, True)
            trial.set_user_attr(FAIL_KEY, f"{type(error).__name__}: {error}"[:2000])
            return study.tell(trial, state=TrialState.PRUNED)
        except KeyboardInterrupt:
            trial.set_user_attr(FAIL_KEY, "interrupted (Ctrl-C or SIGTERM) while evaluating")
            study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as error:  # noqa: BLE001 - one bad architecture must not end the search
            reason = f"{type(error).__name__}: {error}"
            if not isinstance(error, ObjectiveError):
                log.exception("trial %d failed unexpectedly", trial.number)
            log.warning("trial %d failed: %s", trial.number, reason)
            trial.set_user_attr(FAIL_KEY, reason[:2000])
            return study.tell(trial, state=TrialState.FAIL)
        for constraint in self.constraints:
            trial.set_constraint(constraint.name, constraint.violation(values[constraint.metric]))
        frozen = study.tell(trial, [values[o.name] for o in self.objectives])
        if _evaluated(frozen):
            self._ledger.reuse.setdefault(key, frozen)
        return frozen

    def _claim(self, study: optuna.Study, trial: optuna.Trial, key: str, n_trials: int) -> FrozenTrial | None:
        """Before evaluating a new architecture, look at what other workers hold (this trial's
        key is already stored, so of two workers racing for one architecture the later to look
        sees the other): a finished evaluation of it is reused; one still running, or a budget
        other workers have filled meanwhile, prunes this trial, which counts as no evaluation."""
        tail = self._ledger.refresh(study)
        if key in self._ledger.reuse:  # another worker finished it meanwhile
            return None
        reason = None
        for other in tail:
            if other.number == trial.number or other.user_attrs.get(DEDUP_KEY) != key or not _evaluated(other):
                continue
            if other.state == TrialState.COMPLETE:
                self._ledger.reuse.setdefault(key, other)
                return None
            if other.state == TrialState.RUNNING:
                reason = other.number
        if reason is None and self._ledger.evaluations_before(trial.number, tail) >= n_trials:
            trial.set_user_attr(FAIL_KEY, "the budget was reached by other workers meanwhile")
            return study.tell(trial, state=TrialState.PRUNED)
        if reason is not None:
            trial.set_user_attr(BUSY_KEY, reason)
            trial.set_user_attr(FAIL_KEY, f"trial {reason} of another worker is evaluating this architecture")
            return study.tell(trial, state=TrialState.PRUNED)
        return None

    def _evaluate(self, candidate: Candidate, trial: optuna.Trial, key: str) -> dict[str, float]:
        values: dict[str, float] = {}
        previous = self._ledger.reuse.get(key)
        if previous is not None:
            # Samplers revisit architectures (and isomorphs of them, which compute the same
            # function); re-measuring would only spend the budget on noise.
            trial.set_user_attr(REUSED_KEY, previous.number)
            values = {o.name: v for o, v in zip(self.objectives, previous.values)}
            for metric in self.metrics:  # a metric added since that trial is measured now
                if METRIC_PREFIX + metric.name in previous.user_attrs:
                    values[metric.name] = previous.user_attrs[METRIC_PREFIX + metric.name]
        for measure in self.measures:
            if measure.name not in values:
                values[measure.name] = measure.evaluate(candidate)
                for key, detail in measure.details(candidate).items():
                    trial.set_user_attr(f"{DETAIL_PREFIX}{measure.name}.{key}", detail)
        for measure in self.metrics:
            trial.set_user_attr(METRIC_PREFIX + measure.name, values[measure.name])
        return values

    def _recover_dead_workers(self, study: optuna.Study) -> None:
        """Fail the trials of workers that died, and ask their genes again; a recovered trial is
        not an evaluation (its retry is).

        Where the storage keeps heartbeats (the RDB storages as configs/storage sets them up),
        Optuna's own check fails a trial whose heartbeat stopped, and the storage's
        ``RetryHeartbeatStaleTrialCallback`` asks it again. Otherwise (journal, in-memory) a trial is
        recovered when its worker was a process of this host that is gone. Either way a trial
        still untagged ``untagged_grace_s`` after it was asked lost its worker between ask and tag."""
        heartbeat = is_heartbeat_enabled(study._storage)
        if heartbeat:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        host = socket.gethostname()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = trial.user_attrs.get(WORKER_KEY)
            if worker is None:
                if _age_s(trial) < self.untagged_grace_s:
                    continue
                worker = "(untagged)"
            else:
                worker_host, pid, token = (worker.split(":") + ["", "", ""])[:3]
                if heartbeat or worker_host != host or not pid.isdigit() or _alive(int(pid), token):
                    continue
            optuna.Trial(study, trial._trial_id).set_user_attr(RECOVERED_KEY, f"worker {worker} died")
            study.tell(trial.number, state=TrialState.FAIL)
            # skip_if_exists would find the dead trial's own params and skip.
            study.enqueue_trial(trial.params)
            log.warning("trial %d was left running by dead worker %s: failed and re-queued", trial.number, worker)


@dataclass(frozen=True)
class _Loop:
    """What one ``Search.run`` loop is asked to do."""

    n_trials: int
    timeout_s: float | None
    started: float
    progress: Any
    callbacks: Sequence[Callable[[optuna.Study, FrozenTrial], None]]
    status: Callable[[], Mapping[str, object]] | None
    should_stop: Callable[[], bool] | None


def _advance(progress: Any, evaluations: int, n_trials: int) -> None:
    progress.update(max(0, min(evaluations, n_trials) - progress.n))


@dataclass
class _Ledger:
    """The storage's trials as a worker's loop needs them, read incrementally: a finished trial
    never changes, so the longest prefix of finished trials is folded into counts (and its
    evaluated architectures into ``reuse``) once, and each read looks only at the trials after
    it. Several reads per trial of all 10,000 trials of a long study would cost more than the
    sampler."""

    reuse: dict[str, FrozenTrial] = field(default_factory=dict)  # dedup key -> evaluated complete trial
    _prefix: int = 0  # trials 0.._prefix-1 are finished
    _prefix_evaluations: int = 0

    def refresh(self, study: optuna.Study) -> list[FrozenTrial]:
        """Fold newly finished trials into the prefix; the trials after it (the first unfinished)."""
        trials = study.get_trials(deepcopy=False)
        if trials and trials[-1].number != len(trials) - 1:  # Optuna's storages list them by number
            trials = sorted(trials, key=lambda t: t.number)
        while self._prefix < len(trials) and trials[self._prefix].state.is_finished():
            trial = trials[self._prefix]
            if _evaluated(trial):
                self._prefix_evaluations += 1
                if trial.state == TrialState.COMPLETE and ARCH_KEY in trial.user_attrs:
                    self.reuse.setdefault(_key_of(trial), trial)
            self._prefix += 1
        return trials[self._prefix :]

    def evaluations(self, study: optuna.Study, running: bool = False) -> int:
        """:func:`evaluations`, from the prefix's count and the trials after it."""
        tail = self.refresh(study)  # first: it moves the prefix
        return self._prefix_evaluations + _count(tail, running)

    def evaluations_before(self, number: int, tail: list[FrozenTrial]) -> int:
        """Evaluations (running ones included) of trials numbered below ``number``."""
        return self._prefix_evaluations + _count([t for t in tail if t.number < number], running=True)


def _count(trials: Sequence[FrozenTrial], running: bool) -> int:
    states = (TrialState.COMPLETE, TrialState.FAIL, *((TrialState.RUNNING,) if running else ()))
    return sum(t.state in states and _evaluated(t) for t in trials)


# A process-unique token: a restarted container can hand a dead worker's pid to a new process.
_TOKEN = uuid.uuid4().hex[:8]


def _count_running(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def evaluations(study: optuna.Study, running: bool = False) -> int:
    """Trials that spent the budget: complete or failed ones not answered from the storage (and,
    with ``running``, those being evaluated now)."""
    return _count(study.get_trials(deepcopy=False), running)


def _evaluated(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is (or was) an evaluation: not a repeat answered from the storage, not
    a trial pruned before evaluating, not a dead worker's (hwnas tells every failure it sees with
    its reason, so a failed trial without one was failed by a heartbeat check): its retry is."""
    if trial.state == TrialState.FAIL and FAIL_KEY not in trial.user_attrs:
        return False
    return (
        REUSED_KEY not in trial.user_attrs
        and RECOVERED_KEY not in trial.user_attrs
        and trial.state != TrialState.PRUNED
    )


def _key_of(trial: FrozenTrial) -> str:
    # Trials stored before DEDUP_KEY existed were deduplicated by their canonical string.
    return trial.user_attrs.get(DEDUP_KEY, trial.user_attrs[ARCH_KEY])


def _age_s(trial: optuna.trial.FrozenTrial) -> float:
    started = trial.datetime_start
    if started is None:
        return 0.0
    # RDB storages keep naive local times, journal storages aware UTC ones.
    return (datetime.datetime.now(tz=started.tzinfo) - started).total_seconds()


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_TOKEN}"


def _alive(pid: int, token: str) -> bool:
    if pid == os.getpid():
        return token == _TOKEN
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _progress(total: int, initial: int, enabled: bool):  # noqa: ANN202 - tqdm's type is private
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="trials", unit="trial")
