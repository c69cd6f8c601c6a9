"""Predictor files by path: any family, and the search objective that answers from one.

``hwnas-fit`` writes ``predictor.npz`` and ``metrics.json`` into its run directory; a search
reads them back through :class:`PredictedMetric` (``hwnas-search device=predicted
device.latency=<run directory>``). The file's header names its family (``kind``), space and
device; ``metrics.json`` names the device column and table the predictor was fitted on, which
become the objective's truth, read only to score the returned front.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latency_predictors.predictors._format import StoredPredictor
from nas import (
    DEPLOYMENT_SEPARATOR,
    DeploymentError,
    Direction,
    PredictedObjective,
    PredictorMismatchError,
    SearchSpace,
)
from nas.errors import MissingFileError
from nas.objectives import TableMetric
from nas.predictor_file import PredictorFileError, read_header
from nas.tables import ARCHS_FILE, BenchmarkTable

#: The file hwnas-fit writes into its run directory.
PREDICTOR_FILE = "predictor.npz"
#: What hwnas-fit records beside it (device, metric, table_dir, held-out scores).
FIT_METRICS_FILE = "metrics.json"


def predictor_families() -> dict[str, type[StoredPredictor]]:
    """Every predictor family by the ``kind`` its files record (each subclass of StoredPredictor
    that names one), so a file of any family loads without a list kept by hand."""
    families: dict[str, type[StoredPredictor]] = {}
    pending = list(StoredPredictor.__subclasses__())
    while pending:
        family = pending.pop()
        pending.extend(family.__subclasses__())
        if "kind" in vars(family):
            families[family.kind] = family
    return families


def predictor_file(path: str | Path) -> Path:
    """``path`` itself when it is a file, ``path/predictor.npz`` for an hwnas-fit run directory."""
    path = Path(path).expanduser()
    file = path / PREDICTOR_FILE if path.is_dir() else path
    if not file.is_file():
        raise MissingFileError(
            f"no predictor at {path}: give an hwnas-fit run directory (it holds {PREDICTOR_FILE}) or a "
            "predictor file (hwnas-fit writes one per run: outputs/fit/<run>/predictor.npz)"
        )
    return file


def load_predictor(path: str | Path, space: SearchSpace) -> StoredPredictor:
    """The predictor in ``path`` (a file or an hwnas-fit run directory), of whatever family its
    header names, refused (naming both spaces) when it was fitted for another space."""
    file = predictor_file(path)
    header = read_header(file)
    families = predictor_families()
    family = families.get(header["kind"])
    if family is None:
        raise PredictorFileError(
            f"{file} holds a {header['kind']!r} predictor, a family this hwnas does not have "
            f"({', '.join(sorted(families))}); upgrade hwnas or refit with one of those"
        )
    if header["space"] != space.name:
        raise PredictorMismatchError(
            f"{file} was fitted for space {header['space']!r}; this search is over space {space.name!r}: "
            f"search space={header['space']}, or fit a predictor for {space.name}"
        )
    return family.load(file, space=space, device_fingerprint=header["device_fingerprint"])


def fit_record(path: str | Path) -> dict[str, Any]:
    """What hwnas-fit recorded beside the predictor (metrics.json), or {} for a bare file."""
    record = predictor_file(path).parent / FIT_METRICS_FILE
    return json.loads(record.read_text()) if record.is_file() else {}


def predicted_device_name(path: str | Path) -> str:
    """The device a predictor file models: the column hwnas-fit fitted, else one named by the
    file's device fingerprint."""
    file = predictor_file(path)
    return str(fit_record(file).get("device") or f"predicted_{read_header(file)['device_fingerprint'][:8]}")


def predicted_deployments(path: str | Path) -> list[str]:
    """The deployments of the deployed profile a predictor was fitted on (metrics.json's
    ``table_dir``; each row's string after its last ``@``), in the order the profile first
    measured them: what a search on that predictor may offer (``deployment=profiled``)."""
    file = predictor_file(path)
    table_dir = fit_record(file).get("table_dir")
    if not table_dir or not (Path(table_dir) / ARCHS_FILE).is_file():
        raise MissingFileError(
            f"{file}: its metrics.json names no table it was fitted on ({table_dir!r}); deployment=profiled lists the "
            "deployments of that table: give an hwnas-fit run on an hwnas-profile deployment=... table"
        )
    rows = BenchmarkTable.load(table_dir).archs
    deployments = list(
        dict.fromkeys(row.rpartition(DEPLOYMENT_SEPARATOR)[2] for row in rows if DEPLOYMENT_SEPARATOR in row)
    )
    if not deployments:
        raise DeploymentError(
            f"{table_dir} holds networks, not deployed candidates: fit the predictor on an hwnas-profile "
            "deployment=... table (hwnas-fit deployment=...) to search its deployments"
        )
    return deployments


class PredictedMetric(PredictedObjective):
    """A latency or energy objective answered by a predictor file hwnas-fit wrote.

    ``metric`` is checked against the one the predictor was fitted on (metrics.json), so a latency
    predictor never answers for energy. Where metrics.json names the table and column, that column
    is the :meth:`truth` a search scores its returned front against.
    """

    def __init__(
        self,
        name: str,
        path: str | Path | None,
        metric: str,
        space: SearchSpace,
        direction: Direction | str = Direction.MINIMIZE,
        deployment: Callable[..., SearchSpace] | None = None,
    ) -> None:
        if deployment is not None:
            # The predictor was fitted on a deployed space's table (hwnas-fit deployment=...), every
            # deployment its genes declare: a search offering only some reads its strings there.
            space = deployment(space=space).declared()
        if path is None:
            raise ValueError(
                f"objective {name!r} needs a predictor, and none was given: set device.{metric.split('_')[0]}="
                f"<hwnas-fit run directory of a {metric} predictor>, or choose objectives without {name}"
            )
        self.path = predictor_file(path)
        record = fit_record(self.path)
        fitted_metric = record.get("metric")
        if fitted_metric is not None and fitted_metric != metric:
            raise PredictorMismatchError(
                f"{self.path} predicts {fitted_metric}, not {metric}; give a {metric} predictor for {name!r}"
            )
        predictor = load_predictor(self.path, space)
        truth = None
        table_dir = record.get("table_dir")
        if table_dir and Path(table_dir).is_dir() and record.get("device"):
            truth = TableMetric(name, table_dir, metric, device=record["device"], direction=direction, space=space)
        self.device = record.get("device")
        super().__init__(name, predictor, direction, truth, space)

    def describe(self) -> str:
        device = f" of {self.device}" if self.device else ""
        return f"{self.name}{device} predicted by the {type(self.predictor).__name__} in {self.path}"
