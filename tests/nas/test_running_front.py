"""nas.results.RunningFront: the front as trials arrive equals the brute-force front of the
evaluated feasible points, and a repeat answered from the storage adds nothing to it."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from nas import pareto
from nas.results import RunningFront
from nas.search import REUSED_KEY


def _trial(values: list[float], reused_from: int | None = None) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(
        values=values,
        params={"x": 0},
        distributions={"x": IntDistribution(0, 1)},
        user_attrs={} if reused_from is None else {REUSED_KEY: reused_from},
        state=TrialState.COMPLETE,
    )


def test_the_running_front_is_the_brute_force_front_and_repeats_add_nothing() -> None:
    rng = np.random.default_rng(0)
    directions = ["maximize", "minimize"]
    points = rng.normal(size=(60, 2)).round(2)
    front = RunningFront(directions, reference=np.array([-5.0, 5.0]))
    for number, values in enumerate(points):
        front.add(_trial(list(values)))
        if number % 3 == 0:  # a sampler revisiting an architecture: answered from the storage
            front.add(_trial(list(values), reused_from=number))
    expected = points[pareto.non_dominated_mask(points, directions)]
    assert sorted(map(tuple, front.points)) == sorted(map(tuple, np.unique(expected, axis=0)))
    assert front.status()["front"] == len(np.unique(expected, axis=0))
    assert front.evaluations == 60 and front.complete == 80
    assert front.hypervolume == pareto.hypervolume(expected, directions, np.array([-5.0, 5.0]))
