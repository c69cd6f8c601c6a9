"""A surrogate-guided sampler: model every objective from the trials so far, score every candidate
architecture, evaluate the one most likely to improve the front where it matters.

Read top to bottom:

1. **Candidates** (:mod:`nas.samplers._pool`): all distinct networks of a small space (NB201's
   6,466 isomorphism classes less the disconnected one), or a seeded sample of a large one plus
   mutants of the current front (OFA, FBNet), each with its genes' features and log FLOPs; of
   those, the ones within ``radius`` changed genes of the evaluated front (a local search whose
   steps the models choose), plus a few picked from the whole pool by the models: those
   predicted cheaper than anything evaluated, and the predicted best within each cost band.
2. **Start-up**: the first ``n_startup_trials`` spread over the FLOPs range (one per FLOPs
   stratum), so the models see cheap and costly networks from the start.
3. **Models**: one extremely randomised tree ensemble per objective and constraint (scikit-learn's
   ``ExtraTreesRegressor``: fits a few hundred rows in milliseconds, and the spread of its trees
   is the uncertainty the acquisition needs), costs in log space and on the residuals of a ridge
   regression (which extrapolates to cheaper networks than any evaluated); where trials failed,
   one more predicts which networks fail, and the acquisition is weighted by the chance they
   do not. Refitted as trials arrive.
4. **Acquisition, per cost band**: a front is judged at every budget of its cost (the regret in
   ``nas.truth`` takes five percentiles of latency). So the cost range is cut into ``n_bands``
   budgets at quantiles of the predicted cost over the whole pool, plus one at its cheapest
   network, and a candidate's value is the sum over budgets of P(its cost is within the budget)
   x the expected improvement of its score over the best evaluated one within that budget, times
   P(it is feasible). Summed over budgets this is the expected gain in the front's area with cost
   read as its rank in the space, so every latency band counts alike, not only the knee.

Two objectives: the cost is the one named ``latency*`` (else the second), the score the other.
One objective: plain expected improvement. Three or more: the first objective is the score, the
others one cost mixed with random weights per proposal (each proposal targets another trade-off).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from optuna.study import StudyDirection
from scipy.special import ndtr
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.linear_model import Ridge

from nas._space import SearchSpace
from nas.pareto import non_dominated_mask
from nas.samplers._base import ArchitectureSampler, History
from nas.samplers._pool import Candidates, Priors, model_features, mutants, space_rows, weighted_quantiles

_SQRT_2PI = np.sqrt(2.0 * np.pi)
#: A sampled pool (OFA, FBNet: ``pool_size`` networks) is predicted whole, for budgets and pool
#: picks, from this many trees, once the evaluations grew by ``_POOL_REFRESH``; below-front picks
#: are capped at ``n_bands``. With every tree at every fit and no cap, an OFA search of 200
#: evaluations took twice as long. An enumerated pool (NB201's 6,466 classes) is cheap to predict
#: and keeps every tree, every fit and every pick (what its figures were measured with).
_SAMPLED_POOL_TREES = 16
_POOL_REFRESH = 1.1


class SurrogateSampler(ArchitectureSampler):
    """Evaluate where the predicted front can still improve, band by band (see the module).

    Args:
        space: the search space.
        seed: seeds the candidate sample, the start-up and the models.
        n_startup_trials: evaluations spread over the FLOPs range before the models are used.
        pool_size: a space with at most this many gene vectors is enumerated; a larger one is
            sampled this many times (once, from ``seed``).
        n_mutants: for a sampled space, mutants of the front's members added per proposal (spread
            evenly over the members, at least one each).
        n_bands: cost budgets the acquisition sums over.
        n_trees: trees per model.
        refit_growth: models are refitted once the evaluations grew by this fraction (at least
            one): with thousands of trials, refitting at every one would dominate the loop.
        radius: candidates are the networks within this many changed genes of a network on the
            evaluated front (the whole pool when none is left there, or with ``None``), plus the
            pool picks below: the models rank neighbours well but extrapolate poorly, and NB201's
            good cells neighbour good cells. Chosen on raspi4 and fpga (seeds 100-109, 100
            evaluations: radius 1 0.36, 3 0.52, 6 0.66, whole pool 0.64 regret), checked on the
            other devices and seeds by scripts/bench_search.py.
        linear_costs: model each cost (and constraint) as a ridge regression plus trees on its
            residuals, so that predictions reach below the cheapest evaluated network (trees
            alone never predict outside the values they were fitted on). On pi5_litert (seeds
            0-2, 100 evaluations) regret 7.0 without, 0.75 with; raspi4 and fpga (seeds 100-109)
            0.39 without, 0.31 with.
        band_leaders: add the pool's best predicted network within each band to the candidates
            (raspi4, fpga and pi5_litert, seeds 100-105: regret 0.62 without, 0.40 with).
        priors: directories ``hwnas-score`` wrote (its scores.csv): their scores become model
            features. Zero-cost proxies do not depend on the device: scored once for a space,
            they serve every device's search.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int | None = None,
        n_startup_trials: int = 10,
        pool_size: int = 20_000,
        n_mutants: int = 256,
        n_bands: int = 25,
        n_trees: int = 64,
        refit_growth: float = 0.02,
        radius: int | None = 1,
        linear_costs: bool = True,
        band_leaders: bool = True,
        priors: Sequence[str] = (),
    ) -> None:
        super().__init__(space, seed)
        self.n_startup_trials = n_startup_trials
        self.pool_size = pool_size
        self.n_mutants = n_mutants
        self.n_bands = n_bands
        self.n_trees = n_trees
        self.refit_growth = refit_growth
        self.radius = radius
        self.linear_costs = linear_costs
        self.band_leaders = band_leaders
        self.priors = Priors.read(priors) if priors else None
        self._pool: Candidates | None = None
        self._models: list[_Model] | None = None
        self._fitted_on = 0
        self._feature_cache: dict[bytes, np.ndarray] = {}
        self._pool_cache: tuple[int, list[np.ndarray]] | None = None
        self._failure: _Model | None = None
        self._pool_p_ok_cache: tuple[int, np.ndarray] | None = None

    @property
    def pool(self) -> Candidates:
        if self._pool is None:
            self._pool = Candidates.of(self.space, space_rows(self.space, self.pool_size, self._rng), self.priors)
        return self._pool

    @property
    def enumerated(self) -> bool:
        return self.space.size() <= self.pool_size

    def propose(self, history: History, directions: Sequence[StudyDirection]) -> np.ndarray:
        candidates = self._candidates(history)
        if len(candidates) == 0:
            return self.random_new(history.taken)
        if len(history) < self.n_startup_trials:
            return self._startup(candidates, history)
        models = self._fit(history)
        candidates = candidates + self._pool_picks(models, history)
        gain = self._acquisition(models, candidates, history)
        return candidates.indices[int(np.argmax(gain))]

    def _pool_picks(self, models: list[_Model], history: History) -> Candidates:
        """Candidates beyond the front's neighbourhood, from the whole pool: the fresh rows
        predicted cheaper than every feasible evaluated network (no front member to step from
        there; of a sampled pool, the ``n_bands`` cheapest), and with ``band_leaders`` the fresh
        row with the best predicted score within each band's budget. Without them, a search on
        pi5_litert never reached its best cheap cells: one live 1x1 convolution, several genes
        away from the cheap cells a search meets first."""
        empty = self.pool.where(np.zeros(len(self.pool), dtype=bool))
        if self.radius is None or history.values.shape[1] != 2 or not history.feasible.any():
            return empty
        score_axis, (cost_axis,) = self._axes(history)
        cheapest = _transform(history.values)[history.feasible, cost_axis].min()
        predicted = self._pool_means(models)
        cost, score = predicted[cost_axis], predicted[score_axis]
        fresh = _untaken(self.pool, history)
        if self._failure is not None:  # picks are taken on the models' word alone: not likely failures
            fresh &= self._pool_p_ok() > 0.5
        mask = np.zeros(len(self.pool), dtype=bool)
        below = np.flatnonzero(fresh & (cost < cheapest))
        # A ridge can put thousands of a sampled pool below the front: its cheapest n_bands.
        mask[below if self.enumerated else below[np.argsort(cost[below])[: self.n_bands]]] = True
        if self.band_leaders:
            budgets = weighted_quantiles(cost, self.pool.members, (np.arange(self.n_bands) + 0.5) / self.n_bands)
            for budget in budgets:
                within = np.flatnonzero(fresh & (cost <= budget))
                if len(within):
                    mask[within[np.argmin(score[within])]] = True
        return self.pool.where(mask)

    def _candidates(self, history: History) -> Candidates:
        """Fresh candidates: the pool's (a sampled pool gains mutants of the front), those near
        the front when ``radius`` is set and some are."""
        if len(history) < self.n_startup_trials:
            return self._fresh(self.pool, history)
        front = history.indices[_front_mask(history)]
        pool = self.pool
        if not self.enumerated:
            per_member = max(1, self.n_mutants // max(1, len(front)))
            near_front = Candidates.of(self.space, mutants(self.space, front, per_member, self._rng), self.priors)
            # Random pool rows are almost never within a few genes of the front: skip them.
            pool = near_front if self.radius is not None and len(near_front) else pool + near_front
        fresh = self._fresh(pool, history)
        if self.radius is not None and len(front):
            distance = (fresh.indices[:, None, :] != front[None, :, :]).sum(axis=2).min(axis=1)
            if (distance <= self.radius).any():
                fresh = fresh.where(distance <= self.radius)
        return fresh

    @staticmethod
    def _fresh(pool: Candidates, history: History) -> Candidates:
        return pool.where(_untaken(pool, history))

    def _startup(self, candidates: Candidates, history: History) -> np.ndarray:
        """A random candidate of the FLOPs stratum (``n_startup_trials`` strata, each holding as
        many gene vectors) that has the fewest evaluations so far, failed trials counted (else a
        stratum whose networks an objective refuses would be asked for forever)."""
        if candidates.log_flops is None or self.pool.log_flops is None:
            return candidates.indices[self._rng.integers(len(candidates))]
        pool = self.pool
        assert pool.log_flops is not None
        edges = weighted_quantiles(pool.log_flops, pool.members, np.linspace(0, 1, self.n_startup_trials + 1)[1:-1])
        tried = np.vstack([history.indices, history.failed.reshape(-1, history.indices.shape[1])])
        evaluated = model_features(self.space, tried)[1] if len(tried) else np.empty(0)
        counts = np.bincount(np.searchsorted(edges, evaluated), minlength=self.n_startup_trials)
        strata = np.searchsorted(edges, candidates.log_flops)
        emptiest = np.flatnonzero(counts == counts.min())
        choices = np.flatnonzero(np.isin(strata, emptiest))
        if len(choices) == 0:
            choices = np.arange(len(candidates))
        return candidates.indices[self._rng.choice(choices)]

    def _fit(self, history: History) -> list[_Model]:
        seen = len(history) + len(history.failed)  # failures count: the failure model learns from them
        grown = seen - self._fitted_on
        if self._models is not None and grown < max(1, self.refit_growth * self._fitted_on):
            return self._models
        features = self._features(history.indices)
        targets = np.hstack([_transform(history.values), history.violations])
        seed = int(self._rng.integers(2**31))
        linear = self._cost_columns(history) if self.linear_costs else []
        self._models = [
            _fit_model(features, column, j in linear, self.n_trees, seed) for j, column in enumerate(targets.T)
        ]
        self._failure = self._fit_failure(history, seed)
        self._fitted_on = seen
        return self._models

    def _fit_failure(self, history: History, seed: int) -> _Model | None:
        """Where trials failed (an objective refused the network, e.g. OFA's accuracy predictor
        below 160 pixels), trees on the evaluated and failed networks predicting which fail:
        without them the models never learn what fails, and a search proposed such networks until
        20 in a row had failed."""
        if not len(history.failed):
            return None
        features = self._features(np.vstack([history.indices, history.failed]))
        target = np.r_[np.zeros(len(history)), np.ones(len(history.failed))]
        return _fit_model(features, target, False, self.n_trees, seed)

    def _pool_p_ok(self) -> np.ndarray:
        """:meth:`_p_ok` of the whole pool, computed once per fit (the failure model changes only
        when refitted; it was predicted over the whole pool at every proposal)."""
        if self._pool_p_ok_cache is None or self._pool_p_ok_cache[0] != self._fitted_on:
            self._pool_p_ok_cache = (self._fitted_on, np.asarray(self._p_ok(self.pool.features)))
        return self._pool_p_ok_cache[1]

    def _p_ok(self, features: np.ndarray) -> np.ndarray | float:
        """1 - the predicted chance that a network's trial fails (1 while none has failed)."""
        if self._failure is None:
            return 1.0
        return 1.0 - np.clip(_predict(self._failure, features)[0], 0.0, 1.0)

    def _features(self, indices: np.ndarray) -> np.ndarray:
        """:func:`model_features` of evaluated rows, each computed once."""
        missing = [row for row in indices if row.tobytes() not in self._feature_cache]
        if missing:
            features, _ = model_features(self.space, np.array(missing), self.priors)
            self._feature_cache.update((row.tobytes(), f) for row, f in zip(missing, features))
        return np.array([self._feature_cache[row.tobytes()] for row in indices])

    def _acquisition(self, models: list[_Model], candidates: Candidates, history: History) -> np.ndarray:
        n_objectives = history.values.shape[1]
        means, stds = zip(*(_predict(m, candidates.features) for m in models))
        observed = _transform(history.values)
        feasible = history.feasible
        p_feasible = np.ones(len(candidates))
        for mean, std in zip(means[n_objectives:], stds[n_objectives:]):
            p_feasible *= ndtr(-mean / std)
        if n_objectives == 1:
            best = observed[feasible, 0].min() if feasible.any() else observed[:, 0].max()
            return p_feasible * self._p_ok(candidates.features) * _expected_improvement(means[0], stds[0], best)
        score_axis, cost_axes = self._axes(history)
        mean_s, std_s = means[score_axis], stds[score_axis]
        pool_costs = [self._pool_means(models)[c] for c in cost_axes]
        if len(cost_axes) == 1:
            (c,) = cost_axes
            mean_c, std_c, cost_seen, pool_c = means[c], stds[c], observed[:, c], pool_costs[0]
        else:  # a random trade-off between the costs, each scaled to the pool's predicted range
            weights = self._rng.dirichlet(np.ones(len(cost_axes)))
            lows = np.array([p.min() for p in pool_costs])
            spans = np.array([np.ptp(p) or 1.0 for p in pool_costs])
            mean_c = sum(w * (means[c] - lo) / s for w, c, lo, s in zip(weights, cost_axes, lows, spans))
            std_c = np.sqrt(sum((w * stds[c] / s) ** 2 for w, c, s in zip(weights, cost_axes, spans)))
            cost_seen = sum(w * (observed[:, c] - lo) / s for w, c, lo, s in zip(weights, cost_axes, lows, spans))
            pool_c = sum(w * (p - lo) / s for w, p, lo, s in zip(weights, pool_costs, lows, spans))
        # Budgets at quantiles of the whole pool's predicted cost, over the gene vectors (a class
        # counts its members), as the regret's percentiles are taken over the space: quantiles
        # of the candidates near the front would leave the cheapest corner without a budget.
        # Plus one budget at the cheapest predicted network, which anchors the front's cheap end:
        # a model fitted near the front predicts the space's cheap networks too costly (on
        # pi5_litert it put 2% of the pool above 1.2 ms where 10% of the cells are under 0.78),
        # and its budgets would then all lie above the cheapest evaluated network.
        quantiles = np.r_[0.0, (np.arange(self.n_bands) + 0.5) / self.n_bands]
        budgets = weighted_quantiles(pool_c, self.pool.members, quantiles)
        score_seen = observed[:, score_axis]
        # A budget with nothing evaluated within it loses the whole score (nas.truth's regret):
        # improving on nothing is worth a range of scores beyond the worst seen.
        nothing = score_seen.max() + max(np.ptp(score_seen), 1e-9)
        gain = np.zeros(len(candidates))
        for budget in budgets:
            within = feasible & (cost_seen <= budget)
            best = score_seen[within].min() if within.any() else nothing
            gain += ndtr((budget - mean_c) / std_c) * _expected_improvement(mean_s, std_s, best)
        return p_feasible * self._p_ok(candidates.features) * gain

    def _pool_means(self, models: list[_Model]) -> list[np.ndarray]:
        """Each model's predicted mean over the whole pool (see ``_SAMPLED_POOL_TREES``)."""
        refresh, trees = (1.0, None) if self.enumerated else (_POOL_REFRESH, _SAMPLED_POOL_TREES)
        cache = self._pool_cache
        if cache is None or (self._fitted_on != cache[0] and self._fitted_on >= refresh * cache[0]):
            means = [_predict(m, self.pool.features, n_trees=trees)[0] for m in models]
            self._pool_cache = (self._fitted_on, means)
        return self._pool_cache[1]

    def _cost_columns(self, history: History) -> list[int]:
        """Target columns that are costs: the cost objectives and the constraints."""
        n = history.values.shape[1]
        costs = self._axes(history)[1] if n > 1 else []
        return [*costs, *range(n, n + history.violations.shape[1])]

    def _axes(self, history: History) -> tuple[int, list[int]]:
        n = history.values.shape[1]
        names = history.metric_names or ()
        latency = [i for i, name in enumerate(names) if name.startswith("latency")]
        if n == 2:
            cost = latency[0] if latency else 1
            return 1 - cost, [cost]
        return 0, list(range(1, n))


def _untaken(pool: Candidates, history: History) -> np.ndarray:
    """Which of ``pool``'s rows no trial has taken (evaluated, running or failed)."""
    return np.array([k not in history.taken for k in pool.keys], dtype=bool)


def _transform(values: np.ndarray) -> np.ndarray:
    """Minimised values as the models see them: a column of positive values (a latency, an
    energy, a count) in log space, where costs spread evenly; others as they are."""
    out = np.array(values, dtype=float)
    for j in range(out.shape[1]):
        column = out[:, j]
        if len(column) and (column > 0).all():
            out[:, j] = np.log(column)
    return out


@dataclass(frozen=True)
class _Model:
    """A ridge regression (or none) plus extremely randomised trees on its residuals."""

    linear: Ridge | None
    trees: ExtraTreesRegressor


def _fit_model(features: np.ndarray, target: np.ndarray, linear: bool, n_trees: int, seed: int) -> _Model:
    ridge = Ridge(alpha=1.0).fit(features, target) if linear else None
    residual = target - ridge.predict(features) if ridge is not None else target
    trees = ExtraTreesRegressor(n_estimators=n_trees, min_samples_leaf=2, max_features=0.7, random_state=seed)
    return _Model(ridge, trees.fit(features, residual))


def _predict(model: _Model, features: np.ndarray, n_trees: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    # Each tree's own predictions (the trees' spread is the uncertainty), read from the fitted
    # trees directly: their public predict() validates the input again per tree, 10x the work.
    features = np.ascontiguousarray(features, dtype=np.float32)
    trees = model.trees.estimators_[:n_trees]
    per_tree = np.stack([tree.tree_.predict(features)[:, 0] for tree in trees])
    if model.linear is not None:
        per_tree += model.linear.predict(features)
    mean = per_tree.mean(axis=0)
    # A floor: trees that agree exactly (few rows, one leaf) are not certain.
    floor = 1e-3 * (np.ptp(mean) or 1.0)
    return mean, np.maximum(per_tree.std(axis=0), floor)


def _expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """E[max(best - y, 0)] for y ~ N(mean, std) (minimisation)."""
    z = (best - mean) / std
    return std * (np.exp(-0.5 * z * z) / _SQRT_2PI + z * ndtr(z))


def _front_mask(history: History) -> np.ndarray:
    mask = np.zeros(len(history), dtype=bool)
    feasible = np.flatnonzero(history.feasible)
    if len(feasible):
        directions = ["minimize"] * history.values.shape[1]
        mask[feasible[non_dominated_mask(history.values[feasible], directions)]] = True
    return mask
