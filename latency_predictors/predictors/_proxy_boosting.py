"""Accuracy from a few labelled architectures: zero-cost proxies, the space's features and the
paths through its graphs.

Fitted on k architectures with a known accuracy (trained, or looked up in a benchmark table):

1. **Proxies, ranked.** Each member of :class:`nas.proxies.ProxyScores` scores every
   architecture; a score becomes its percentile among the scores of the k training architectures
   and of ``reference``, unlabelled architectures (e.g. the candidates a search will rank), whose
   proxy scores cost seconds where a label costs a training run
   (:func:`nas.proxies.percentiles_among`). No proxy's scale dominates, and an unscored
   architecture (NaN: NB201's disconnected cells) ranks below all. With a 1,000-cell reference
   (the bench's whole sample) the CIFAR-10 Spearman rose from 0.878 to 0.903 at k = 10 (the
   ridge alone), from 0.932 to 0.939 at k = 50 and from 0.951 to 0.952 at k = 100 (five label
   draws; ``scripts/bench_proxies.py --reference labelled`` against the default).
2. **A linear base.** :class:`nas.proxies.LearnedCombination`, a ridge of the accuracies' ranks
   (divided by k) on those percentiles: robust from k = 10, and already an ensemble of the proxies.
3. **Trees on what it misses.** ``bags`` LightGBM models of the base's residuals, each on a
   random ``subsample`` of the rows and ``colsample`` of the columns, over the percentiles, the
   space's feature matrix (one-hot genes, value counts, its derived columns), GRAF's path
   features where the space draws graphs (:func:`nas.path_features`: per subset of inner node
   labels, the number, shortest and longest of the input-to-output paths through it) and the base
   itself; their mean is added to the base. Leaves hold at least ``max(min_leaf_rows, min(20,
   k // 10))`` rows. Below ``boost_from`` labels (20) there are no trees: on 10 labels they
   fitted noise (1,000 random NB201 cells; meco, synflow, naswot and flops; 10 label draws;
   CIFAR-10 / CIFAR-100 / ImageNet16-120 Spearman 0.849 / 0.791 / 0.830 with trees, 0.876 /
   0.865 / 0.856 without; still 0.866 / 0.804 / 0.847 at a tenth of the learning rate), while
   on 20 they add (0.919 / 0.907 / 0.889 against 0.917 / 0.901 / 0.868).
4. **Back to accuracy.** The predicted rank maps through the labelled accuracies (linear between
   them, extrapolated by the end segments beyond), a strictly increasing map: predictions order
   architectures exactly as the ranks do, in accuracy's units.

Measured by ``scripts/bench_proxies.py`` (NB201, numbers in the README). The file holds every
booster (LightGBM's text format), the ridge, the training percentiles' populations and the
labelled accuracies, and the members' sources; predicting new architectures needs the members
themselves, so :meth:`ProxyBoostingPredictor.load` takes a ``ProxyScores`` and refuses one whose
sources differ.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latency_predictors.predictors._common import check_space, check_targets
from latency_predictors.predictors._features import feature_matrix
from latency_predictors.predictors._format import StoredPredictor
from latency_predictors.predictors._trees import model_array, model_from_array
from nas import (
    Architecture,
    GraphSpace,
    PredictorMismatchError,
    SearchSpace,
    inner_labels,
    label_subsets,
    path_features,
)
from nas.predictor_file import PredictorFileError
from nas.proxies import LearnedCombination, ProxyScores, percentiles_among


class ProxyBoostingPredictor(StoredPredictor):
    """Accuracy (or any "higher is better" score) from proxies, features and a few labels (see
    module). ``device_fingerprint`` names what the labels are (e.g. ``cifar10_test_acc``)."""

    kind = "proxy_boosting"
    FEATURE_VERSION = 1
    USES_SPACE_FEATURES = True

    def __init__(
        self,
        space: SearchSpace,
        device_fingerprint: str,
        scores: ProxyScores,
        *,
        bags: int = 5,
        n_estimators: int = 300,
        learning_rate: float = 0.03,
        num_leaves: int = 7,
        subsample: float = 0.7,
        colsample: float = 0.6,
        min_leaf_rows: int = 2,
        boost_from: int = 20,
        reference: Sequence[Architecture] = (),
        seed: int = 0,
    ) -> None:
        if scores.space.name != space.name:
            raise PredictorMismatchError(f"proxy scores of space {scores.space.name!r} for a {space.name!r} predictor")
        counts = {"bags": (bags, 1), "n_estimators": (n_estimators, 1), "num_leaves": (num_leaves, 2)}
        counts |= {"min_leaf_rows": (min_leaf_rows, 1), "boost_from": (boost_from, 1)}
        for name, (value, least) in counts.items():
            if not (float(value).is_integer() and value >= least):
                raise ValueError(f"{name}={value!r} is out of range: an integer >= {least}")
        for name, value in (("subsample", subsample), ("colsample", colsample)):
            if not 0 < value <= 1:
                raise ValueError(f"{name}={value!r} is out of range: a share in (0, 1]")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate={learning_rate!r} is out of range: > 0")
        self.search_space, self.space, self.device_fingerprint = space, space.name, device_fingerprint
        self.scores = scores
        self.settings: dict[str, Any] = {
            "bags": int(bags),
            "n_estimators": int(n_estimators),
            "learning_rate": float(learning_rate),
            "num_leaves": int(num_leaves),
            "subsample": float(subsample),
            "colsample": float(colsample),
            "min_leaf_rows": int(min_leaf_rows),
            "boost_from": int(boost_from),
            "seed": int(seed),
        }
        self.reference_archs = tuple(reference)
        self._reference: np.ndarray | None = None  # the training architectures' proxy scores
        self._base: LearnedCombination | None = None
        self._boosters: list[Any] = []
        self._subsets: tuple[frozenset[int], ...] = ()
        self._ranks = self._accuracies = np.empty(0)  # the map from predicted rank to accuracy

    # -- fitting -------------------------------------------------------------------------------

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> ProxyBoostingPredictor:
        import lightgbm
        from scipy.stats import rankdata

        y = check_targets(archs, y)
        check_space(self.search_space, archs)
        strings = [a.string for a in archs]
        if len(set(strings)) != len(strings):
            twice = next(a for a in strings if strings.count(a) > 1)
            raise ValueError(f"{twice!r} is labelled more than once: keep one label per architecture")
        if len(np.unique(y)) < 2:
            raise ValueError(
                f"the {len(y)} labelled accuracies are all {float(y[0])!r}: ranking needs two different values"
            )
        labelled = set(strings)
        self._reference = self.scores([*archs, *(a for a in self.reference_archs if a.string not in labelled)])
        ranks = percentiles_among(self._reference, self._reference[: len(archs)])
        self._base = LearnedCombination.fit_percentiles(ranks, y)
        if isinstance(self.search_space, GraphSpace):
            self._subsets = label_subsets(inner_labels(self.search_space.graph_batch(archs)))
        x, base = self._design(archs, ranks)
        residual = rankdata(y) / len(y) - base
        s = self.settings
        params = {
            "objective": "regression",
            "learning_rate": s["learning_rate"],
            "num_leaves": s["num_leaves"],
            "min_data_in_leaf": max(s["min_leaf_rows"], min(20, len(y) // 10)),
            "bagging_fraction": s["subsample"],
            "bagging_freq": 1,
            "feature_fraction": s["colsample"],
            "feature_pre_filter": False,
            "deterministic": True,
            "force_col_wise": True,
            "num_threads": 1,
            "verbose": -1,
        }
        # Below boost_from labels, trees fit noise: the base alone ranks better (see module).
        self._boosters = [
            lightgbm.train(
                {**params, "seed": s["seed"] * 1000 + bag},
                lightgbm.Dataset(x, residual, params=params),
                num_boost_round=s["n_estimators"],
            )
            for bag in range(s["bags"] if len(y) >= s["boost_from"] else 0)
        ]
        order = np.argsort(y, kind="stable")
        accuracies, first = np.unique(y[order], return_index=True)
        positions = (np.arange(len(y)) + 1.0) / len(y)
        # tied accuracies share their mean rank, as rankdata gives the targets
        self._ranks = np.add.reduceat(positions, first) / np.diff(np.append(first, len(y)))
        self._accuracies = accuracies
        return self

    def _design(self, archs: Sequence[Architecture], ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs (percentiles, space features, path features, base) and the base."""
        assert self._base is not None
        base = self._base.predict_percentiles(ranks)
        columns = [ranks, feature_matrix(self.search_space, self.search_space.encoding.indices(archs))]
        if self._subsets:
            columns.append(path_features(self.search_space.graph_batch(archs), self._subsets))
        columns.append(base[:, None])
        return np.hstack(columns, dtype=np.float64), base

    # -- predicting ----------------------------------------------------------------------------

    def predict_rank(self, archs: Sequence[Architecture]) -> np.ndarray:
        """The predicted accuracy rank among the labelled architectures, divided by k (about 0..1)."""
        if self._reference is None or self._base is None:
            raise RuntimeError("ProxyBoostingPredictor.predict before fit (or load)")
        if len(archs) == 0:
            return np.empty(0)
        check_space(self.search_space, archs)
        x, base = self._design(archs, percentiles_among(self._reference, self.scores(archs)))
        trees = [booster.predict(x, num_threads=1) for booster in self._boosters]
        return base + (np.mean(trees, axis=0) if trees else 0.0)

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        """Accuracy at the predicted rank (see module, step 4)."""
        rank = self.predict_rank(archs)
        r, a = self._ranks, self._accuracies
        value = np.interp(rank, r, a)
        low_slope = (a[1] - a[0]) / (r[1] - r[0])
        high_slope = (a[-1] - a[-2]) / (r[-1] - r[-2])
        value = np.where(rank < r[0], a[0] + (rank - r[0]) * low_slope, value)
        return np.where(rank > r[-1], a[-1] + (rank - r[-1]) * high_slope, value)

    # -- the file ------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        if self._reference is None or self._base is None:
            raise RuntimeError("cannot save a ProxyBoostingPredictor that was never fitted")
        width = max((len(s) for s in self._subsets), default=0)
        subsets = np.full((len(self._subsets), width), -1, dtype=np.int64)
        for row, subset in enumerate(self._subsets):
            subsets[row, : len(subset)] = sorted(subset)
        self._write(
            path,
            arrays={
                "reference": self._reference,
                "base_coef": self._base.coef,
                "base_intercept": np.array([self._base.intercept]),
                "subsets": subsets,
                "ranks": self._ranks,
                "accuracies": self._accuracies,
                **{f"booster_{i}": model_array(b) for i, b in enumerate(self._boosters)},
            },
            params={**self.settings, "members": json.dumps(self.scores.sources())},
        )

    @classmethod
    def load(
        cls, path: Path, *, space: SearchSpace, device_fingerprint: str, scores: ProxyScores | None = None
    ) -> ProxyBoostingPredictor:
        """Read ``path``; ``scores`` must hold members of the sources it was fitted with, in order."""
        header, arrays = cls._read(path, space, device_fingerprint)
        params = dict(header["params"])
        members = json.loads(params.pop("members"))
        if scores is None:
            raise PredictorFileError(
                f"{path} predicts from proxies: load it with ProxyBoostingPredictor.load(path, space=..., "
                f"device_fingerprint=..., scores=ProxyScores(members, space)) with members {members}"
            )
        # in order too: the ridge and the reference are stored by column
        if list(scores.sources().items()) != list(members.items()):
            raise PredictorMismatchError(f"{path} was fitted on proxies {members}; these score {scores.sources()}")
        params.pop("space_features_version", None)
        predictor = cls(space, device_fingerprint, scores, **params)
        predictor._reference = arrays["reference"]
        predictor._base = LearnedCombination(arrays["base_coef"], float(arrays["base_intercept"][0]))
        predictor._subsets = tuple(frozenset(int(v) for v in row if v >= 0) for row in arrays["subsets"])
        predictor._ranks, predictor._accuracies = arrays["ranks"], arrays["accuracies"]
        count = sum(name.startswith("booster_") for name in arrays)
        predictor._boosters = [model_from_array(arrays[f"booster_{i}"]) for i in range(count)]
        return predictor
