"""TensorBoard for a search, written as its trials finish (no TensorFlow).

Two log directories per run, because TensorBoard switches every run off when a directory holds
more than 40 and its HParams dashboard needs one run per row:

- ``tensorboard/``: one run per device (:class:`SearchBoard`). Step = trial number. Scalars
  ``objective/<name>`` (each evaluated trial), ``search/hypervolume`` (when the reference point is
  known before the search: given, or a table's worst values), ``search/front_size``,
  ``search/feasible_share``, ``search/failed``, ``search/evaluations``; per pair of objectives an
  image ``pareto/<x>_vs_<y>`` every ``figure_every`` trials (past 20 images, every 5% of the
  trials so far) and at the end: the trials, infeasible
  ones marked, the constraint bounds, the found front and, where a table knows every
  architecture, the true front. Several devices in one run add ``overlay/`` (:func:`write_overlay`):
  every device's front on axes normalised per device.
- ``hparams/``: TensorBoard's HParams dashboard (:class:`HParamsLog`): one session per trial with
  device, space, sampler, seed and the genes as hyperparameters (declared with their domains) and
  every objective, metric, constraint violation, ``feasible`` and ``on_front`` as metrics.

Resuming appends: a board reads the last step its device's run already holds and writes only
later trials, so TensorBoard never sees a step twice; a trial's HParams session is written once.
"""

from __future__ import annotations

import fcntl
import functools
import math
import os
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas._objective import Constraint
from nas.plots import overlay_figure, pareto_figure, parity_figure
from nas.results import RunningFront, feasible
from nas.search import METRIC_PREFIX, REUSED_KEY

