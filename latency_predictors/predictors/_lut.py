"""Layer-sum (lookup-table) predictors: a network's cost is the sum of its layers' costs.

Each network is counted by :meth:`nas.LayeredSpace.layers` keys (how often each key occurs), and
``predict = counts @ costs + intercept``. The costs come either from a measured layer profile
(:meth:`LayerSumPredictor.from_layer_table`, e.g. the ``median_ms`` column of a ``layers.csv``)
or are fitted from whole-network measurements (:meth:`LayerSumPredictor.fit`) by non-negative
least squares with a small ridge on the costs:

    minimise  mean((counts @ costs + intercept - y)^2) + ridge * |costs|^2,  costs >= 0, intercept >= 0

Keys present in every training network in equal number are indistinguishable from the intercept;
the ridge resolves that tie by putting their cost into the (unpenalised) intercept.

In a space whose gene values each add layers of their own (:class:`nas.AdditiveSpace`: NB201,
FBNet) the sum is linear in the one-hot genes, so once every key has a cost a prediction is one
product with the one-hot genes (hundreds of thousands of networks a second) instead of a layer list per
network; other spaces (OFA) count keys per network, cached per architecture string.

Keys never seen in training (nor in the layer table) are handled by ``unseen``:

* ``"error"`` (default): :meth:`predict` raises :class:`UnseenLayerError` naming them. Silently
  guessing a cost makes a search prefer exactly the networks nobody measured.
* ``"kind_mean"``: such a key costs the mean of the known keys of its *kind*
  (:meth:`nas.LayeredSpace.layer_kind`, the key without its sizes), e.g. ``k5_e6`` for FBNet's
  ``k5_e6:c24-32:s2:h32``, ``op:nor_conv_3x3`` for NB201's ``op:nor_conv_3x3:c16:h32``. A key whose
  kind has no known key still raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from latency_predictors.predictors._common import check_space, check_targets
from latency_predictors.predictors._features import per_choice
from latency_predictors.predictors._format import StoredPredictor
from nas import AdditiveSpace, Architecture, ArchitectureError, LayeredSpace, SearchSpace

UNSEEN_POLICIES = ("error", "kind_mean")


class UnseenLayerError(KeyError):
    """An architecture holding layer keys the predictor has no cost for."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def check_layered(space: SearchSpace, family: str) -> None:
    """Refuse a space that does not list its networks' layers, which ``family`` sums."""
    if not isinstance(space, LayeredSpace):
        raise TypeError(
            f"{family} sums layer costs and needs a space that lists its layers (a nas.LayeredSpace); "
            f"{space!r} does not: use gbdt, mlp or flops"
        )


