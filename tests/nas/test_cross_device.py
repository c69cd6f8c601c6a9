"""nas.cross_device: the architectures on several fronts, and the robust front's laws (nothing in
its input dominates it; everything left out is dominated by it) on random devices."""

from __future__ import annotations

import numpy as np
import pytest

from nas.cross_device import on_several_fronts, robust_front


def test_architectures_on_several_fronts_name_their_devices_most_shared_first() -> None:
    fronts = {"raspi4": ["a", "b", "c"], "pixel3": ["b", "c", "c"], "fpga": ["c", "d"]}
    assert on_several_fronts(fronts) == [
        {"arch": "c", "devices": ["raspi4", "pixel3", "fpga"]},
        {"arch": "b", "devices": ["raspi4", "pixel3"]},
    ]
    assert on_several_fronts({"raspi4": ["a"], "pixel3": ["b"]}) == []


@pytest.mark.parametrize("seed", range(20))
def test_the_robust_front_is_never_dominated_and_dominates_the_rest(seed: int) -> None:
    rng = np.random.default_rng(seed)
    archs = [f"a{i}" for i in range(int(rng.integers(1, 40)))]
    devices = [f"d{j}" for j in range(int(rng.integers(1, 5)))]
    # Rounded values, so ties (equal scores, equal worst costs) happen.
    score = {a: float(rng.integers(0, 8)) for a in archs}
    speed = {d: float(rng.uniform(1, 100)) for d in devices}  # devices of very different speeds
    costs = {d: {a: speed[d] * float(rng.integers(1, 6)) for a in archs} for d in devices}
    scale = {d: float(np.median(list(costs[d].values()))) for d in devices}
    worst = {a: max(costs[d][a] / scale[d] for d in devices) for a in archs}

    def dominates(a: str, b: str) -> bool:
        no_worse = score[a] >= score[b] and worst[a] <= worst[b]
        return no_worse and (score[a] > score[b] or worst[a] < worst[b])

    rows = robust_front(score, costs, scale)
    robust = {r["arch"] for r in rows}
    assert robust
    assert not any(dominates(a, r) for r in robust for a in archs)
    assert all(any(dominates(r, a) for r in robust) for a in set(archs) - robust)
    for row in rows:
        assert row["score"] == score[row["arch"]]
        assert row["worst_normalised_cost"] == pytest.approx(worst[row["arch"]])
        assert row[f"normalised_cost[{row['worst_device']}]"] == pytest.approx(worst[row["arch"]])
    assert [r["worst_normalised_cost"] for r in rows] == sorted(r["worst_normalised_cost"] for r in rows)


def test_an_architecture_without_a_cost_on_every_device_is_left_out() -> None:
    score = {"a": 1.0, "b": 2.0}
    costs = {"raspi4": {"a": 1.0, "b": 1.0}, "pixel3": {"a": 1.0}}
    rows = robust_front(score, costs, {"raspi4": 1.0, "pixel3": 1.0})
    assert [r["arch"] for r in rows] == ["a"]
    assert robust_front({}, costs, {"raspi4": 1.0, "pixel3": 1.0}) == []
