"""ProxyScores: each architecture scored once, hwnas-score directories read only where their
settings are the members' own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas.proxies import ProxyScores
from nas.scoring import ScoreFileError, score_architectures
from tests.nas.test_scoring import Counting, sample
from tests.nas.toy import Capacity, NanFor, ToySpace


class CountedCapacity(Counting):
    """Capacity by another route: the same meaning (source), calls counted."""

    def source(self) -> str:
        return Capacity("capacity").source()


def test_each_architecture_is_scored_once_and_a_refusal_is_nan() -> None:
    space = ToySpace()
    archs = [space.parse("4-8-1-3"), space.parse("8-8-1-3")]
    counting = Counting("capacity")
    scores = ProxyScores({"capacity": counting, "broken": NanFor("broken", width=4)}, space)
    first = scores(archs)
    again = scores([archs[1], archs[0]])
    assert counting.calls == 2 and scores.evaluations == 4
    assert np.isnan(first[0, 1]) and first[1, 1] == 1.0
    np.testing.assert_array_equal(again, first[::-1])
    assert scores([]).shape == (0, 2)


def test_score_directories_are_read_where_their_settings_match(tmp_path: Path) -> None:
    space, archs = ToySpace(), sample(ToySpace(), 4)
    score_architectures(space, archs, {"capacity": Capacity("capacity")}, tmp_path / "run", progress=False)
    counting = CountedCapacity("capacity")
    scores = ProxyScores({"capacity": counting}, space, [tmp_path / "run"])
    expected = ProxyScores({"capacity": Capacity("capacity")}, space)(archs)
    np.testing.assert_array_equal(scores(archs), expected)
    assert counting.calls == 0
    with pytest.raises(ScoreFileError, match=r"holds \['capacity'\].*none is a member"):
        ProxyScores({"other": Capacity("other")}, space, [tmp_path / "run"])
    with pytest.raises(ScoreFileError, match="not an hwnas-score output directory"):
        ProxyScores({"capacity": counting}, space, [tmp_path])
