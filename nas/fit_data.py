"""The rows a fit may use and how they are split: one rule for hwnas-fit and every benchmark.

A device column of a table (``nas.tables``) holds one value per row, some missing. A fit uses:

* the **usable** rows (:func:`usable_mask`: a finite value > 0);
* for each row, the row whose architecture its value was **measured on** (:func:`measured_rows`:
  tables that copied one measurement per isomorphism class measured the class's first row);
* for a few-shot fit, a **pool** of rows (:class:`FewShotPool`) whose values on other ("source")
  devices pretrain the sources; every row whose architecture a source was fitted on then leaves
  both the target's training and test rows, so no source measurement of a predicted architecture
  is ever read;
* a **draw** (:class:`FitSplit`): the candidate rows permuted by ``numpy.random.default_rng(seed)``,
  the first ``n_train`` (:func:`choose_n_train`) trained on and the rest tested, in drawn order.

Pure numpy: this module reads no file and knows no space or predictor (``nas.fitting`` fits them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from nas.errors import HwnasError

__all__ = [
    "AUTO_N_TRAIN_MAX",
    "AUTO_TRAIN_SHARE",
    "FewShotPool",
    "FitSplit",
    "SourceRows",
    "choose_n_train",
    "measured_rows",
    "source_pool",
    "usable_mask",
]

#: n_train=None trains on this share of the usable rows, at most AUTO_N_TRAIN_MAX: every published
#: column (>= 1,200 usable rows) gets the benchmarks' 900, a 100-row profile an 80/20 split.
AUTO_TRAIN_SHARE = 0.8
AUTO_N_TRAIN_MAX = 900


def usable_mask(values: np.ndarray) -> np.ndarray:
    """Which values are usable costs (bool, the shape of ``values``): finite and > 0, a latency or
    energy that was measured; NaN, zero or negative cells are missing or corrupt."""
    return np.isfinite(values) & (values > 0)


def measured_rows(values: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """For each row of a device column, the row whose architecture the value was measured on.

    Some tables measured one member of each isomorphism class and copied its value to the others:
    HW-NAS-Bench-360's pi5_* and pixel6a columns of NAS-Bench-201, whose 15,625 rows hold 6,466
    values. Which member was measured matters: isomorphic cells do not cost the same (the ops on
    a cell's dead edges evidently still run). The evidence says it was the class's first row in
    table order (NAS-Bench-201's index): a linear cost model fitted on one-member classes finds
    the first row the closest member in 75-80% of the larger classes (the last row in 6-8%), and
    a LightGBM predictor fitted on first rows reaches Spearman 0.997 on nb201 pi5_onnx with 900
    rows, against 0.979 fitted on the rows themselves.

    So when ``classes`` (one class id per row, e.g. ``nas.isomorphism_classes(space, archs)``) is given and
    the column's finite values are equal within every class, and some class holds more than one of
    them, each row maps to its class's first row with a finite value; otherwise (and for rows
    without a value) to itself.
    """
    rows = np.arange(len(values))
    if classes is None:
        return rows
    classes = np.asarray(classes)
    finite = np.flatnonzero(np.isfinite(values))
    _, first, inverse = np.unique(classes[finite], return_index=True, return_inverse=True)
    if len(first) == len(finite) or not np.array_equal(values[finite], values[finite][first][inverse]):
        return rows
    rows[finite] = finite[first][inverse]
    return rows


class FitSizeError(HwnasError, ValueError):
    """A fit asked for more (or fewer) rows than the column has usable."""


def choose_n_train(requested: int | None, n_usable: int, rows_note: str = "") -> int:
    """The number of training rows: ``requested``, checked to leave at least one test row, or for
    ``None`` ``min(AUTO_N_TRAIN_MAX, AUTO_TRAIN_SHARE * n_usable)`` (at least 1, at most
    ``n_usable - 1``). ``rows_note`` says where the usable rows come from, for the error."""
    note = rows_note or f"{n_usable} usable rows"
    if n_usable < 2:
        raise FitSizeError(
            f"{note}: a fit needs at least 2 (one to train on, one to test); "
            "measure more rows (hwnas-profile n_archs=...) or pick another column"
        )
    if requested is None:
        return min(AUTO_N_TRAIN_MAX, max(1, int(AUTO_TRAIN_SHARE * n_usable)), n_usable - 1)
    if isinstance(requested, bool) or not isinstance(requested, int) or not 0 < requested < n_usable:
        auto = choose_n_train(None, n_usable)
        raise FitSizeError(
            f"n_train={requested!r} does not fit: {note}, so n_train must be an integer between 1 "
            f"and {n_usable - 1} (the rest are the test set); n_train=null picks {auto} "
            f"(min({AUTO_N_TRAIN_MAX}, {AUTO_TRAIN_SHARE:.0%} of the usable rows))"
        )
    return requested


def source_pool(n_rows: int, n_source: int, seed: int) -> np.ndarray:
    """The few-shot pretraining pool: ``n_source`` of ``n_rows`` rows drawn with
    ``default_rng([seed, 1])``, sorted."""
    if not 0 < n_source < n_rows:
        raise FitSizeError(f"n_source={n_source} must be between 1 and {n_rows - 1} (the table's rows)")
    return np.sort(np.random.default_rng([seed, 1]).permutation(n_rows)[:n_source])


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    array.flags.writeable = False
    return array


@dataclass(frozen=True, eq=False)
class SourceRows:
    """What one source column may read of the pool: its pool rows with a usable value, and for
    each the row its value was measured on (fit the source on the second's architectures with
    the first's values)."""

    metric: str
    device: str
    rows: np.ndarray
    measured_on: np.ndarray
    #: Pool rows without a usable value on this column.
    skipped: int

    @classmethod
    def of(
        cls, metric: str, device: str, values: np.ndarray, classes: np.ndarray | None, pool: np.ndarray
    ) -> SourceRows:
        rows = pool[usable_mask(values[pool])]
        measured = measured_rows(values, classes)[rows]
        return cls(metric, device, _frozen(rows), _frozen(measured), len(pool) - len(rows))


@dataclass(frozen=True, eq=False)
class FewShotPool:
    """The pretraining pool of a few-shot fit and each source column's rows in it, by name."""

    rows: np.ndarray
    sources: Mapping[str, SourceRows]

    @classmethod
    def draw(
        cls,
        columns: Mapping[str, tuple[str, str, np.ndarray]],
        classes: np.ndarray | None,
        n_rows: int,
        n_source: int,
        seed: int,
    ) -> FewShotPool:
        """The pool (:func:`source_pool`) and the rows of each source column in it; ``columns``
        maps a source's name to ``(metric, device, values)``."""
        pool = _frozen(source_pool(n_rows, n_source, seed))
        sources = {name: SourceRows.of(m, d, values, classes, pool) for name, (m, d, values) in columns.items()}
        return cls(pool, sources)

    @property
    def seen(self) -> np.ndarray:
        """Rows whose architecture some source was fitted on: the pool, and the rows its values
        were measured on (sorted, unique)."""
        return np.unique(np.concatenate([self.rows, *(s.measured_on for s in self.sources.values())]))

    def select(self, names: Sequence[str]) -> FewShotPool:
        """The same pool with only the sources ``names`` (in that order)."""
        return FewShotPool(self.rows, {name: self.sources[name] for name in names})


@dataclass(frozen=True, eq=False)
class FitSplit:
    """Which rows of one device column a fit trains on and is tested on.

    ``usable``: the rows with a usable value; ``measured_on``: for every row, the row its value
    was measured on (fit and predict that row's architecture); ``candidates``: the usable rows a
    fit may draw (all of them, or for a few-shot fit those whose architecture, and the one their
    value was measured on, no source was fitted on); ``train`` and ``test``: the candidates in the
    order ``default_rng(seed).permutation`` drew them, the first ``n_train`` and the rest.

    The drawn order is kept (not sorted): it is the order rows are given to ``fit`` and scored in,
    and the published benchmark records were made in it (an MLP's minibatches follow it).
    """

    usable: np.ndarray
    measured_on: np.ndarray
    candidates: np.ndarray
    train: np.ndarray
    test: np.ndarray
    #: Whether n_train was chosen by :func:`choose_n_train` (asked for as None).
    n_train_auto: bool

    @classmethod
    def draw(
        cls,
        values: np.ndarray,
        classes: np.ndarray | None,
        n_train: int | None,
        seed: int,
        seen: np.ndarray | None = None,
        label: str = "the column",
    ) -> FitSplit:
        """Draw ``n_train`` training rows (None: :func:`choose_n_train`'s share) with
        ``default_rng(seed)`` among the candidates; every other candidate is a test row.
        ``seen``: for a few-shot fit, the rows whose architecture a source was fitted on
        (:attr:`FewShotPool.seen`, or the rows holding an architecture of another table's pool); they
        leave the candidates, as does every row measured on one of them. ``label`` names the
        column in errors (e.g. ``latency_ms[raspi4]``)."""
        usable = np.flatnonzero(usable_mask(values))
        measured_on = measured_rows(values, classes)
        note = f"{label} has {len(usable)} usable rows"
        if seen is None:
            candidates = usable
        else:
            outside = np.ones(len(values), dtype=bool)
            outside[np.asarray(seen, dtype=np.int64)] = False
            candidates = np.flatnonzero(usable_mask(values) & outside & outside[measured_on])
            note += (
                f", {len(candidates)} of them outside the few-shot pool (the sources were fitted on the "
                f"architectures of {len(seen)} rows)"
            )
        size = choose_n_train(n_train, len(candidates), note)
        order = np.random.default_rng(seed).permutation(candidates)
        return cls(
            *(_frozen(a) for a in (usable, measured_on, candidates, order[:size], order[size:])),
            n_train_auto=n_train is None,
        )

    @classmethod
    def folds(cls, values: np.ndarray, classes: np.ndarray | None, n_folds: int, seed: int) -> list[FitSplit]:
        """Cross-validation: the usable rows permuted by ``default_rng(seed)`` and cut into
        ``n_folds`` folds (``numpy.array_split``); split ``i`` tests on fold ``i`` (drawn order)
        and trains on every other usable row (table order)."""
        usable = np.flatnonzero(usable_mask(values))
        measured_on = _frozen(measured_rows(values, classes))
        folds = np.array_split(np.random.default_rng(seed).permutation(usable), n_folds)
        return [
            cls(
                _frozen(usable), measured_on, _frozen(usable), _frozen(np.setdiff1d(usable, held)), _frozen(held), False
            )
            for held in folds
        ]

    @property
    def rows_skipped(self) -> int:
        """Rows without a usable value."""
        return len(self.measured_on) - len(self.usable)

    @property
    def rows_copied(self) -> int:
        """Rows whose value was measured on another row (its isomorphism class's first)."""
        return int((self.measured_on != np.arange(len(self.measured_on))).sum())
