"""FewShotPredictor: adapts other devices' predictors to a new device from 10 measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from latency_predictors import FewShotPredictor, GradientBoostingPredictor
from latency_predictors.predictors._features import layer_sums
from nas import Architecture, Predictor, SearchSpace
from nas.predictor_file import read_header
from nas.testing import PredictorContract, rewrite_predictor_header
from search_spaces import NB201Space
from tests.latency_predictors.helpers import table_rows

SOURCES = ("gold_6226", "titan_rtx_1", "pixel3", "samsung_a50")
TARGET = "raspi4"
N_ROWS = 15625


def split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint (pool, target training, test) rows: sources see only the pool."""
    order = np.random.default_rng(seed).permutation(N_ROWS)
    return np.sort(order[:300]), np.sort(order[300:310]), np.sort(order[310:2310])


def target_rows(
    data_dir: Path, device: str = TARGET, n_test: int | None = None
) -> tuple[list[Architecture], np.ndarray, list[Architecture], np.ndarray]:
    """The target's 10 training rows and its test rows (the first ``n_test`` of them) of :func:`split`."""
    _, train, test = split()
    space = NB201Space()
    return (*table_rows(data_dir, space, train, device), *table_rows(data_dir, space, test[:n_test], device))


@pytest.fixture(scope="module")
def sources(data_dir: Path) -> dict[str, Predictor]:
    pool, _, _ = split()
    fitted = {}
    for device in SOURCES:
        archs, y = table_rows(data_dir, NB201Space(), pool, device)
        fitted[device] = GradientBoostingPredictor(NB201Space(), f"src-{device}", n_estimators=100).fit(archs, y)
    return fitted


def test_pool_training_and_test_rows_are_disjoint() -> None:
    pool, train, test = split()
    assert not (set(pool) & set(train) or set(pool) & set(test) or set(train) & set(test))


def test_ten_target_points_beat_a_gbdt_on_them_alone(data_dir: Path, sources: dict[str, Predictor]) -> None:
    space = NB201Space()
    archs, y, test_archs, test_y = target_rows(data_dir)
    few = FewShotPredictor(space, "target", sources).fit(archs, y)
    alone = GradientBoostingPredictor(space, "target", n_estimators=100).fit(archs, y)
    few_rho = spearmanr(few.predict(test_archs), test_y).statistic
    alone_rho = spearmanr(alone.predict(test_archs), test_y).statistic
    assert few_rho > 0.85 and few_rho > alone_rho + 0.3, (few_rho, alone_rho)
    assert np.all(few.weights >= 0) and few.n_fit == 10 and few.calibrated


def test_save_load_round_trip_embeds_the_sources(data_dir: Path, sources: dict[str, Predictor], tmp_path: Path) -> None:
    space = NB201Space()
    archs, y, test_archs, _ = target_rows(data_dir, n_test=200)
    few = FewShotPredictor(space, "target", sources).fit(archs, y)
    few.save(tmp_path / "few.npz")
    loaded = FewShotPredictor.load(tmp_path / "few.npz", space=space, device_fingerprint="target")
    assert list(loaded.sources) == list(SOURCES)
    assert [s.device_fingerprint for s in loaded.sources.values()] == [f"src-{d}" for d in SOURCES]
    np.testing.assert_array_equal(loaded.predict(test_archs), few.predict(test_archs))
    np.testing.assert_array_equal(loaded.predict_interval(test_archs)[1], few.predict_interval(test_archs)[1])


@pytest.mark.parametrize("blend", ["linear", "log"])
def test_both_blends_adapt_and_analytic_costs_are_sources(
    data_dir: Path, sources: dict[str, Predictor], blend: str
) -> None:
    space = NB201Space()
    archs, y, test_archs, test_y = target_rows(data_dir)
    few = FewShotPredictor(space, "target", sources, blend=blend, analytic=blend == "linear").fit(archs, y)
    assert spearmanr(few.predict(test_archs), test_y).statistic > 0.85
    features = few.source_features(test_archs[:3])
    every = ("flops", "params", "memory_traffic", "activation_traffic")
    assert few.analytic_costs == (every if blend == "linear" else ())
    assert features.shape == (3, len(SOURCES) + len(few.analytic_costs))
    if blend == "linear":  # the space's own FLOPs and layer sums, one architecture at a time
        np.testing.assert_array_equal(features[:, -4], [space.flops(a) for a in test_archs[:3]])
        np.testing.assert_allclose(features[:, -3:], [layer_sums(space, a) for a in test_archs[:3]], rtol=1e-12)