#: The tag whose last step says how far a device's run got (written for every finished trial).
PROGRESS_TAG = "search/evaluations"
#: Written when a search ends (its value: the last trial's number), so a rerun knows what was marked.
CLOSED_TAG = "search/closed_at_trial"
_FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def last_steps(run_dir: Path) -> dict[str, int]:
    """The largest step of each tag in the event files of ``run_dir``."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    last: dict[str, int] = {}
    for path in sorted(run_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                last[value.tag] = max(last.get(value.tag, -1), event.step)
    return last


class HParamsLog:
    """TensorBoard's HParams dashboard for one run: the experiment (every hyperparameter with its
    domain, every metric) written once at ``root``, then one session per trial under
    ``root/<device>/trial_<number>``.

    Args:
        root: the run's ``hparams/`` directory.
        run: the run's own hyperparameters and every value each takes in this run (device, space,
            sampler, seed), e.g. ``{"device": ["raspi4", "pixel3"], "seed": [0]}``.
        genes: the space's Optuna distributions (their choices become discrete domains).
        metrics: the metric tags every session reports (``objective/accuracy``, ...); empty to
            :meth:`declare` them later (once :meth:`tag` has named them).
        shared: in a run of several devices, the names of the values every device shares; the
            others are tagged per device (:meth:`tag`). None: one device.
    """

    def __init__(
        self,
        root: Path,
        run: Mapping[str, Sequence[Any]],
        genes: Mapping[str, optuna.distributions.BaseDistribution],
        metrics: Sequence[str],
        shared: set[str] | None = None,
    ) -> None:
        from tensorboard.plugins.hparams import summary_v2 as hp

        self.root = Path(root)
        self._hp = {name: hp.HParam(name, hp.Discrete([_plain(v) for v in values])) for name, values in run.items()}
        for name, distribution in genes.items():
            self._hp[f"gene/{name}"] = hp.HParam(f"gene/{name}", _domain(distribution))
        self._hp["arch"] = hp.HParam("arch")  # a free string: no domain
        self._hp["trial"] = hp.HParam("trial")
        self.shared = shared
        self.metrics: tuple[str, ...] = ()
        if metrics:
            self.declare(metrics)

    def tag(self, device: str, kind: str, name: str) -> str:
        """A value's metric tag: ``<kind>/<name>``, or ``<kind>/<name>@<device>`` in a run of several
        devices (``shared`` given) for what is the device's own (not in ``shared``)."""
        if self.shared is None or name in self.shared:
            return f"{kind}/{name}"
        return f"{kind}/{name}@{device}"

    def declare(self, metrics: Sequence[str]) -> None:
        """Write the experiment: every hyperparameter with its domain, and ``metrics``."""
        from tensorboard.plugins.hparams import summary_v2 as hp
        from torch.utils.tensorboard import SummaryWriter

        self.metrics = tuple(metrics)
        self.root.mkdir(parents=True, exist_ok=True)
        with SummaryWriter(log_dir=str(self.root)) as writer:
            writer.file_writer.add_summary(
                hp.hparams_config_pb(list(self._hp.values()), [hp.Metric(m) for m in self.metrics])
            )

    def write(self, device: str, run: Mapping[str, Any], trial: FrozenTrial, values: Mapping[str, float]) -> None:
        """One trial's session (skipped when it exists: a resumed run writes it once)."""
        from tensorboard.plugins.hparams import summary_v2 as hp
        from torch.utils.tensorboard import SummaryWriter

        directory = self.root / device / f"trial_{trial.number:05d}"
        if directory.is_dir():
            return
        chosen = {self._hp[name]: _plain(value) for name, value in run.items()}
        chosen |= {self._hp[f"gene/{n}"]: _plain(v) for n, v in trial.params.items() if f"gene/{n}" in self._hp}
        chosen |= {self._hp["arch"]: str(trial.user_attrs.get("arch", "")), self._hp["trial"]: trial.number}
        partial = directory.with_name(directory.name + ".partial")
        with SummaryWriter(log_dir=str(partial)) as writer:
            writer.file_writer.add_summary(hp.hparams_pb(chosen, trial_id=f"{device}/{trial.number:05d}"))
            for tag, value in values.items():
                if value is not None and math.isfinite(value):
                    writer.add_scalar(tag, value, global_step=0)
        os.replace(partial, directory)  # a killed write leaves a .partial, not half a session

    def mark_front(self, device: str, numbers: Sequence[int], all_numbers: Sequence[int], step: int) -> None:
        """``on_front`` of each session at the end of the search, at ``step`` (the search's last
        trial: a resumed search marks again at its own last trial, and the dashboard shows the
        latest)."""
        from torch.utils.tensorboard import SummaryWriter

        on = set(numbers)
        for number in all_numbers:
            directory = self.root / device / f"trial_{number:05d}"
            if directory.is_dir():
                with SummaryWriter(log_dir=str(directory)) as writer:
                    writer.add_scalar("on_front", float(number in on), global_step=step)


def _plain(value: Any) -> str | int | float | bool:
    return value if isinstance(value, str | int | float | bool) else str(value)


def _domain(distribution: optuna.distributions.BaseDistribution) -> Any:
    from tensorboard.plugins.hparams import summary_v2 as hp

    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        choices = [_plain(c) for c in distribution.choices]
        if len({type(c) for c in choices}) > 1:
            choices = [str(c) for c in choices]
        return hp.Discrete(choices)
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return hp.IntInterval(distribution.low, distribution.high)
    if isinstance(distribution, optuna.distributions.FloatDistribution):
        return hp.RealInterval(distribution.low, distribution.high)
    return None


