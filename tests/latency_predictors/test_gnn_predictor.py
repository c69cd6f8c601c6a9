"""The graph (GCN) predictor (its contract runs in test_predictors.py from configs/predictor/gnn.yaml):
determinism, round trip, accuracy on nb201 raspi4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from latency_predictors.predictors import GraphPredictor
from nas import SearchSpace
from search_spaces import NB201Space, OFASpace
from tests.latency_predictors.helpers import DEVICE, table_rows


def small(space: SearchSpace, device_fingerprint: str, **kwargs: object) -> GraphPredictor:
    settings: dict[str, object] = {"members": 2, "hidden": 16, "layers": 2, "epochs": 5, **kwargs}
    return GraphPredictor(space, device_fingerprint, **settings)  # type: ignore[arg-type]


def test_fixed_seed_is_deterministic_and_global_state_untouched(data_dir: Path) -> None:
    import torch

    archs, y = table_rows(data_dir, NB201Space(), np.arange(0, 15625, 125))
    space = NB201Space()
    numpy_state, torch_state = np.random.get_state(), torch.get_rng_state()
    first = small(space, DEVICE, seed=3).fit(archs, y)
    second = small(space, DEVICE, seed=3).fit(archs, y)
    other = small(space, DEVICE, seed=4).fit(archs, y)
    np.testing.assert_array_equal(first.predict(archs), second.predict(archs))
    assert first.factor == second.factor
    assert not np.array_equal(first.predict(archs), other.predict(archs))
    assert torch.equal(torch.get_rng_state(), torch_state)
    saved = np.random.get_state()
    assert saved[0] == numpy_state[0] and np.array_equal(saved[1], numpy_state[1])


def test_round_trip_with_intervals_on_variable_size_graphs(tmp_path: Path) -> None:
    """OFA graphs differ in node count (padding) and carry attributes (standardisation)."""
    space = OFASpace()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(40)]
    y = np.array([space.graph(a).num_nodes * a["r"] / 100.0 for a in archs])
    fitted = small(space, DEVICE).fit(archs, y)
    assert fitted.calibrated and fitted.n_calibration == 8
    lower, upper = fitted.predict_interval(archs)
    predicted = fitted.predict(archs)
    assert np.all(lower < predicted) and np.all(predicted < upper)
    # float32 inference: one graph and a batch take different BLAS paths (the contract's tolerance)
    np.testing.assert_allclose(fitted.predict(archs[3:4]), predicted[3:4], rtol=1e-5)
    fitted.save(tmp_path / "p.npz")
    loaded = GraphPredictor.load(tmp_path / "p.npz", space=space, device_fingerprint=DEVICE)
    np.testing.assert_array_equal(loaded.predict(archs), predicted)
    for a, b in zip(loaded.predict_interval(archs), (lower, upper)):
        np.testing.assert_array_equal(a, b)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as archive:
        assert archive["layer0_weight"].dtype == np.float32
        assert tuple(archive["vocabulary"]) == space.graph_labels()
    with pytest.raises(RuntimeError, match="before fit"):
        small(space, DEVICE).predict(archs[:1])


def test_accuracy_on_nb201_raspi4(data_dir: Path) -> None:
    """400 random rows to fit, 1,000 others to test, a reduced budget (2 members, 40 epochs) to
    stay fast; a constant predictor has no rank correlation and a random one about 0. With the
    default settings and 900 rows the Spearman is 0.93 (see the module docstring)."""
    perm = np.random.default_rng(0).permutation(15625)
    archs, y = table_rows(data_dir, NB201Space(), perm[:1400])
    predictor = GraphPredictor(NB201Space(), DEVICE, members=2, epochs=40).fit(archs[:400], y[:400])
    predicted = predictor.predict(archs[400:])
    assert spearmanr(predicted, y[400:])[0] > 0.8
