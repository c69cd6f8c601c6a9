"""A mutation sampler: local search around the best network within a random cost budget.

After ``n_startup_trials`` random networks, each proposal picks a budget (a random quantile of
the costs evaluated so far), takes the best feasible network within it (a member of the current
front) and mutates it: every gene redrawn with probability 1/genes, at least one. A mutant that
was already taken, or ignores its input, is drawn again. Nothing is modelled, so a proposal costs
microseconds whatever the space's size: the strategy for spaces of 10^19 networks (OFA) and for
very long runs; :class:`~nas.samplers.SurrogateSampler` spends more per proposal to need fewer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from optuna.study import StudyDirection

from nas._capabilities import dedup_keys
from nas._space import SearchSpace
from nas.samplers._base import ArchitectureSampler, History, usable
from nas.samplers._pool import mutants


class MutationSampler(ArchitectureSampler):
    """Mutate the best network within a random cost budget (see the module).

    Args:
        space: the search space.
        seed: seeds every draw.
        n_startup_trials: random networks before mutating.
        tries: mutants drawn per proposal before falling back to a random network.
    """

    def __init__(
        self, space: SearchSpace, seed: int | None = None, n_startup_trials: int = 20, tries: int = 100
    ) -> None:
        super().__init__(space, seed)
        self.n_startup_trials = n_startup_trials
        self.tries = tries

    def propose(self, history: History, directions: Sequence[StudyDirection]) -> np.ndarray:
        feasible = np.flatnonzero(history.feasible)
        if len(history) < self.n_startup_trials or len(feasible) == 0:
            return self.random_new(history.taken)
        parent = history.indices[self._parent(history, feasible)]
        for _ in range(self.tries):
            child = mutants(self.space, parent[None, :], 1, self._rng)
            if usable(self.space, child)[0] and dedup_keys(self.space, child)[0] not in history.taken:
                return child[0]
        return self.random_new(history.taken)

    def _parent(self, history: History, feasible: np.ndarray) -> int:
        """The best feasible trial within a random budget of the cost (the last objective for
        two or more: hwnas's objective groups put the score first), by the first objective."""
        values = history.values[feasible]
        if values.shape[1] == 1:
            return int(feasible[np.argmin(values[:, 0])])
        cost = values[:, -1]
        budget = np.quantile(cost, self._rng.random())
        within = np.flatnonzero(cost <= budget)
        return int(feasible[within[np.argmin(values[within, 0])]])