class SearchBoard:
    """One device's TensorBoard run, written as trials finish: an Optuna callback
    (``Search.run(callbacks=[board])``) that logs every finished trial in number order (trials of
    other workers too), then :meth:`close` at the end.

    Only one process writes a device's run at a time (an advisory lock on a file in it): workers
    sharing a run directory would otherwise write the same steps twice.

    Args:
        logdir: the device's run (``tensorboard/<device>``).
        objectives, directions: the search's objectives, in order.
        metrics: recorded metrics (reported in HParams).
        constraints: drawn as bounds where they bound an objective.
        reference: hypervolume reference point (objectives' units); None: no live hypervolume.
        true_values: every architecture's objective values where a table knows them (the true
            front is drawn from these).
        figure_every: trials between two Pareto images (past 20 of them, 5% of the trials so far).
        hparams, device, run: where and as what this device's HParams sessions go.
    """

    def __init__(
        self,
        logdir: Path,
        objectives: Sequence[str],
        directions: Sequence[str],
        *,
        metrics: Sequence[str] = (),
        constraints: Sequence[Constraint] = (),
        reference: np.ndarray | None = None,
        true_values: np.ndarray | None = None,
        figure_every: int = 25,
        hparams: HParamsLog | None = None,
        device: str = "",
        run: Mapping[str, Any] | None = None,
    ) -> None:
        if figure_every < 1:
            raise ValueError(f"figure_every={figure_every}; give a number of trials >= 1")
        self.logdir = Path(logdir)
        self.objectives = tuple(objectives)
        self.directions = tuple(directions)
        self.metrics = tuple(metrics)
        self.constraints = tuple(constraints)
        self.reference = reference
        self.true_values = true_values
        self.figure_every = figure_every
        self.hparams = hparams
        self.device = device
        self.run = dict(run or {})
        self._front = RunningFront(self.directions, reference)
        self._next = 0  # the next trial number to log
        self._figured = -1  # the step of the last Pareto images
        self._closed = -1  # the step at which the run was last closed
        self._writer: Any = None
        self._lock: Any = None

    # The callback Search.run calls after each of this worker's trials.
    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self._writer is None and not self._open(study):
            return
        self._log_finished(study, trial)

    def close(
        self,
        study: optuna.Study,
        front_numbers: Sequence[int] | None = None,
        final_hypervolume: float | None = None,
    ) -> None:
        """Log every finished trial not yet logged, the last Pareto images, the run's final
        hypervolume (when no reference was known up front) and, given the returned front's trial
        numbers, each HParams session's ``on_front``; release the run."""
        if self._writer is None and not self._open(study):
            return
        try:
            self._log_finished(study, None, final=True)
            step = max(self._next - 1, 0)
            if len(self.objectives) >= 2:
                self._figures(study, step)
            if step > self._closed:  # a rerun that added no trial has nothing new to mark
                self._closed = step
                self._writer.add_scalar(CLOSED_TAG, step, global_step=step)
                if self.reference is None and final_hypervolume is not None:
                    self._writer.add_scalar("search/final_hypervolume", final_hypervolume, global_step=step)
                if self.hparams is not None and front_numbers is not None:
                    numbers = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
                    self.hparams.mark_front(self.device, front_numbers, numbers, step)
        finally:
            self._writer.close()
            self._writer = None
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _open(self, study: optuna.Study) -> bool:
        from torch.utils.tensorboard import SummaryWriter

        self.logdir.mkdir(parents=True, exist_ok=True)
        lock = (self.logdir / ".writer.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return False
        self._lock = lock
        steps = last_steps(self.logdir)
        logged = steps.get(PROGRESS_TAG, -1)
        self._figured = max((v for k, v in steps.items() if k.startswith("pareto/")), default=-1)
        self._closed = steps.get(CLOSED_TAG, -1)
        # What earlier runs logged is replayed into the statistics only: their steps stay as written.
        for trial in study.get_trials(deepcopy=False, states=_FINISHED):
            if trial.number <= logged:
                self._front.add(trial)
        self._next = logged + 1
        self._writer = SummaryWriter(log_dir=str(self.logdir), flush_secs=5)
        return True

    def _log_finished(self, study: optuna.Study, trial: FrozenTrial | None, final: bool = False) -> None:
        if trial is not None and trial.number == self._next:
            self._log(study, trial)  # the usual case: one worker, trials in order, no storage read
            return
        pending = sorted(
            (t for t in study.get_trials(deepcopy=False) if t.number >= self._next), key=lambda t: t.number
        )
        for other in pending:
            if other.state not in _FINISHED:
                if not final:
                    break  # another worker's trial: wait for it, so steps stay in order
                continue
            self._log(study, other)

    def _log(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._front.add(trial)
        step, front, writer = trial.number, self._front, self._writer
        if trial.state == TrialState.COMPLETE and REUSED_KEY not in trial.user_attrs:
            for name, value in zip(self.objectives, trial.values):
                writer.add_scalar(f"objective/{name}", value, global_step=step)
        if self.reference is not None:
            writer.add_scalar("search/hypervolume", front.hypervolume, global_step=step)
        writer.add_scalar("search/front_size", len(front.points), global_step=step)
        writer.add_scalar("search/feasible_share", front.feasible / max(front.complete, 1), global_step=step)
        writer.add_scalar("search/failed", front.failed, global_step=step)
        writer.add_scalar(PROGRESS_TAG, front.evaluations, global_step=step)
        if self.hparams is not None and trial.state == TrialState.COMPLETE:
            self.hparams.write(self.device, self.run, trial, self._session_metrics(trial))
        self._next = trial.number + 1
        if len(self.objectives) >= 2 and self._figure_due(trial.number):
            self._figures(study, step)

    def _figure_due(self, number: int) -> bool:
        """Every ``figure_every`` trials; past 20 figures, every 5% of the trials so far at most: a
        figure plots every trial, so at a fixed pace its cost per trial would grow with the study
        (at 9,000 trials the images took a sixth of a predictor-only search's time)."""
        gap = max(self.figure_every, (number + 1) // 20)
        return (number + 1) % self.figure_every == 0 and number - self._figured >= gap

    def _session_metrics(self, trial: FrozenTrial) -> dict[str, float]:
        assert self.hparams is not None
        tag = functools.partial(self.hparams.tag, self.device)
        values = {tag("objective", n): v for n, v in zip(self.objectives, trial.values)}
        values |= {tag("metric", m): trial.user_attrs.get(METRIC_PREFIX + m) for m in self.metrics}
        values |= {tag("constraint", c.name): trial.constraints.get(c.name) for c in self.constraints}
        return values | {"feasible": float(feasible(trial))}

    def _figures(self, study: optuna.Study, step: int) -> None:
        if step <= self._figured:
            return
        self._figured = step
        trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number <= step]
        for i, j in combinations(range(len(self.objectives)), 2):
            figure = pareto_figure(
                trials,
                self.objectives,
                self.directions,
                (i, j),
                constraints=self.constraints,
                true_values=self.true_values,
                title=f"{self.device} after trial {step}",
            )
            self._writer.add_figure(f"pareto/{self.objectives[i]}_vs_{self.objectives[j]}", figure, global_step=step)


def write_overlay(
    logdir: Path, fronts: Mapping[str, np.ndarray], names: tuple[str, str], directions: tuple[str, str], step: int = 0
) -> None:
    """:func:`overlay_figure` as the TensorBoard run ``overlay`` of a multi-device run."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(logdir)) as writer:
        writer.add_figure(
            f"pareto/{names[0]}_vs_{names[1]}", overlay_figure(fronts, names, directions), global_step=step
        )


def write_parity(
    logdir: Path,
    measured: np.ndarray,
    predicted: np.ndarray,
    *,
    name: str,
    scalars: Mapping[str, float | None] | None = None,
    step: int = 0,
) -> None:
    """A predictor against measurements (hwnas-fit's test rows, a pipeline's re-measured front):
    the image ``parity/<name>`` (:func:`parity_figure`), the histogram ``error/<name>`` of
    predicted / measured - 1, and each of ``scalars`` (Spearman, share within 10%, ...) as
    ``metrics/<key>``."""
    from torch.utils.tensorboard import SummaryWriter

    measured, predicted = np.asarray(measured, dtype=float), np.asarray(predicted, dtype=float)
    with SummaryWriter(log_dir=str(logdir)) as writer:
        writer.add_figure(f"parity/{name}", parity_figure(measured, predicted, name), global_step=step)
        positive = measured > 0
        if positive.any():
            writer.add_histogram(f"error/{name}", predicted[positive] / measured[positive] - 1.0, global_step=step)
        for key, value in (scalars or {}).items():
            if value is not None and math.isfinite(value):
                writer.add_scalar(f"metrics/{key}", value, global_step=step)
