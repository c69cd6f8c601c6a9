"""The rows a fit uses: usable rows, measured-on rows, few-shot pools and the train/test draw."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from nas.fit_data import (
    FewShotPool,
    FitSplit,
    SourceRows,
    choose_n_train,
    measured_rows,
    source_pool,
    usable_mask,
)
from nas.tables import cached_table

#: hwnas-fit's nb201 raspi4 draw before the row rules moved here (n_train=20, seed=0), recorded
#: from nas/cli/fit.py at the commit before: its training rows in drawn order.
NB201_RASPI4_SEED0_TRAIN20 = [11759, 10533, 8177, 7648, 14936, 3475, 8942, 8864, 3742, 10983, 8633, 5604, 1957, 7508]
NB201_RASPI4_SEED0_TRAIN20 += [5740, 7322, 12355, 9291, 10474, 2209]


@pytest.fixture(scope="module")
def nb201_classes(data_dir: Path) -> np.ndarray:
    from nas import isomorphism_classes
    from search_spaces import NB201Space

    space = NB201Space()
    return isomorphism_classes(space, [space.parse(s) for s in cached_table(data_dir / "nb201").archs])


def test_usable_rows_are_finite_and_positive() -> None:
    values = np.array([1.0, math.nan, 0.0, -2.0, math.inf, 3.5])
    assert usable_mask(values).tolist() == [True, False, False, False, False, True]


@pytest.mark.parametrize(
    ("values", "classes", "expected"),
    [
        # copied per class: every row maps to its class's first row with a value
        ([1.0, 2.0, 1.0, 2.0, 3.0], [0, 1, 0, 1, 2], [0, 1, 0, 1, 4]),
        ([math.nan, 2.0, 2.0, 5.0], [0, 0, 0, 1], [0, 1, 1, 3]),
        # a class with two values: measured row by row
        ([1.0, 2.0, 1.5, 2.0], [0, 1, 0, 1], [0, 1, 2, 3]),
        # one row per class, or no classes: nothing was copied
        ([1.0, 2.0, 3.0], [0, 1, 2], [0, 1, 2]),
        ([1.0, 1.0, 1.0], None, [0, 1, 2]),
    ],
)
def test_measured_rows_follow_per_class_copies(values, classes, expected) -> None:
    rows = measured_rows(np.array(values), None if classes is None else np.array(classes))
    np.testing.assert_array_equal(rows, expected)


def test_the_draw_is_hwnas_fits_draw_from_before_the_move(data_dir: Path, nb201_classes: np.ndarray) -> None:
    values = cached_table(data_dir / "nb201").column("latency_ms", "raspi4")
    split = FitSplit.draw(values, nb201_classes, 20, seed=0)
    assert split.train.tolist() == NB201_RASPI4_SEED0_TRAIN20
    # every other row is a test row, each once; no test row was trained on
    assert len(split.test) == 15625 - 20 and not set(split.test) & set(split.train)
    assert sorted([*split.train, *split.test]) == list(range(15625))
    assert not split.n_train_auto and split.rows_skipped == 0 and split.rows_copied == 0
    auto = FitSplit.draw(values, nb201_classes, None, seed=0)
    assert auto.n_train_auto and auto.train.tolist()[:20] == NB201_RASPI4_SEED0_TRAIN20 and len(auto.train) == 900


def test_a_column_copied_per_class_is_measured_on_each_class_first_row(
    data_dir: Path, nb201_classes: np.ndarray
) -> None:
    values = cached_table(data_dir / "nb201").column("latency_ms", "pi5_onnx")
    split = FitSplit.draw(values, nb201_classes, 900, seed=0)
    on = split.measured_on
    # HW-NAS-Bench-360 measured NB201's 6,466 unique cells once each and copied the values
    assert len(np.unique(on)) == 6466 and split.rows_copied == 15625 - 6466
    np.testing.assert_array_equal(nb201_classes[on], nb201_classes)  # a member of the row's class
    np.testing.assert_array_equal(values[on], values)  # whose value the row holds
    first = {}
    for row, cls in enumerate(nb201_classes):
        first.setdefault(cls, row)
    np.testing.assert_array_equal(on, [first[c] for c in nb201_classes])  # the class's first row


def test_unusable_rows_are_neither_trained_nor_tested() -> None:
    values = np.array([1.0, np.nan, 2.0, 0.0, 3.0, 4.0, -1.0, 5.0])
    split = FitSplit.draw(values, None, 2, seed=1, label="latency_ms[dev]")
    assert sorted([*split.train, *split.test]) == [0, 2, 4, 5, 7] and split.rows_skipped == 3
    with pytest.raises(ValueError, match=r"n_train=5 does not fit: latency_ms\[dev\] has 5 usable rows"):
        FitSplit.draw(values, None, 5, seed=1, label="latency_ms[dev]")


def test_split_arrays_are_read_only() -> None:
    split = FitSplit.draw(np.arange(1.0, 11.0), None, 3, seed=0)
    for array in (split.usable, split.measured_on, split.candidates, split.train, split.test):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


def test_few_shot_rows_never_reach_an_architecture_a_source_saw() -> None:
    # classes 0 and 1 copied per class on both columns: row 1 was measured on row 0, row 3 on row 2
    source = np.array([1.0, 1.0, 2.0, 2.0, np.nan, 3.0, 7.0])
    target = np.array([1.0, 1.0, 2.0, 2.0, 6.0, 3.0, 7.0])
    classes = np.array([0, 0, 1, 1, 3, 2, 4])
    rows = SourceRows.of("latency_ms", "a", source, classes, np.array([1, 3, 4]))
    assert rows.rows.tolist() == [1, 3] and rows.measured_on.tolist() == [0, 2] and rows.skipped == 1  # 4: no value
    pool = FewShotPool(np.array([1, 3, 4]), {"a": rows})
    # the pool saw rows 1, 3 and 4, the source's values came from rows 0 and 2: rows 5 and 6 are left
    assert pool.seen.tolist() == [0, 1, 2, 3, 4]
    split = FitSplit.draw(target, classes, 1, seed=0, seen=pool.seen)
    assert split.candidates.tolist() == [5, 6] and sorted([*split.train, *split.test]) == [5, 6]
    # a pool of row 0 alone still rules out row 1, measured on it
    alone = FewShotPool(np.array([0]), {})
    assert FitSplit.draw(target, classes, 1, seed=0, seen=alone.seen).candidates.tolist() == [2, 3, 4, 5, 6]


def test_a_few_shot_split_keeps_every_source_architecture_out(data_dir: Path, nb201_classes: np.ndarray) -> None:
    table = cached_table(data_dir / "nb201")
    columns = {d: ("latency_ms", d, table.column("latency_ms", d)) for d in ("pi5_litert", "gold_6226")}
    pool = FewShotPool.draw(columns, nb201_classes, 15625, 900, seed=0)
    assert pool.rows.tolist() == source_pool(15625, 900, 0).tolist() and pool.rows[:4].tolist() == [16, 24, 34, 61]
    values = table.column("latency_ms", "pi5_onnx")
    split = FitSplit.draw(values, nb201_classes, 10, seed=0, seen=pool.seen)
    used = np.concatenate([split.train, split.test])
    fitted = np.concatenate([pool.rows, *(s.measured_on for s in pool.sources.values())])
    # no row the target uses, nor the row its value was measured on, is an architecture a source saw
    assert not set(used) & set(fitted) and not set(split.measured_on[used]) & set(fitted)
    assert not set(used) & set(pool.rows)
    # pi5_litert copied per class too: its pool rows were measured on rows outside the pool
    assert not set(pool.sources["pi5_litert"].measured_on) <= set(pool.rows)
    # the draw is hwnas-fit's: the candidates permuted by default_rng(seed), the first 10 trained on
    assert split.train.tolist() == np.random.default_rng(0).permutation(split.candidates)[:10].tolist()
    assert len(split.test) == len(split.candidates) - 10
    assert (
        pool.select(["gold_6226"]).seen.tolist()
        == np.unique(np.concatenate([pool.rows, pool.sources["gold_6226"].measured_on])).tolist()
    )


def test_the_pool_is_drawn_with_seed_and_one_and_refuses_a_size_the_table_cannot_hold() -> None:
    pool = source_pool(100, 10, seed=3)
    assert len(np.unique(pool)) == 10 and np.all(np.diff(pool) > 0)
    assert pool.tolist() == sorted(np.random.default_rng([3, 1]).permutation(100)[:10].tolist())
    for bad in (0, 100, 101):
        with pytest.raises(ValueError, match=rf"n_source={bad} must be between 1 and 99"):
            source_pool(100, bad, seed=0)


def test_cross_validation_folds_test_every_usable_row_once() -> None:
    values = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0])
    splits = FitSplit.folds(values, None, 5, seed=0)
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested) == [0, 1, 3, 4, 5, 6, 7, 8, 9, 10]
    assert tested.tolist() == np.random.default_rng(0).permutation(splits[0].usable).tolist()
    for split in splits:
        assert split.train.tolist() == sorted(set(split.usable) - set(split.test))


def test_the_automatic_split_keeps_900_on_published_columns_and_a_test_row_on_tiny_ones() -> None:
    # every published column has >= 1,200 usable rows: the benchmarks' 900, drawn as before
    assert [choose_n_train(None, n) for n in (1125, 1200, 5000, 15625)] == [900] * 4
    assert [choose_n_train(None, n) for n in (2, 3, 10, 100, 1124)] == [1, 2, 8, 80, 899]
    assert choose_n_train(900, 15625) == 900 and choose_n_train(99, 100) == 99
    for bad in (0, 100, 2.5, True):
        with pytest.raises(ValueError, match=rf"n_train={bad!r} does not fit.*between 1 and 99"):
            choose_n_train(bad, 100)
    with pytest.raises(ValueError, match="1 usable rows: a fit needs at least 2"):
        choose_n_train(None, 1)
