"""What a running search shows and answers to, wired from its config: its TensorBoard run and
HParams experiment (:mod:`nas.tensorboard`), the front and counts of its progress bar, and the
signals that stop it cleanly (SIGTERM, Ctrl-C)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from optuna.trial import TrialState

from nas.objective_cache import CachedObjective
from nas.results import Oracle, RunningFront, TrialsTable, reference_point
from nas.search import Search
from nas.tensorboard import HParamsLog, SearchBoard

log = logging.getLogger("hwnas.search")


def hparams_log(root: Path, configs: list[DictConfig], searches: list[Search]) -> HParamsLog:
    """The HParams experiment of a run of one or several devices (``configs``, ``searches``).
    With several, a device's own values (its latency) are its own metric, ``objective/latency_ms@
    raspi4``, so no axis mixes devices; what every device shares (accuracy, a proxy: evaluated
    once, :class:`~nas.objective_cache.CachedObjective`) stays one metric."""
    shared = {m.name for s in searches for m in s.measures if isinstance(m, CachedObjective)}
    hparams = HParamsLog(
        root,
        run={
            "device": [c.device.name for c in configs],
            "space": [configs[0].space.name],
            "sampler": [sampler_name(configs[0])],
            "seed": [int(configs[0].seed)],
        },
        genes=searches[0].space.distributions(),
        metrics=[],
        shared=shared if len(searches) > 1 else None,
    )
    tags: dict[str, None] = {}
    for cfg, search in zip(configs, searches):
        device = cfg.device.name
        tags |= dict.fromkeys(hparams.tag(device, "objective", o.name) for o in search.objectives)
        tags |= dict.fromkeys(hparams.tag(device, "metric", m.name) for m in search.metrics)
        tags |= dict.fromkeys(hparams.tag(device, "constraint", c.name) for c in search.constraints)
    hparams.declare([*tags, "feasible", "on_front"])
    return hparams


def search_board(
    cfg: DictConfig, logdir: Path, search: Search, oracle: Oracle | None, hparams: HParamsLog | None
) -> SearchBoard:
    """The device's TensorBoard run; its hypervolume is live when the reference point is known
    before the search (given, or the oracle's worst values, as summary.json then uses)."""
    reference = fixed_reference(cfg, search, oracle)
    return SearchBoard(
        logdir,
        [o.name for o in search.objectives],
        search.directions,
        metrics=[m.name for m in search.metrics],
        constraints=search.constraints,
        reference=reference,
        true_values=oracle.values if oracle is not None else None,
        figure_every=cfg.get("tensorboard_figure_every", 25),
        hparams=hparams,
        device=cfg.device.name,
        run={"device": cfg.device.name, "space": cfg.space.name, "sampler": sampler_name(cfg), "seed": int(cfg.seed)},
    )


def sampler_name(cfg: DictConfig) -> str:
    """The sampler's class (``NSGAIISampler``, ``SurrogateSampler``): what the run searched with."""
    return str(cfg.sampler._target_).rsplit(".", 1)[-1]


class StopOnSignal:
    """SIGTERM (a scheduler's or ``kill``'s stop) and a first Ctrl-C ask the search to stop after
    the trial in progress (``Search.run(should_stop=...)``), so its outputs are written and the
    command exits with INTERRUPTED_EXIT; a second Ctrl-C interrupts at once. Handlers are set on
    entry and restored on exit (only from the main thread, where Python allows them)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __call__(self) -> bool:
        return self.requested

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning(
            "%s: stopping after the trial in progress and writing what finished%s",
            signal.Signals(signum).name,
            " (Ctrl-C again to abort at once)" if signum == signal.SIGINT else "",
        )

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def running_front(search: Search, oracle: Oracle | None, cfg: DictConfig) -> RunningFront:
    """The front and counts the progress bar and the log show, from the study's finished trials on."""
    reference = fixed_reference(cfg, search, oracle)
    front = RunningFront(search.directions, reference)
    for trial in search.study().get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        front.add(trial)
    return front


def fixed_reference(cfg: DictConfig, search: Search, oracle: Oracle | None) -> Any:
    """The hypervolume reference known before the search (given, or the oracle's worst values, as
    summary.json then uses); None otherwise."""
    given = None if cfg.reference_point is None else list(cfg.reference_point)
    if given is None and oracle is None:
        return None
    empty = TrialsTable((), (), tuple(o.name for o in search.objectives), tuple(search.directions))
    return reference_point(empty, given, oracle)[0]
