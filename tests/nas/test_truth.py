"""nas.truth on a five-row table, against values worked out by hand.

The table (true latency ms, true accuracy %):   A 1/50, B 2/70, C 3/60, D 4/90, E 5/80.
The search ran on estimates: a proxy (no truth; the table accuracy stands behind it) and a
predicted latency whose truth is the table's latency column.
"""

from __future__ import annotations

import math

import optuna
import pytest

from nas import Candidate, Constraint, Cost, Direction, Objective, ObjectiveError
from nas.search import Search
from nas.truth import measure_front, regret
from tests.nas.toy import ToySpace

A, B, C, D, E = "4-4-1-1", "8-4-1-1", "16-4-1-1", "32-4-1-1", "4-8-1-1"
LATENCY = {A: 1.0, B: 2.0, C: 3.0, D: 4.0, E: 5.0}
ACCURACY = {A: 50.0, B: 70.0, C: 60.0, D: 90.0, E: 80.0}


class Column(Objective):
    """A table column: knows every value up front."""

    cost = Cost.LOOKUP

    def __init__(self, name: str, values: dict[str, float], direction: Direction) -> None:
        super().__init__(name)
        self.values = values
        self.direction = direction

    def __call__(self, candidate: Candidate) -> float:
        if candidate.arch.string not in self.values:
            raise ObjectiveError(f"{candidate.arch.string} is not in the table")
        return self.values[candidate.arch.string]

    def oracle(self) -> dict[str, float]:
        return dict(self.values)

    def describe(self) -> str:
        return f"table column {self.name}"


class Estimate(Objective):
    """An estimate (a proxy or a predictor); ``truth`` measures what it estimates, if anything."""

    cost = Cost.LOOKUP

    def __init__(self, name: str, direction: Direction, truth: Objective | None = None) -> None:
        super().__init__(name)
        self.direction = direction
        self._truth = truth

    def __call__(self, candidate: Candidate) -> float:
        return 0.0

    def truth(self) -> Objective | None:
        return self._truth


def _search(constraints: tuple[Constraint, ...] = ()) -> Search:
    latency_truth = Column("latency_ms", LATENCY, Direction.MINIMIZE)
    return Search(
        space=ToySpace(),
        objectives=[
            Estimate("synflow", Direction.MAXIMIZE),
            Estimate("latency_ms", Direction.MINIMIZE, truth=latency_truth),
        ],
        sampler=optuna.samplers.RandomSampler(seed=0),
        constraints=constraints,
    )


ACCURACY_TABLE = Column("accuracy", ACCURACY, Direction.MAXIMIZE)


def test_regret_of_a_proxy_search_on_predicted_latency_by_hand() -> None:
    # Returned: B (true 2 ms, 70%) and E (true 5 ms, 80%).
    front = [{"arch": B, "synflow": 1.0, "latency_ms": 1.5}, {"arch": E, "synflow": 2.0, "latency_ms": 2.5}]
    result = regret(_search(), front, score_fallback=ACCURACY_TABLE)
    assert result is not None
    # Percentiles 10/30/50/70/90 of [1, 2, 3, 4, 5] (linear): 1.4, 2.2, 3.0, 3.8, 4.6.
    assert result["budgets"] == pytest.approx([1.4, 2.2, 3.0, 3.8, 4.6])
    # Best in the table within each: 50, 70, 70, 70, 90; best returned within each: none (costs
    # the whole 50), 70, 70, 70, 70 (E's 80 is 5 ms, over 4.6).
    assert result["regret"] == pytest.approx([50.0, 0.0, 0.0, 0.0, 20.0])
    assert result["mean"] == pytest.approx(14.0)
    assert result["score"] == "synflow, measured by table column accuracy"
    assert result["cost"] == "latency_ms, measured by table column latency_ms"
    assert (result["returned"], result["returned_measured_feasible"], result["allowed_architectures"]) == (2, 2, 5)


def test_a_returned_architecture_outside_the_table_finds_nothing() -> None:
    front = [{"arch": "32-32-3-3", "synflow": 1.0, "latency_ms": 0.1}]
    result = regret(_search(), front, score_fallback=ACCURACY_TABLE)
    assert result is not None
    assert result["regret"] == pytest.approx([50.0, 70.0, 70.0, 70.0, 90.0])
    assert result["returned_measured_feasible"] == 0


def test_a_proxy_without_a_table_behind_it_has_no_regret() -> None:
    front = [{"arch": B, "synflow": 1.0, "latency_ms": 1.5}]
    assert regret(_search(), front) is None


def test_regret_under_a_constraint_allows_only_what_truly_meets_it() -> None:
    # Allowed: A, B, C (true latency <= 3); percentiles of [1, 2, 3]: 1.2, 1.6, 2.0, 2.4, 2.8;
    # best within: 50, 50, 70, 70, 70. Returned C (60) and E (breaks the bound when measured).
    search = _search((Constraint("latency_ms", upper=3.0),))
    front = [{"arch": C, "synflow": 1.0, "latency_ms": 1.0}, {"arch": E, "synflow": 2.0, "latency_ms": 2.0}]
    result = regret(search, front, score_fallback=ACCURACY_TABLE)
    assert result is not None
    assert result["budgets"] == pytest.approx([1.2, 1.6, 2.0, 2.4, 2.8])
    assert result["regret"] == pytest.approx([50.0, 50.0, 70.0, 70.0, 70.0])
    assert result["allowed_architectures"] == 3 and result["returned_measured_feasible"] == 1


def test_the_front_gains_its_measured_column_agreement_and_constraint_breaks() -> None:
    search = _search((Constraint("latency_ms", upper=3.0),))
    # Predicted 1.5, 2.5, 2.0 against measured 2, 5, 4: every one predicted within the bound,
    # two of them over it when measured.
    front = [
        {"arch": B, "synflow": 1.0, "latency_ms": 1.5},
        {"arch": E, "synflow": 3.0, "latency_ms": 2.5},
        {"arch": D, "synflow": 2.0, "latency_ms": 2.0},
    ]
    columns, block = measure_front(search, front)
    assert columns == ["latency_ms.measured"]
    assert [row["latency_ms.measured"] for row in front] == [2.0, 5.0, 4.0]
    agreement = block["objectives"]["latency_ms"]
    assert agreement["measured_by"] == "table column latency_ms"
    assert (agreement["n_measured"], agreement["n_returned"]) == (3, 3)
    assert agreement["spearman"] == pytest.approx(1.0)
    assert agreement["mape"] == pytest.approx((0.5 / 2 + 2.5 / 5 + 2.0 / 4) / 3)
    assert "synflow" not in block["objectives"]  # a proxy has nothing measuring it
    assert block["constraints"]["latency_ms<=3"]["broken_when_measured"] == 2
    assert block["constraints"]["latency_ms<=3"]["n_measured"] == 3


def test_an_architecture_the_truth_lacks_is_measured_as_none_and_left_out() -> None:
    front = [{"arch": B, "synflow": 1.0, "latency_ms": 1.5}, {"arch": "32-32-3-3", "synflow": 2.0, "latency_ms": 9.0}]
    _, block = measure_front(_search(), front)
    assert front[1]["latency_ms.measured"] is None
    assert block["objectives"]["latency_ms"]["n_measured"] == 1
    assert block["objectives"]["latency_ms"]["spearman"] is None
    assert math.isclose(block["objectives"]["latency_ms"]["mape"], 0.25)
