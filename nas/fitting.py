"""Fit one predictor to one device column of a table and score it: hwnas-fit and every benchmark.

Read top to bottom: a table is parsed once with its space (:class:`ParsedTable`); for a few-shot
fit, source predictors are fitted on other columns' values of a pretraining pool
(:func:`fit_sources`); :func:`fit_column` draws the column's training and test rows
(:class:`nas.fit_data.FitSplit`), fits the predictor on the training rows' measured architectures
and scores its predictions of the test rows (:func:`nas.predictor_metrics.prediction_metrics`).
Everything arrives already built: the space, the table and predictor factories (a factory is
called as ``factory(space=..., device_fingerprint=...)``, plus ``sources=...`` for a
:class:`nas.TransferPredictor`), so a caller composes its configuration however it likes, and a
benchmark reuses one parsed table and one set of fitted sources across many fits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas._architecture import Architecture, ArchitectureError
from nas._capabilities import isomorphism_classes
from nas._predictor import IntervalPredictor, Predictor, TransferPredictor
from nas._space import SearchSpace
from nas.fit_data import FewShotPool, FitSplit
from nas.predictor_metrics import prediction_metrics
from nas.tables import ARCHS_FILE, BenchmarkTable

__all__ = ["FewShotSources", "FitResult", "ParsedTable", "PredictorFactory", "fit_column", "fit_sources", "fit_split"]

#: Builds an unfitted predictor: ``factory(space=..., device_fingerprint=...[, sources=...])``
#: (what Hydra's ``instantiate`` gives for a ``_partial_: true`` predictor config).
PredictorFactory = Callable[..., Predictor]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ParsedTable:
    """A table read with its space: every row's architecture and isomorphism class (or None)."""

    space: SearchSpace
    table: BenchmarkTable
    archs: tuple[Architecture, ...]
    classes: np.ndarray | None

    @classmethod
    def parse(cls, space: SearchSpace, table: BenchmarkTable) -> ParsedTable:
        """Parse every row; a string the space does not accept names its row and file."""
        archs = []
        for row, string in enumerate(table.archs):
            try:
                archs.append(space.parse(string))
            except ArchitectureError as error:
                raise ArchitectureError(
                    f"{table.directory / ARCHS_FILE} row {row} is not a {space.name} architecture: {error}"
                ) from None
        return cls(space, table, tuple(archs), isomorphism_classes(space, archs))

    def fingerprint(self, device: str) -> str:
        """The fingerprint of what column ``device`` was measured on (``BenchmarkTable.device``)."""
        return self.table.device(device).fingerprint


@dataclass(frozen=True, eq=False)
class FewShotSources:
    """Source predictors of a few-shot fit, by name, the pool they were fitted on, and the table
    that pool's rows index (the target's own, or another one: a profile measured here can take
    the published devices as sources)."""

    pool: FewShotPool
    predictors: Mapping[str, Predictor]
    data: ParsedTable

    def without_device(self, device: str) -> FewShotSources:
        """These sources less every column of ``device`` (leave one device out)."""
        names = [name for name, rows in self.pool.sources.items() if rows.device != device]
        return FewShotSources(self.pool.select(names), {name: self.predictors[name] for name in names}, self.data)

    def seen_rows(self, target: ParsedTable) -> np.ndarray:
        """The rows of ``target`` whose architecture a source was fitted on: the pool's rows in
        the sources' own table; in another table of the same space, the rows holding one of those
        architectures (by canonical string, the rule within one table, where every row is a
        distinct architecture)."""
        if target is self.data:
            return self.pool.seen
        if target.space.name != self.data.space.name:
            raise ValueError(
                f"the source table {self.data.table.directory} holds {self.data.space.name} networks and the "
                f"target table {target.table.directory} holds {target.space.name} ones: sources must be of one space"
            )
        seen = {self.data.archs[i].string for i in self.pool.seen}
        return np.flatnonzero([arch.string in seen for arch in target.archs])

    def report(self) -> dict[str, Any]:
        """What metrics.json records of them."""
        metrics = list(dict.fromkeys(rows.metric for rows in self.pool.sources.values()))
        return {
            "source_devices": list(self.predictors),
            "source_metric": metrics[0] if len(metrics) == 1 else metrics,
            "source_table_dir": str(Path(self.data.table.directory).resolve()),
            "n_source": len(self.pool.rows),
            "source_rows_skipped": {name: rows.skipped for name, rows in self.pool.sources.items()},
        }


def fit_sources(
    data: ParsedTable,
    columns: Mapping[str, tuple[str, str]],
    predictor: PredictorFactory,
    n_source: int,
    seed: int,
) -> FewShotSources:
    """One ``predictor`` per source column (``columns``: name -> ``(metric, device)``), fitted on
    that column's values of a pool of ``n_source`` rows drawn with ``default_rng([seed, 1])``,
    each as the architecture it was measured on; no other value of a source column is read."""
    values = {name: data.table.column(metric, device) for name, (metric, device) in columns.items()}
    pool = FewShotPool.draw(
        {name: (*columns[name], column) for name, column in values.items()},
        data.classes,
        len(data.archs),
        n_source,
        seed,
    )
    fitted = {}
    for n, (name, rows) in enumerate(pool.sources.items(), 1):
        if rows.skipped:
            log.warning(
                "source %s: %d of %d pool rows have no usable %s value and are skipped",
                name,
                rows.skipped,
                len(pool.rows),
                rows.metric,
            )
        source = predictor(space=data.space, device_fingerprint=data.fingerprint(rows.device))
        fitted[name] = source.fit([data.archs[i] for i in rows.measured_on], values[name][rows.rows])
        log.info(
            "source %d of %d fitted: %s (%s, %d rows)",
            n,
            len(pool.sources),
            name,
            type(source).__name__,
            len(rows.rows),
        )
    return FewShotSources(pool, fitted, data)


