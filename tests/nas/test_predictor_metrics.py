from __future__ import annotations

import numpy as np
import pytest

from nas.predictor_metrics import prediction_metrics


def test_figures_against_hand_computed_values() -> None:
    measured = np.array([10.0, 20.0, 30.0, 40.0])
    predicted = np.array([10.4, 23.0, 29.0, 44.0])  # relative errors 4%, 15%, 3.33%, 10%
    m = prediction_metrics(measured, predicted, lower=predicted - 1, upper=predicted + 1)
    assert m["n_test"] == 4 and m["spearman"] == 1.0 and m["kendall"] == 1.0
    assert m["within_5pct"] == 0.5 and m["within_10pct"] == 0.75
    assert m["mape"] == pytest.approx((0.04 + 0.15 + 1 / 30 + 0.1) / 4)
    assert m["median_ape"] == pytest.approx((0.04 + 0.1) / 2)
    assert m["rmse"] == pytest.approx(np.sqrt((0.16 + 9 + 1 + 16) / 4))
    assert m["coverage"] == 0.5  # 10.0 in [9.4, 11.4] and 30.0 in [28, 30]


def test_reversed_ranking_and_missing_intervals() -> None:
    m = prediction_metrics(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0]))
    assert m["spearman"] == -1.0 and m["coverage"] is None


def test_bad_shapes_and_empty_input_are_refused() -> None:
    with pytest.raises(ValueError, match="equal 1-d shapes"):
        prediction_metrics(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="no held-out rows"):
        prediction_metrics(np.array([]), np.array([]))
