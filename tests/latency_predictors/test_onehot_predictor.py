"""The one-hot baseline: the contract, and the grid's onehot_boosting figure from before it was a predictor."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from latency_predictors import OneHotBoostingPredictor
from nas import Architecture, Predictor, SearchSpace
from nas.fitting import ParsedTable, fit_column
from nas.tables import cached_table
from nas.testing import PredictorContract
from search_spaces import FBNetSpace, NB201Space
from tests.latency_predictors.helpers import table_rows


class TestOneHotBoostingContract(PredictorContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return NB201Space()

    @pytest.fixture
    def predictor_factory(self) -> Callable[[SearchSpace, str], Predictor]:
        return OneHotBoostingPredictor

    @pytest.fixture
    def archs_and_targets(self, data_dir: Path) -> tuple[list[Architecture], np.ndarray]:
        # enough rows for trees that split (scikit-learn's leaves hold >= 20 rows)
        return table_rows(data_dir, NB201Space(), np.arange(0, 15625, 60))


def test_the_grid_baseline_is_reproduced(data_dir: Path) -> None:
    # scripts/bench_predictors.py's record of its onehot_boosting baseline (then a class of its
    # own) on fbnet raspi4, 900 rows, seed 0, before the baseline became this predictor
    data = ParsedTable.parse(FBNetSpace(), cached_table(data_dir / "fbnet"))
    result = fit_column(data, "latency_ms", "raspi4", OneHotBoostingPredictor, 900, seed=0)
    assert result.metrics["n_test"] == 4100
    assert result.metrics["spearman"] == 0.957431476639472
    assert result.metrics["within_10pct"] == 0.9426829268292682


def test_fewer_rows_than_a_leaf_needs_predict_the_mean_and_a_bad_setting_is_named(data_dir: Path) -> None:
    archs, y = table_rows(data_dir, NB201Space(), np.arange(0, 15625, 1000))
    fitted = OneHotBoostingPredictor(NB201Space(), "x").fit(archs, y)
    np.testing.assert_allclose(fitted.predict(archs), np.exp(np.mean(np.log(y))))
    with pytest.raises(ValueError, match="max_iter must be >= 1, got 0"):
        OneHotBoostingPredictor(NB201Space(), "x", max_iter=0)
