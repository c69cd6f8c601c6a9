"""Trees that correct a base predictor's log predictions, as many rounds as held-out rows support.

:class:`BoostedLayerSumPredictor`'s step, for any base whose out-of-fold log predictions are at
hand: LightGBM trees (:class:`._trees.SpaceTrees`: the space's features, class memory and
settings) boosted from the base (``init_score``), their rounds chosen among :data:`ROUNDS` by
out-of-fold squared log error (ties: the fewest; 0 keeps the base alone). The base must be out
of fold too, so the trees learn from predictions as wrong as the ones they will meet on new
networks. With fewer than :data:`MIN_BOOSTED_FIT` rows there are no folds: no correction.

:class:`FewShotPredictor` uses it on its blend (``correct=True``): with a few measurements it
keeps the blend (0 rounds out of fold), with hundreds it learns what no source and no layer sum
expresses, as hwnas-fit's default (boosted_layer_sum) does fitted alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latency_predictors.predictors._trees import ClassMemory, SpaceTrees, model_array, model_from_array
from nas import Architecture

#: Correction rounds compared out of fold (cumulative: one booster per fold predicts them all).
ROUNDS = (0, 10, 25, 50, 100, 150, 200, 300)
#: Fewest rows for folds; below it the base is used alone.
MIN_BOOSTED_FIT = 20
#: The key of the trees in a predictor file's arrays.
MODEL_KEY = "correction_model"

#: One fold of :meth:`._trees.SpaceTrees.fold_designs`: held and kept masks, their model inputs.
FoldDesign = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def out_of_fold_rounds(trees: SpaceTrees, folds: Sequence[FoldDesign], t: np.ndarray, base: np.ndarray) -> np.ndarray:
    """``(len(ROUNDS), rows)``: each row's log prediction by ``base`` (out of fold) plus the trees
    boosted from it on the other folds, after each count of :data:`ROUNDS`."""
    out_of_fold = np.empty((len(ROUNDS), len(t)))
    for held, kept, kept_x, held_x in folds:
        booster = trees.train(kept_x, t[kept], init=base[kept], rounds=max(ROUNDS))
        for k, rounds in enumerate(ROUNDS):
            out_of_fold[k, held] = base[held] + (trees.predict(booster, held_x, rounds) if rounds else 0.0)
    return out_of_fold


@dataclass(frozen=True, eq=False)
class TreeCorrection:
    """``rounds`` trees (none: ``booster`` None) added to a base's log predictions."""

    rounds: int = 0
    booster: Any = None
    memory: ClassMemory | None = None

    @classmethod
    def fit(
        cls, trees: SpaceTrees, archs: Sequence[Architecture], t: np.ndarray, base: np.ndarray
    ) -> tuple[TreeCorrection, np.ndarray]:
        """The correction of ``base`` (each row's out-of-fold log prediction) towards ``t`` (log
        targets), and every row's out-of-fold log prediction with it (``base`` when 0 rounds)."""
        if len(t) < MIN_BOOSTED_FIT:
            return cls(), base
        x, classes = trees.features_and_classes(archs)
        out_of_fold = out_of_fold_rounds(trees, list(trees.fold_designs(x, classes, t)), t, base)
        best = int(np.argmin(((out_of_fold - t) ** 2).sum(axis=1)))  # first minimum: fewest rounds
        if ROUNDS[best] == 0:
            return cls(), base
        x_all, memory = trees.design(x, classes, t)
        booster = trees.train(x_all, t, init=base, rounds=ROUNDS[best])
        return cls(ROUNDS[best], booster, memory), out_of_fold[best]

    def log_correction(self, trees: SpaceTrees, archs: Sequence[Architecture]) -> np.ndarray:
        """What to add to the base's log predictions of ``archs``."""
        if self.booster is None:
            return np.zeros(len(archs))
        x, _ = trees.features_and_classes(archs, self.memory)
        return trees.predict(self.booster, x)

    def arrays(self) -> dict[str, np.ndarray]:
        """Its arrays for a predictor file (none without trees)."""
        if self.booster is None:
            return {}
        return {MODEL_KEY: model_array(self.booster), **(self.memory.arrays() if self.memory is not None else {})}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], rounds: int) -> TreeCorrection:
        if MODEL_KEY not in arrays:
            return cls()
        memory = ClassMemory.from_arrays(dict(arrays)) if "memory_classes" in arrays else None
        return cls(rounds, model_from_array(arrays[MODEL_KEY]), memory)
