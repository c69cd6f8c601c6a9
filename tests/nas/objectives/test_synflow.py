"""Synflow: its defining identities on small nets, and agreement with NASLib's published scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from nas import Candidate, Cost, Direction
from nas.objectives import Synflow
from nas.objectives._synflow import synflow_score
from search_spaces import NB201Space
from search_spaces.nb201 import is_disconnected, naslib_architecture


def uniform(op: str) -> str:
    return f"|{op}~0|+|{op}~0|{op}~1|+|{op}~0|{op}~1|{op}~2|"


@pytest.fixture(scope="module")
def space() -> NB201Space:
    return NB201Space()


def naslib_cells(data_dir: Path, space: NB201Space, count: int) -> list[tuple[Candidate, float]]:
    """``count`` cells of NASLib's CIFAR-10 table (a fixed random subset) with their ln(synflow)."""
    table = json.loads((data_dir / "nb201" / "zero_cost_naslib_subset.json").read_text())["cifar10"]
    rows = [(key, row["synflow"]["score"]) for key, row in table.items() if "synflow" in row]
    picked = np.random.default_rng(0).choice(len(rows), size=count, replace=False)
    cells = []
    for i in picked:
        key, score = rows[i]
        arch = naslib_architecture(space, key)
        cells.append((Candidate(arch, space), score))
    return cells


def test_direction_cost_and_name() -> None:
    assert Synflow.direction is Direction.MAXIMIZE and Synflow.cost is Cost.PROXY
    assert Synflow().name == "synflow" and Synflow(name="sf").name == "sf"


def test_linear_chain_conserves_flow_per_layer() -> None:
    # Synflow's conservation law: in a bias-free positive chain each layer's flow equals R = sum(f(1)).
    generator = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 4, bias=False), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 3, bias=False))
    with torch.no_grad():
        for layer in (net[0], net[3]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator))
        net[2].running_mean.fill_(7.0)  # BN must be bypassed, not applied with these statistics
    w1, w2 = net[0].weight.detach().abs().double(), net[3].weight.detach().abs().double()
    flow = float((w2 @ w1 @ torch.ones(5, dtype=torch.float64)).sum())
    assert synflow_score(net, (5,)) == pytest.approx(2 * flow, rel=1e-12)


def test_disconnected_cells_score_zero(space: NB201Space) -> None:
    arch = space.parse("|none~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|none~2|")
    assert is_disconnected(arch)
    assert Synflow()(Candidate(arch, space)) == 0.0


def test_is_deterministic_and_spares_the_shared_model(space: NB201Space) -> None:
    candidate = Candidate(space.parse(uniform("nor_conv_1x1")), space)
    before = {k: v.clone() for k, v in candidate.model.state_dict().items()}
    first, again = Synflow()(candidate), Synflow().evaluate(candidate)
    assert first == again and math.isfinite(first) and first > 0
    assert all(torch.equal(before[k], v) for k, v in candidate.model.state_dict().items())


def test_more_convolutions_flow_more(space: NB201Space) -> None:
    skips, convs = (Candidate(space.parse(uniform(op)), space) for op in ("skip_connect", "nor_conv_3x3"))
    scores = [Synflow()(skips), Synflow()(convs)]
    assert 0 < scores[0] < scores[1]


def test_ranks_like_naslib_published_scores(space: NB201Space, data_dir: Path) -> None:
    cells = naslib_cells(data_dir, space, count=12)
    ours = [Synflow()(c) for c, _ in cells]  # ln(score), NASLib's published form
    theirs = [score for _, score in cells]
    assert spearmanr(ours, theirs).statistic > 0.95
    # Same quantity, different random weights: ln scores agree to well under one unit
    # (over all 724 cells: median difference 0.05, largest 0.39).
    assert float(np.max(np.abs(np.subtract(ours, theirs)))) < 1.0


@pytest.mark.slow
def test_ranks_like_naslib_published_scores_on_200_cells(space: NB201Space, data_dir: Path) -> None:
    cells = naslib_cells(data_dir, space, count=200)
    ours = [Synflow()(c) for c, _ in cells]  # ln(score), and 0 for a zero score, as NASLib
    assert spearmanr(ours, [score for _, score in cells]).statistic > 0.98


def test_log_is_the_natural_log_of_the_raw_score(space: NB201Space) -> None:
    candidate = Candidate(space.parse(uniform("nor_conv_3x3")), space)
    raw = Synflow(log=False)(candidate)
    assert raw > 1e15 and Synflow()(candidate) == pytest.approx(math.log(raw), rel=1e-12)