@dataclass(frozen=True, eq=False)
class FitResult:
    """One fitted predictor and how it scored on its test rows (``split.test``, in that order)."""

    space: str
    metric: str
    device: str
    device_fingerprint: str
    seed: int
    split: FitSplit
    predictor: Predictor
    measured: np.ndarray
    predicted: np.ndarray
    interval: tuple[np.ndarray, np.ndarray] | None
    #: :func:`nas.predictor_metrics.prediction_metrics` of the test rows.
    metrics: Mapping[str, Any]
    fit_seconds: float
    sources: FewShotSources | None

    def summary(self) -> dict[str, Any]:
        """Everything hwnas-fit's metrics.json holds."""
        return {
            **self.metrics,
            "n_train": int(len(self.split.train)),
            "n_train_auto": self.split.n_train_auto,
            "rows_skipped": self.split.rows_skipped,
            "rows_measured_on_class_first_row": self.split.rows_copied,
            "fit_seconds": self.fit_seconds,
            "space": self.space,
            "device": self.device,
            "metric": self.metric,
            "predictor": type(self.predictor).__name__,
            "device_fingerprint": self.device_fingerprint,
            "seed": self.seed,
            **(self.sources.report() if self.sources is not None else {}),
            **({"leaned_on": self.predictor.leaned_on()} if isinstance(self.predictor, TransferPredictor) else {}),
        }


def _build(
    predictor: PredictorFactory, data: ParsedTable, device: str, fingerprint: str, sources: FewShotSources | None
) -> Predictor:
    """The unfitted predictor, given the sources exactly when it is a TransferPredictor."""
    model = predictor(space=data.space, device_fingerprint=fingerprint)
    name = type(model).__name__
    if sources is None:
        if isinstance(model, TransferPredictor):
            raise ValueError(
                f"{name} adapts fitted predictors of other devices to this one: give it source devices "
                "(hwnas-fit source_devices=[...])"
            )
        return model
    if not isinstance(model, TransferPredictor):
        raise ValueError(
            f"source devices {list(sources.predictors)} need a predictor that adapts them (a "
            f"nas.TransferPredictor: predictor=few_shot); {name} is not one"
        )
    for rows in sources.pool.sources.values():
        if rows.device == device:
            raise ValueError(
                f"source device {device!r} is the target device: a few-shot fit adapts to a device "
                "none of its sources is; remove it from source_devices"
            )
    return predictor(space=data.space, device_fingerprint=fingerprint, sources=dict(sources.predictors))


def fit_split(
    data: ParsedTable,
    metric: str,
    device: str,
    predictor: PredictorFactory,
    split: FitSplit,
    seed: int,
    sources: FewShotSources | None = None,
) -> FitResult:
    """Fit ``predictor`` on ``split.train`` of column ``metric[device]`` (each row as the
    architecture its value was measured on) and score it on ``split.test``, with interval
    coverage when it is an :class:`nas.IntervalPredictor`. ``seed`` is recorded, not used."""
    values = data.table.column(metric, device)
    fingerprint = data.fingerprint(device)
    model = _build(predictor, data, device, fingerprint, sources)
    train_archs = [data.archs[i] for i in split.measured_on[split.train]]
    started = time.perf_counter()
    model.fit(train_archs, values[split.train])
    fit_seconds = time.perf_counter() - started
    test_archs = [data.archs[i] for i in split.measured_on[split.test]]
    measured = values[split.test]
    predicted = np.asarray(model.predict(test_archs))
    interval = model.predict_interval(test_archs) if isinstance(model, IntervalPredictor) else None
    return FitResult(
        space=data.space.name,
        metric=metric,
        device=device,
        device_fingerprint=fingerprint,
        seed=seed,
        split=split,
        predictor=model,
        measured=measured,
        predicted=predicted,
        interval=interval,
        metrics=prediction_metrics(measured, predicted, *(interval or (None, None))),
        fit_seconds=fit_seconds,
        sources=sources,
    )


def fit_column(
    data: ParsedTable,
    metric: str,
    device: str,
    predictor: PredictorFactory,
    n_train: int | None,
    seed: int,
    sources: FewShotSources | None = None,
) -> FitResult:
    """Draw ``n_train`` training rows of column ``metric[device]`` with ``default_rng(seed)``
    (:meth:`FitSplit.draw`: None is min(900, 80% of the usable rows); with ``sources``, only rows
    whose architecture no source was fitted on), fit ``predictor`` on them and score it on every
    other such row (:func:`fit_split`)."""
    label = f"{metric}[{device}]"
    values = data.table.column(metric, device)  # an unknown device is named with the known ones
    seen = sources.seen_rows(data) if sources is not None else None
    split = FitSplit.draw(values, data.classes, n_train, seed, seen, label)
    if split.rows_skipped:
        log.warning("%d of %d rows have no usable %s value and are skipped", split.rows_skipped, len(values), label)
    if split.rows_copied:
        log.info(
            "%d rows hold a value copied from the first row of their isomorphism class: each is fitted "
            "and predicted as the architecture measured (column measured_on)",
            split.rows_copied,
        )
    if split.n_train_auto:
        log.info(
            "n_train=%d (n_train=null: %s has %d usable rows%s; the other %d are the test set)",
            len(split.train),
            label,
            len(split.usable),
            f", {len(split.candidates)} of them outside the few-shot pool" if sources else "",
            len(split.test),
        )
    return fit_split(data, metric, device, predictor, split, seed, sources)
