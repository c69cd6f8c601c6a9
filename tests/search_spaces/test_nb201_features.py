"""NB201's derived predictor features against independent facts: NB201's published count of
non-isomorphic cells, the tables' per-class copies, and the space's own disconnection check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas import isomorphism_classes
from nas.fit_data import measured_rows
from nas.tables import BenchmarkTable
from search_spaces import NB201Space
from search_spaces.nb201 import is_disconnected
from search_spaces.nb201._features import FEATURE_NAMES

SPACE = NB201Space()
ALL = list(SPACE.enumerate())


def column(name: str) -> int:
    return FEATURE_NAMES.index(name)


def derived(archs: list) -> np.ndarray:
    return SPACE.derived_features(SPACE.encoding.indices(archs))


def test_nb201_has_6466_isomorphism_classes() -> None:
    """NAS-Bench-201 reports 6,466 unique cells among its 15,625."""
    assert len(np.unique(isomorphism_classes(SPACE, ALL))) == 6466


@pytest.mark.parametrize("device", ["pi5_litert", "pi5_onnx", "pixel6a_litert"])
def test_tables_copied_per_class_are_constant_within_each_class(data_dir: Path, device: str) -> None:
    """HW-NAS-Bench-360 measured one cell per class and copied it: our classes must be theirs."""
    table = BenchmarkTable.load(data_dir / "nb201")
    classes = isomorphism_classes(SPACE, [SPACE.parse(s) for s in table.archs])
    values = table.column("latency_ms", device)
    order = np.argsort(classes, kind="stable")
    same_class = classes[order][1:] == classes[order][:-1]
    assert same_class.sum() > 9000
    np.testing.assert_array_equal(values[order][1:][same_class], values[order][:-1][same_class])


@pytest.mark.parametrize(
    ("metric", "device", "copied"),
    [("latency_ms", "pi5_onnx", True), ("energy_mj", "pi5_onnx", True), ("latency_ms", "raspi4", False)],
)
def test_copied_columns_map_to_one_measured_row_per_class(
    data_dir: Path, metric: str, device: str, copied: bool
) -> None:
    table = BenchmarkTable.load(data_dir / "nb201")
    classes = isomorphism_classes(SPACE, [SPACE.parse(s) for s in table.archs])
    values = table.column(metric, device)
    rows = measured_rows(values, classes)
    if not copied:
        np.testing.assert_array_equal(rows, np.arange(len(values)))
        return
    assert len(np.unique(rows)) == 6466 and np.all(rows <= np.arange(len(values)))
    np.testing.assert_array_equal(values[rows], values)
    np.testing.assert_array_equal(classes[rows], classes)


def test_output_node_is_alive_exactly_when_the_cell_is_connected() -> None:
    alive = derived(ALL)[:, column("alive_node_3")]
    expected = np.array([not is_disconnected(a) for a in ALL])
    np.testing.assert_array_equal(alive.astype(bool), expected)
    assert (~expected).sum() == 341


def test_live_counts_of_extremes_and_a_dead_branch() -> None:
    largest, smallest = derived([SPACE.largest(), SPACE.smallest()])
    assert largest[column("live_count~nor_conv_3x3")] == 6 and largest[column("additions")] == 3
    assert smallest[column("live_count~nor_conv_3x3")] == 0 and smallest[column("class_size")] > 1
    # node 1 is fed by a conv but feeds nothing that reaches the output: both its edges are dead
    dead = SPACE.parse("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|none~0|none~1|avg_pool_3x3~2|")
    row = derived([dead])[0]
    assert row[column("live_edge_1_0")] == 0 and row[column("live_count~nor_conv_3x3")] == 0
    assert row[column("live_count~nor_conv_1x1")] == 1 and row[column("live_count~avg_pool_3x3")] == 1


def test_batched_features_equal_one_at_a_time() -> None:
    archs = [SPACE.sample(np.random.default_rng(k)) for k in range(40)]
    np.testing.assert_array_equal(derived(archs), np.vstack([derived([a]) for a in archs]))
    assert derived([]).shape == (0, len(FEATURE_NAMES))
