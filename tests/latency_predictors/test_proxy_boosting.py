"""The few-label accuracy predictor: the predictor contract, and what it learns from the NB201 table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from latency_predictors import ProxyBoostingPredictor
from nas import Architecture, Candidate, Direction, Objective, Predictor, PredictorMismatchError, SearchSpace
from nas.predictor_file import PredictorFileError
from nas.proxies import ProxyScores
from nas.tables import cached_table
from nas.testing import PredictorContract
from search_spaces import NB201Space


class AnalyticFlops(Objective):
    """A proxy that costs nothing: the space's own FLOP count (NB201 counts it from the genes)."""

    direction = Direction.MAXIMIZE

    def __call__(self, candidate: Candidate) -> float:
        return float(candidate.space.flops(candidate.arch))


def accuracy_rows(data_dir: Path, rows: np.ndarray) -> tuple[list[Architecture], np.ndarray]:
    table, space = cached_table(data_dir / "nb201"), NB201Space()
    return [space.parse(table.archs[i]) for i in rows], table.accuracy("cifar10_test_acc")[rows]


def scores(space: SearchSpace) -> ProxyScores:
    return ProxyScores({"flops": AnalyticFlops("flops")}, space)


class TestProxyBoostingContract(PredictorContract):
    @pytest.fixture
    def space(self) -> SearchSpace:
        return NB201Space()

    @pytest.fixture
    def predictor_factory(self) -> Callable[[SearchSpace, str], Predictor]:
        return lambda space, device: ProxyBoostingPredictor(space, device, scores(space), bags=2, n_estimators=40)

    @pytest.fixture
    def load_kwargs(self, space: SearchSpace) -> dict[str, object]:
        return {"scores": scores(space)}

    @pytest.fixture
    def archs_and_targets(self, data_dir: Path) -> tuple[list[Architecture], np.ndarray]:
        return accuracy_rows(data_dir, np.arange(0, 15625, 125))


def test_fifty_labels_rank_the_table_better_than_flops_alone(data_dir: Path) -> None:
    """FLOPs alone rank NB201's CIFAR-10 accuracies at about 0.75; the predictor adds the cell's
    structure (one-hot genes, live ops, GRAF's paths) learnt from 50 labelled cells."""
    space = NB201Space()
    rows = np.random.default_rng(0).permutation(15625)
    archs, accuracy = accuracy_rows(data_dir, rows[:550])
    predictor = ProxyBoostingPredictor(space, "cifar10_test_acc", scores(space), seed=0).fit(archs[:50], accuracy[:50])
    flops_alone = spearmanr([space.flops(a) for a in archs[50:]], accuracy[50:])[0]
    learned = spearmanr(predictor.predict(archs[50:]), accuracy[50:])[0]
    assert flops_alone < 0.8 and learned > flops_alone + 0.1, (flops_alone, learned)
    # predictions are accuracies ordered exactly as the predicted ranks are
    ranks, values = predictor.predict_rank(archs[50:]), predictor.predict(archs[50:])
    assert (np.diff(values[np.argsort(ranks)]) >= 0).all()
    assert 5 < np.median(values) < 100


def test_load_needs_the_same_proxies_and_bad_labels_are_named(data_dir: Path, tmp_path: Path) -> None:
    space = NB201Space()
    archs, accuracy = accuracy_rows(data_dir, np.arange(0, 15625, 500))
    predictor = ProxyBoostingPredictor(space, "c10", scores(space), bags=1, n_estimators=5).fit(archs, accuracy)
    predictor.save(tmp_path / "p.npz")
    with pytest.raises(PredictorFileError, match=r"predicts from proxies.*'flops'"):
        ProxyBoostingPredictor.load(tmp_path / "p.npz", space=space, device_fingerprint="c10")
    other = ProxyScores({"params": AnalyticFlops("flops")}, space)  # another member name
    with pytest.raises(PredictorMismatchError, match="fitted on proxies"):
        ProxyBoostingPredictor.load(tmp_path / "p.npz", space=space, device_fingerprint="c10", scores=other)
    with pytest.raises(ValueError, match="all 50.0"):
        ProxyBoostingPredictor(space, "c10", scores(space)).fit(archs[:3], np.full(3, 50.0))
    with pytest.raises(ValueError, match="bags=0 is out of range: an integer >= 1"):
        ProxyBoostingPredictor(space, "c10", scores(space), bags=0)
    with pytest.raises(ValueError, match="labelled more than once"):
        ProxyBoostingPredictor(space, "c10", scores(space)).fit([archs[0], archs[0]], np.array([50.0, 60.0]))


def test_a_file_loads_only_with_its_proxies_in_their_order(data_dir: Path, tmp_path: Path) -> None:
    """The ridge and the percentiles' populations are stored by column: swapped members would
    predict other values, so they are refused."""
    space = NB201Space()
    archs, accuracy = accuracy_rows(data_dir, np.arange(0, 15625, 400))
    first = ProxyScores({"flops": AnalyticFlops("flops"), "neg": Negated("neg")}, space)
    predictor = ProxyBoostingPredictor(space, "c10", first, bags=1, n_estimators=5).fit(archs, accuracy)
    predictor.save(tmp_path / "p.npz")
    swapped = ProxyScores({"neg": Negated("neg"), "flops": AnalyticFlops("flops")}, space)
    with pytest.raises(PredictorMismatchError, match="fitted on proxies"):
        ProxyBoostingPredictor.load(tmp_path / "p.npz", space=space, device_fingerprint="c10", scores=swapped)


class Negated(AnalyticFlops):
    def __call__(self, candidate: Candidate) -> float:
        return -super().__call__(candidate)


def test_few_labels_fit_the_ridge_alone_and_a_reference_sets_the_percentiles(data_dir: Path) -> None:
    space = NB201Space()
    archs, accuracy = accuracy_rows(data_dir, np.arange(0, 15625, 97))
    small = ProxyBoostingPredictor(space, "c10", scores(space), boost_from=20).fit(archs[:19], accuracy[:19])
    assert small._boosters == []  # the ridge alone: its rank is the base's
    flops = np.array([space.flops(a) for a in archs[19:]], dtype=float)
    # more FLOPs rank higher on NB201: the ridge's rank rises with them (ties where two fall
    # between the same training values)
    rank = small.predict_rank(archs[19:])
    assert (np.diff(rank[np.argsort(flops, kind="stable")]) >= -1e-12).all() and rank.std() > 0
    with_reference = ProxyBoostingPredictor(space, "c10", scores(space), reference=archs[19:], bags=1).fit(
        archs[:30], accuracy[:30]
    )
    assert with_reference._reference.shape == (len(archs), 1)  # labelled ones counted once
    without = ProxyBoostingPredictor(space, "c10", scores(space), bags=1).fit(archs[:30], accuracy[:30])
    assert not np.array_equal(with_reference.predict_rank(archs[30:]), without.predict_rank(archs[30:]))
    # from boost_from labels on, trees correct the ridge
    assert (
        len(ProxyBoostingPredictor(space, "c10", scores(space), bags=2).fit(archs[:20], accuracy[:20])._boosters) == 2
    )
