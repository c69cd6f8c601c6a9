"""ArchitectureSampler.history reads finished trials once and the rest again: what it returns
must equal a reading of every trial from scratch, through running, failed, pruned and repeated
trials and a constraint that appears midway."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import TrialState

from nas.samplers import MutationSampler
from nas.samplers._base import History
from nas.search import REUSED_KEY
from tests.nas.toy import ToySpace

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _same(incremental: History, fresh: History) -> None:
    np.testing.assert_array_equal(incremental.indices, fresh.indices)
    np.testing.assert_array_equal(incremental.values, fresh.values)
    np.testing.assert_array_equal(incremental.violations, fresh.violations)
    np.testing.assert_array_equal(incremental.failed, fresh.failed)
    assert set(incremental.taken) == set(fresh.taken) and len(incremental.taken) == len(fresh.taken)


def test_an_incremental_history_equals_a_fresh_reading() -> None:
    space = ToySpace()
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="history")
    sampler = MutationSampler(space, seed=0, n_startup_trials=3)
    running = None
    for number in range(40):
        trial = study.ask(space.distributions())
        if number == 5:
            running = trial  # stays RUNNING until trial 30: the trials after it are read again
            continue
        if number % 7 == 3:
            study.tell(trial, state=TrialState.FAIL)
        elif number % 11 == 4:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            if number % 9 == 8:
                trial.set_user_attr(REUSED_KEY, 0)  # a repeat answered from the storage
            if number >= 20:  # a constraint the first trials lack: their violation reads 0
                trial.set_constraint("width", float(number % 3) - 1.0)
            study.tell(trial, [float(number), float(40 - number)])
        if number == 30:
            study.tell(running, [1.0, 1.0])
        _same(sampler.history(study), MutationSampler(space, seed=0).history(study))
    history = sampler.history(study)
    assert len(history) > 20 and history.violations.shape[1] == 1 and len(history.failed) > 0