def test_a_file_that_names_no_blend_reads_as_the_log_blend(
    data_dir: Path, sources: dict[str, Predictor], tmp_path: Path
) -> None:
    """Files written before the linear blend existed hold a log blend, without FLOPs, and say nothing."""
    space = NB201Space()
    archs, y, test_archs, _ = target_rows(data_dir, n_test=100)
    few = FewShotPredictor(space, "target", sources, blend="log", analytic=False).fit(archs, y)
    few.save(tmp_path / "few.npz")
    header = read_header(tmp_path / "few.npz")
    params = {k: v for k, v in header["params"].items() if k not in ("blend", "analytic_costs")}
    rewrite_predictor_header(tmp_path / "few.npz", params=params)
    loaded = FewShotPredictor.load(tmp_path / "few.npz", space=space, device_fingerprint="target")
    assert loaded.blend == "log" and loaded.analytic_costs == ()
    np.testing.assert_array_equal(loaded.predict(test_archs), few.predict(test_archs))


def test_a_file_fitted_before_activation_traffic_reads_with_its_own_costs(
    data_dir: Path, sources: dict[str, Predictor], tmp_path: Path
) -> None:
    """Files written before activation traffic was a column name three costs: they load with
    those three and predict as saved; a file naming a cost the space does not give is refused."""
    space = NB201Space()
    archs, y, test_archs, _ = target_rows(data_dir, n_test=100)
    few = FewShotPredictor(space, "target", sources)
    few.analytic_costs = ("flops", "params", "memory_traffic")  # as the predictor was before
    few.fit(archs, y).save(tmp_path / "few.npz")
    loaded = FewShotPredictor.load(tmp_path / "few.npz", space=space, device_fingerprint="target")
    assert loaded.analytic_costs == ("flops", "params", "memory_traffic")
    np.testing.assert_array_equal(loaded.predict(test_archs), few.predict(test_archs))
    params = read_header(tmp_path / "few.npz")["params"]
    rewrite_predictor_header(tmp_path / "few.npz", params={**params, "analytic_costs": ["flops", "power"]})
    with pytest.raises(ValueError, match="refit the predictor"):
        FewShotPredictor.load(tmp_path / "few.npz", space=space, device_fingerprint="target")


def test_own_layer_sum_is_stacked_where_it_predicts_and_saved(
    data_dir: Path, sources: dict[str, Predictor], tmp_path: Path
) -> None:
    """eyeriss, a simulator no source resembles, is a sum of per-op costs: the target's own layer
    sum on its 10 points predicts it, and the stacked blend gives that column its weight."""
    space = NB201Space()
    archs, y, test_archs, test_y = target_rows(data_dir, "eyeriss")
    plain = FewShotPredictor(space, "target", sources).fit(archs, y)
    stacked = FewShotPredictor(space, "target", sources, own_layer_sum=True).fit(archs, y)
    assert stacked.own is not None and stacked.weights[-1] > 0
    rho_plain = spearmanr(plain.predict(test_archs), test_y).statistic
    rho_stacked = spearmanr(stacked.predict(test_archs), test_y).statistic
    assert rho_stacked > 0.98 and rho_stacked > rho_plain, (rho_stacked, rho_plain)
    stacked.save(tmp_path / "few.npz")
    loaded = FewShotPredictor.load(tmp_path / "few.npz", space=space, device_fingerprint="target")
    np.testing.assert_array_equal(loaded.predict(test_archs[:100]), stacked.predict(test_archs[:100]))
    with pytest.raises(ValueError, match="archs"):
        stacked.fit_features(stacked.source_features(archs), y)