class LayerSumPredictor(StoredPredictor):
    """Per-layer-key costs summed over a network's :meth:`~nas.LayeredSpace.layers` (see module)."""

    kind = "layer_sum"
    #: Version of the features (counts of ``LayeredSpace.layers`` keys); keys are the spaces' own.
    FEATURE_VERSION = 1

    def __init__(
        self,
        space: SearchSpace,
        device_fingerprint: str,
        ridge: float = 1e-6,
        unseen: str = "error",
    ) -> None:
        check_layered(space, self.kind)
        if unseen not in UNSEEN_POLICIES:
            raise ValueError(f"unseen={unseen!r}; choose one of {UNSEEN_POLICIES}")
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0, got {ridge!r}")
        self.search_space: LayeredSpace = space
        self.space = space.name
        self.device_fingerprint = device_fingerprint
        self.ridge = float(ridge)
        self.unseen = unseen
        self.keys: list[str] = []
        self.costs: np.ndarray | None = None
        self.intercept = 0.0
        self._column: dict[str, int] = {}
        self._rows: dict[str, dict[str, int]] = {}  # arch string -> key counts
        self._kinds: dict[str, str] = {}  # key -> its kind, parsed once

    def layer_kind(self, key: str) -> str:
        """``key``'s kind in the space (see the module), parsed once per key; a string that is no
        key of the space is a kind of its own (no other key can price it)."""
        kind = self._kinds.get(key)
        if kind is None:
            try:
                kind = self.search_space.layer_kind(key)
            except ArchitectureError:
                kind = key
            self._kinds[key] = kind
        return kind

    # counting

    def key_counts(self, arch: Architecture) -> dict[str, int]:
        """How often each layer key occurs in ``arch``'s network (cached per string)."""
        counts = self._rows.get(arch.string)
        if counts is None:
            counts = {}
            for layer in self.search_space.layers(arch):
                counts[layer.key] = counts.get(layer.key, 0) + 1
            self._rows[arch.string] = counts
        return counts

    def _matrix(self, archs: Sequence[Architecture], column: Mapping[str, int]) -> tuple[np.ndarray, set[str]]:
        matrix = np.zeros((len(archs), len(column)), dtype=np.float64)
        unknown: set[str] = set()
        for row, arch in enumerate(archs):
            for key, count in self.key_counts(arch).items():
                index = column.get(key)
                if index is None:
                    unknown.add(key)
                else:
                    matrix[row, index] = count
        return matrix, unknown

    def _set_costs(self, keys: Sequence[str], costs: np.ndarray, intercept: float) -> None:
        self.keys = list(keys)
        self.costs = np.asarray(costs, dtype=np.float64)
        self.intercept = float(intercept)
        self._column = {key: i for i, key in enumerate(self.keys)}
        self.__dict__.pop("_per_choice_costs", None)  # derived from the costs just set

    @cached_property
    def _per_choice_costs(self) -> tuple[float, np.ndarray] | None:
        """``(constant, cost per one-hot gene column)`` when the space adds up over genes
        (:class:`nas.AdditiveSpace`) and every key of every choice has a cost: a prediction is then
        one product with the one-hot genes, with no per-network layer lists. ``None`` otherwise.
        Computed once per set of costs, whichever the answer (predict is a hot path)."""
        space = self.search_space
        if not isinstance(space, AdditiveSpace):
            return None
        assert self.costs is not None
        costs, column = self.costs, self._column
        try:
            return per_choice(
                space, lambda arch: sum(n * costs[column[key]] for key, n in self.key_counts(arch).items())
            )
        except KeyError:  # some choice has a layer key without a cost: count keys per network
            return None

    # Predictor

    @classmethod
    def from_layer_table(
        cls,
        space: SearchSpace,
        device_fingerprint: str,
        layer_costs: Mapping[str, float],
        *,
        intercept: float = 0.0,
        unseen: str = "error",
    ) -> LayerSumPredictor:
        """A predictor whose costs are a measured layer profile (key -> ms), summed as they are."""
        if not layer_costs:
            raise ValueError("layer_costs is empty")
        costs = np.array([float(v) for v in layer_costs.values()], dtype=np.float64)
        if not np.isfinite(costs).all() or not np.isfinite(intercept):
            bad = [k for k, v in layer_costs.items() if not np.isfinite(float(v))]
            raise ValueError(f"layer costs must be finite; not finite: {bad[:5]}")
        predictor = cls(space, device_fingerprint, unseen=unseen)
        predictor._set_costs(list(layer_costs), costs, intercept)
        return predictor

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> LayerSumPredictor:
        from scipy.optimize import nnls

        check_space(self.search_space, archs)
        y = check_targets(archs, y)
        keys = sorted({key for arch in archs for key in self.key_counts(arch)})
        column = {key: i for i, key in enumerate(keys)}
        counts, _ = self._matrix(archs, column)
        n, k = counts.shape
        # mean squared error + ridge * |costs|^2 as one non-negative least-squares problem; the
        # intercept (last column) is not penalised.
        design = np.vstack(
            [
                np.hstack([counts, np.ones((n, 1))]) / np.sqrt(n),
                np.hstack([np.sqrt(self.ridge) * np.eye(k), np.zeros((k, 1))]),
            ]
        )
        target = np.concatenate([y / np.sqrt(n), np.zeros(k)])
        solution, _ = nnls(design, target, maxiter=max(50 * (k + 1), 1000))
        self._set_costs(keys, solution[:k], solution[k])
        return self

    def uncovered(self, keys: Iterable[str]) -> list[str]:
        """The ``keys`` this predictor cannot price: no cost of their own and, with
        ``unseen="kind_mean"``, no known key of their kind (with ``"error"``, every unknown key)."""
        unknown = sorted(set(keys) - set(self._column))
        if self.unseen == "error":
            return unknown
        kinds = {self.layer_kind(key) for key in self.keys}
        return [key for key in unknown if self.layer_kind(key) not in kinds]

    def _unseen_costs(self, unknown: set[str]) -> dict[str, float]:
        if self.unseen == "error":
            raise UnseenLayerError(
                f"{len(unknown)} layer key(s) have no cost in this {self.space} predictor, e.g. "
                f"{sorted(unknown)[:5]}; fit on networks containing them, measure them into the "
                "layer table, or build the predictor with unseen='kind_mean'"
            )
        assert self.costs is not None
        by_kind: dict[str, list[float]] = {}
        for key, cost in zip(self.keys, self.costs):
            by_kind.setdefault(self.layer_kind(key), []).append(float(cost))
        guessed, orphans = {}, []
        for key in unknown:
            known = by_kind.get(self.layer_kind(key))
            if known:
                guessed[key] = float(np.mean(known))
            else:
                orphans.append(key)
        if orphans:
            raise UnseenLayerError(
                f"layer key(s) {sorted(orphans)[:5]} have no cost and no known key of their kind "
                f"({sorted({self.layer_kind(k) for k in orphans})[:5]}) in this {self.space} predictor; fit on "
                "networks containing them, measure them into the layer table, or use a predictor that "
                "does not sum layers (gbdt, mlp)"
            )
        return guessed

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        if self.costs is None:
            raise RuntimeError("LayerSumPredictor.predict before fit, from_layer_table or load")
        check_space(self.search_space, archs)
        linear = self._per_choice_costs
        if linear is not None:
            constant, choice_costs = linear
            return (
                constant + self.intercept + self.search_space.encoding.encode(archs).astype(np.float64) @ choice_costs
            )
        counts, unknown = self._matrix(archs, self._column)
        values = counts @ self.costs + self.intercept
        if unknown:
            guessed = self._unseen_costs(unknown)
            extra = {key: i for i, key in enumerate(sorted(guessed))}
            extra_counts, _ = self._matrix(archs, extra)
            values += extra_counts @ np.array([guessed[k] for k in extra])
        return values

    def layer_costs(self) -> dict[str, float]:
        """The fitted (or given) cost of every known key."""
        if self.costs is None:
            return {}
        return dict(zip(self.keys, (float(c) for c in self.costs)))

    def save(self, path: Path) -> None:
        if self.costs is None:
            raise RuntimeError("cannot save a LayerSumPredictor without costs (fit or from_layer_table first)")
        self._write(
            path,
            arrays={"keys": np.array(self.keys, dtype=str), "costs": self.costs},
            params={
                "ridge": self.ridge,
                "unseen": self.unseen,
                "intercept": self.intercept,
            },
        )

    @classmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> LayerSumPredictor:
        """Read ``path``; ``space`` is the :class:`SearchSpace` itself (its ``layers`` are needed),
        compared by name with the file's."""
        header, arrays = cls._read(path, space, device_fingerprint)
        params = header["params"]
        predictor = cls(space, device_fingerprint, ridge=params["ridge"], unseen=params["unseen"])
        predictor._set_costs([str(k) for k in arrays["keys"]], arrays["costs"], params["intercept"])
        return predictor
