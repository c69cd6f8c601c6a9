"""AZ-NAS's non-linear rank aggregation (nas.proxies.nonlinear_rank) against hand-computed rankings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nas.proxies import nonlinear_rank


def test_sum_of_log_relative_ranks_by_hand() -> None:
    total = nonlinear_rank(np.column_stack([[1.0, 2.0, 3.0], [30.0, 20.0, 10.0]]))
    expected = [math.log(1 / 3) + math.log(1), 2 * math.log(2 / 3), math.log(1) + math.log(1 / 3)]
    assert total == pytest.approx(expected, abs=1e-12)


def test_the_logarithm_prefers_the_all_round_network_where_a_rank_sum_would_tie() -> None:
    # Ranks (1,3), (2,2), (3,1) sum to 4 each; ln penalises the last place: the middle wins.
    total = nonlinear_rank(np.column_stack([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]))
    assert int(np.argmax(total)) == 1


def test_ties_share_their_average_rank() -> None:
    total = nonlinear_rank(np.array([[5.0], [5.0], [1.0], [7.0]]))
    assert total == pytest.approx(np.log(np.array([2.5, 2.5, 1.0, 4.0]) / 4))


def test_unscored_networks_rank_last_and_tied() -> None:
    total = nonlinear_rank(np.array([[np.nan], [0.5], [-np.inf], [-3.0]]))
    assert total == pytest.approx(np.log(np.array([1.5, 4.0, 1.5, 3.0]) / 4))


@pytest.mark.parametrize("scores", [np.zeros((0, 1)), np.zeros((2, 0)), np.array([[1.0], [np.inf]]), np.arange(3.0)])
def test_bad_input_is_refused(scores: np.ndarray) -> None:
    with pytest.raises(ValueError):
        nonlinear_rank(scores)