def test_bad_inputs_are_named(data_dir: Path, sources: dict[str, Predictor]) -> None:
    space = NB201Space()
    with pytest.raises(ValueError, match="src-pixel3"):
        FewShotPredictor(space, "src-pixel3", sources)
    with pytest.raises(ValueError, match="'cubic'"):
        FewShotPredictor(space, "target", sources, blend="cubic")
    archs, y = table_rows(data_dir, space, np.arange(1), TARGET)
    with pytest.raises(ValueError, match="source_devices"):
        FewShotPredictor(space, "target", {}).fit(archs * 2, np.r_[y, y])
    with pytest.raises(ValueError, match="at least 2"):
        FewShotPredictor(space, "target", sources).fit(archs, y)
    with pytest.raises(RuntimeError, match="before fit"):
        FewShotPredictor(space, "target", sources).predict(archs)


class TestFewShotContract(PredictorContract):
    """Without the target's own layer sum (as on OFA); with it, nb201's few_shot config runs
    through the contract in test_predictors.py."""

    @pytest.fixture
    def space(self) -> SearchSpace:
        return NB201Space()

    @pytest.fixture
    def predictor_factory(self, sources: dict[str, Predictor]):  # type: ignore[no-untyped-def]
        return lambda space, fingerprint: FewShotPredictor(space, fingerprint, sources)

    @pytest.fixture
    def archs_and_targets(self, data_dir: Path) -> tuple[list[Architecture], np.ndarray]:
        return table_rows(data_dir, NB201Space(), split()[1], TARGET)


@pytest.mark.parametrize("blend", ["linear", "log"])
def test_a_device_that_is_a_known_one_scaled_leans_on_that_one(
    data_dir: Path, sources: dict[str, Predictor], blend: str
) -> None:
    """A target whose 10 measurements are gold_6226's source predictions times 1.7 is fitted
    exactly by that source alone: the blend's shares say so, and sum to 1 over known inputs.
    (Scaling gold_6226's measured column instead, titan_rtx_1's source takes 62% of the linear
    blend at k = 10: the shares tell which source predicts the points, not which device is kin.)"""
    space = NB201Space()
    _, train, _ = split()
    archs, _ = table_rows(data_dir, space, train, "gold_6226")
    y = 1.7 * np.asarray(sources["gold_6226"].predict(archs))
    few = FewShotPredictor(space, "target", sources, blend=blend, analytic=False).fit(archs, y)
    shares = few.leaned_on()
    assert next(iter(shares)) == "gold_6226" and shares["gold_6226"] > 0.95, shares
    assert set(shares) <= set(SOURCES) and abs(sum(shares.values()) - 1) < 1e-9
    assert FewShotPredictor(space, "target", sources).leaned_on() == {}


def test_trees_correct_the_blend_only_where_held_out_rows_say_they_help(
    data_dir: Path, sources: dict[str, Predictor], tmp_path: Path
) -> None:
    space = NB201Space()
    archs, y, test_archs, test_y = target_rows(data_dir, n_test=1000)
    plain, corrected = (FewShotPredictor(space, "target", sources, correct=c).fit(archs, y) for c in (False, True))
    assert corrected.correction.rounds == 0  # 10 points: no folds, the blend alone
    np.testing.assert_array_equal(corrected.predict(test_archs), plain.predict(test_archs))
    # 900 more raspi4 rows (outside the pool and the test rows): raspi4 is the column where
    # boosted_layer_sum keeps 50-300 rounds over its layer sum
    many = np.random.default_rng(0).permutation(N_ROWS)[2310:3210]
    archs, y = table_rows(data_dir, space, np.sort(many), TARGET)
    plain, corrected = (FewShotPredictor(space, "target", sources, correct=c).fit(archs, y) for c in (False, True))
    rho = {f.correct: spearmanr(f.predict(test_archs), test_y).statistic for f in (plain, corrected)}
    assert corrected.correction.rounds > 0 and rho[True] > rho[False] + 0.005, (corrected.correction.rounds, rho)
    corrected.save(tmp_path / "few.npz")
    loaded = FewShotPredictor.load(tmp_path / "few.npz", space=space, device_fingerprint="target")
    assert loaded.correction.rounds == corrected.correction.rounds
    np.testing.assert_array_equal(loaded.predict(test_archs), corrected.predict(test_archs))
    np.testing.assert_array_equal(loaded.predict_interval(test_archs)[0], corrected.predict_interval(test_archs)[0])
    with pytest.raises(ValueError, match="corrects by trees: pass the architectures"):
        corrected.predict_features(corrected.source_features(test_archs[:3]))
