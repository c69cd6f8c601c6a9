"""Samplers that know architectures, as Optuna samplers (``optuna.samplers.BaseSampler``), so
storages, constraints, resume and workers work with them as with Optuna's own.

* :class:`SurrogateSampler`: models every objective from the trials so far and evaluates the
  candidate most likely to improve the front within some cost budget.
* :class:`MutationSampler`: mutates the best network within a random cost budget (regularised
  local search), for spaces too large to score every candidate.

Both propose each distinct network once (an NB201 isomorphism class is one network) and never a
network that ignores its input. ``nas.search.Search`` additionally answers any repeat a sampler
proposes from the storage, without spending the budget.
"""

from nas.samplers._base import ArchitectureSampler, History
from nas.samplers._mutation import MutationSampler
from nas.samplers._surrogate import SurrogateSampler

__all__ = ["ArchitectureSampler", "History", "MutationSampler", "SurrogateSampler"]
