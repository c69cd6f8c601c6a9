"""The ensemble + conformal skeleton the MLP and the GCN share: the calibration split, initial
weights, the spread floor and the calibration factor, and the settings a file keeps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from latency_predictors.predictors import GraphPredictor, MLPEnsemblePredictor
from latency_predictors.predictors._common import conformal_factor
from latency_predictors.predictors._ensemble import (
    MIN_CALIBRATION_FIT,
    EnsemblePredictor,
    calibration_split,
    initial_layers,
)
from nas import SearchSpace
from nas.predictor_file import read_header
from nas.testing import rewrite_predictor_header
from search_spaces import NB201Space
from tests.latency_predictors.helpers import DEVICE, table_rows

#: Each family, small enough to fit 125 rows in a fraction of a second.
FAMILIES: dict[str, Callable[..., EnsemblePredictor]] = {
    "mlp": lambda space, **kw: MLPEnsemblePredictor(
        space, DEVICE, **{"members": 3, "hidden": (16,), "epochs": 20, **kw}
    ),
    "gnn": lambda space, **kw: GraphPredictor(
        space, DEVICE, **{"members": 3, "hidden": 16, "layers": 2, "epochs": 5, **kw}
    ),
}


def test_calibration_split_holds_out_a_fraction_from_enough_rows() -> None:
    calibration, train = calibration_split(MIN_CALIBRATION_FIT - 1, seed=0, fraction=0.2)
    assert len(calibration) == 0 and list(train) == list(range(MIN_CALIBRATION_FIT - 1))
    calibration, train = calibration_split(125, seed=0, fraction=0.2)
    assert (len(calibration), len(train)) == (25, 100)
    assert sorted([*calibration, *train]) == list(range(125))
    assert list(calibration) == sorted(calibration) and list(train) == sorted(train)
    np.testing.assert_array_equal(calibration_split(125, seed=0, fraction=0.2)[0], calibration)
    assert not np.array_equal(calibration_split(125, seed=1, fraction=0.2)[0], calibration)
    assert len(calibration_split(MIN_CALIBRATION_FIT, seed=0, fraction=0.01)[0]) == 2  # at least 2


def test_initial_layers_draw_each_member_from_its_own_seed() -> None:
    dims = [7, 5, 1]
    weights, biases = initial_layers(dims, members=3, seed=10)
    assert [tuple(w.shape) for w in weights] == [(3, 7, 5), (3, 5, 1)]
    assert [tuple(b.shape) for b in biases] == [(3, 5), (3, 1)]
    alone_w, alone_b = initial_layers(dims, members=1, seed=12)
    for stacked, alone in zip([*weights, *biases], [*alone_w, *alone_b]):
        assert np.array_equal(stacked[2].numpy(), alone[0].numpy())  # member 2 is seed 12's network
    for layer, fan_in in enumerate(dims[:-1]):  # torch.nn.Linear's bound
        assert float(weights[layer].abs().max()) <= 1 / np.sqrt(fan_in)
        assert float(biases[layer].abs().max()) <= 1 / np.sqrt(fan_in)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("spread_floor", [0.1, 1.0])
def test_spread_floor_and_factor_are_calibrated_on_the_held_out_rows(
    family: str, spread_floor: float, data_dir: Path
) -> None:
    """Both families: ``sigma_floor`` is ``spread_floor`` times the members' median spread on the
    held-out rows, and ``factor`` the conformal quantile of their scaled residuals."""
    space = NB201Space()
    archs, y = table_rows(data_dir, space, np.arange(0, 15625, 125))
    fitted = FAMILIES[family](space, spread_floor=spread_floor).fit(archs, y)
    held, _ = calibration_split(len(archs), fitted.seed, fitted.calibration_fraction)
    outputs = fitted.member_predictions([archs[i] for i in held])
    spread = outputs.std(axis=0)
    assert fitted.calibrated and fitted.spread_floor == spread_floor
    assert fitted.sigma_floor == pytest.approx(max(spread_floor * float(np.median(spread)), 1e-6), rel=1e-5)
    sigma = np.sqrt(spread**2 + fitted.sigma_floor**2)
    scores = np.abs(np.log(y[held]) - outputs.mean(axis=0)) / sigma
    assert fitted.factor == pytest.approx(conformal_factor(scores, fitted.quantile), rel=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_settings_round_trip_and_older_files_get_the_old_floor(family: str, data_dir: Path, tmp_path: Path) -> None:
    space: SearchSpace = NB201Space()
    archs, y = table_rows(data_dir, space, np.arange(0, 15625, 625))
    fitted = FAMILIES[family](space, spread_floor=0.5, seed=3, quantile=0.8).fit(archs, y)
    path = tmp_path / "p.npz"
    fitted.save(path)
    loaded = type(fitted).load(path, space=space, device_fingerprint=DEVICE)
    for name in (*EnsemblePredictor.SETTINGS, *type(fitted).FAMILY_SETTINGS):
        assert getattr(loaded, name) == getattr(fitted, name), name
    assert (loaded.factor, loaded.sigma_floor, loaded.n_fit) == (fitted.factor, fitted.sigma_floor, fitted.n_fit)
    # files written before spread_floor was a setting of both families used 0.1
    params = read_header(path)["params"]
    del params["spread_floor"]
    rewrite_predictor_header(path, params=params)
    older = type(fitted).load(path, space=space, device_fingerprint=DEVICE)
    assert older.spread_floor == 0.1
    np.testing.assert_array_equal(older.predict_interval(archs)[1], fitted.predict_interval(archs)[1])


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_settings_are_refused_naming_the_value(family: str) -> None:
    for setting, value in [("members", 0), ("epochs", -1), ("quantile", 1.0), ("spread_floor", -0.1)]:
        with pytest.raises(ValueError, match=f"{setting} must be .*{value}"):
            FAMILIES[family](NB201Space(), **{setting: value})
