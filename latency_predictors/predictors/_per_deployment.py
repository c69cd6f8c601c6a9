"""Latency across deployments: one predictor per deployment, each adapted from the others.

A deployed profile (``hwnas-profile deployment=...``) measures networks under several deployments
in one table of ``<network>@<deployment>`` rows. Two ways to predict it were measured on this CPU
(scripts/bench_deployment_predictors.py: 200 NB201 networks under 10 deployments, leave one
deployment out, the others known on 100 networks, seeds 0-2; mean Spearman within the held-out
deployment at k = 5 / 10 / 20 / 50 of its rows):

* one predictor with the deployment genes one-hot among its features: gbdt 0.694 / 0.787 / 0.803 /
  0.895, boosted_layer_sum 0.724 / 0.822 / 0.822 / 0.902;
* one predictor per deployment, few-shot from the others' (this class): 0.855 / 0.913 / 0.916 /
  0.926, also the closest in absolute terms (within +/-10%: 0.56 / 0.64 / 0.66 / 0.71 against
  0.24-0.53);

and a layer sum of the deployment's k rows alone 0.649 / 0.876 / 0.900 / 0.915.

So every deployment with at least ``min_source_rows`` rows gets its own ``source`` predictor (the
space's few-shot source family, on its networks), and every deployment with rows gets a
``few_shot`` predictor (:class:`FewShotPredictor`) adapting the *other* deployments' sources from
its own rows: a deployment measured on a handful of networks borrows from the rest, one measured
on many corrects the blend with trees. A candidate is predicted by its deployment's predictor; a
deployment the table never measured has none (profile it: ``hwnas-profile deployment=...
deployments=[<it>]``). Each deployment's predictors carry a fingerprint of the device and the
deployment, so a few-shot predictor never takes its own deployment as a source. The file embeds
every source once and each adapted predictor without them.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from latency_predictors.predictors._fewshot import FewShotPredictor, _stored_families
from latency_predictors.predictors._format import StoredPredictor, embedded, unembedded
from nas import (
    Architecture,
    DeployedSpace,
    DeploymentError,
    IntervalPredictor,
    Predictor,
    SearchSpace,
    UnavailableError,
)
from nas.fit_data import FitSizeError


def deployment_fingerprint(device_fingerprint: str, deployment: str) -> str:
    """The fingerprint of one deployment of a device (what its per-deployment predictors carry)."""
    return hashlib.sha1(f"{device_fingerprint}@{deployment}".encode()).hexdigest()[:16]


class PerDeploymentPredictor(StoredPredictor, IntervalPredictor):
    """One predictor per deployment of a :class:`nas.DeployedSpace`, few-shot from the others'."""

    kind = "per_deployment"
    FEATURE_VERSION: ClassVar[int] = 1

    def __init__(
        self,
        space: SearchSpace,
        device_fingerprint: str,
        source: Callable[..., Predictor] | None = None,
        few_shot: Callable[..., FewShotPredictor] | None = None,
        min_source_rows: int = 20,
    ) -> None:
        if not isinstance(space, DeployedSpace):
            raise DeploymentError(
                f"per_deployment predicts deployed candidates (hwnas-fit deployment=<option> on an hwnas-profile "
                f"deployment=... table); {space.name} has no deployments: pick another predictor"
            )
        if isinstance(min_source_rows, bool) or not isinstance(min_source_rows, int) or min_source_rows < 2:
            raise ValueError(f"min_source_rows must be an integer >= 2, got {min_source_rows!r}")
        self.search_space = space
        self.space = space.name
        self.device_fingerprint = device_fingerprint
        self.source_factory, self.few_shot_factory = source, few_shot
        self.min_source_rows = min_source_rows
        #: Each deployment's own predictor (deployments with at least min_source_rows rows).
        self.sources: dict[str, Predictor] = {}
        #: Each measured deployment's predictor, few-shot from the other deployments' sources
        #: (or its own source where it is the only one).
        self.adapted: dict[str, Predictor] = {}
        self.quantile = 0.9

    def _by_deployment(self, archs: Sequence[Architecture]) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for row, arch in enumerate(archs):
            groups.setdefault(self.search_space.deployment_of(arch).string, []).append(row)
        return groups

    def _networks(self, archs: Sequence[Architecture], rows: list[int]) -> list[Architecture]:
        return [self.search_space.network_of(archs[i]) for i in rows]

    def fit(self, archs: Sequence[Architecture], y: np.ndarray) -> PerDeploymentPredictor:
        if self.source_factory is None or self.few_shot_factory is None:
            raise ValueError("per_deployment needs its source and few_shot predictor factories (configs/predictor)")
        y = np.asarray(y, dtype=np.float64)
        groups = self._by_deployment(archs)
        networks = self.search_space.networks
        self.sources, self.adapted = {}, {}
        for deployment, rows in groups.items():
            if len(rows) >= self.min_source_rows:
                model = self.source_factory(space=networks, device_fingerprint=self._fingerprint(deployment))
                self.sources[deployment] = model.fit(self._networks(archs, rows), y[rows])
        if not self.sources:
            counts = {d: len(rows) for d, rows in groups.items()}
            raise FitSizeError(
                f"per_deployment needs at least one deployment with {self.min_source_rows} measured rows to adapt the "
                f"others from; the rows by deployment: {counts}. Profile more networks (hwnas-profile n_archs=...)"
            )
        for deployment, rows in groups.items():
            others = {d: model for d, model in self.sources.items() if d != deployment}
            if not others:
                self.adapted[deployment] = self.sources[deployment]
                continue
            model = self.few_shot_factory(
                space=networks, device_fingerprint=self._fingerprint(deployment), sources=others
            )
            self.adapted[deployment] = model.fit(self._networks(archs, rows), y[rows])
        quantiles = {getattr(m, "quantile", None) for m in self.adapted.values()}
        if len(quantiles) == 1 and None not in quantiles:
            self.quantile = float(quantiles.pop())  # type: ignore[arg-type]
        return self

    def _fingerprint(self, deployment: str) -> str:
        return deployment_fingerprint(self.device_fingerprint, deployment)

    def _route(self, archs: Sequence[Architecture]) -> dict[str, list[int]]:
        if not self.adapted:
            raise RuntimeError("PerDeploymentPredictor.predict before fit (or load)")
        groups = self._by_deployment(archs)
        unknown = [d for d in groups if d not in self.adapted]
        if unknown:
            raise UnavailableError(
                f"no predictor for deployment {unknown[0]}: the table it was fitted on measured "
                f"{sorted(self.adapted)}; profile it (hwnas-profile deployment=... deployments=[...]) and refit, "
                "or search only the deployments measured"
            )
        return groups

    def predict(self, archs: Sequence[Architecture]) -> np.ndarray:
        out = np.empty(len(archs))
        for deployment, rows in self._route(archs).items():
            out[rows] = self.adapted[deployment].predict(self._networks(archs, rows))
        return out

    def predict_interval(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        lower, upper = np.empty(len(archs)), np.empty(len(archs))
        for deployment, rows in self._route(archs).items():
            model = self.adapted[deployment]
            if not isinstance(model, IntervalPredictor):
                raise ValueError(f"the {type(model).__name__} of deployment {deployment} gives no intervals")
            lower[rows], upper[rows] = model.predict_interval(self._networks(archs, rows))
        return lower, upper

    # persistence

    def save(self, path: Path) -> None:
        if not self.adapted:
            raise RuntimeError("cannot save a PerDeploymentPredictor that was never fitted")
        arrays: dict[str, np.ndarray] = {}
        sources, adapted = [], []
        with tempfile.TemporaryDirectory(prefix="hwnas-per-deployment-") as scratch:
            for i, (deployment, model) in enumerate(self.sources.items()):
                arrays[f"source_{i}"] = embedded(_stored(model), Path(scratch) / f"source_{i}.npz")
                sources.append({"deployment": deployment, "kind": _stored(model).kind})
            for i, (deployment, model) in enumerate(self.adapted.items()):
                if model is self.sources.get(deployment):
                    adapted.append({"deployment": deployment, "own_source": True})
                    continue
                file = Path(scratch) / f"adapted_{i}.npz"
                assert isinstance(model, FewShotPredictor)
                model.save(file, embed_sources=False)
                arrays[f"adapted_{i}"] = np.frombuffer(file.read_bytes(), dtype=np.uint8).copy()
                adapted.append({"deployment": deployment, "own_source": False})
        self._write(
            path,
            arrays=arrays,
            params={
                "sources": sources,
                "adapted": adapted,
                "min_source_rows": self.min_source_rows,
                "quantile": self.quantile,
            },
        )

    @classmethod
    def load(cls, path: Path, *, space: SearchSpace, device_fingerprint: str) -> PerDeploymentPredictor:
        """Read ``path``: every deployment's source, then each adapted predictor given its
        sources (the other deployments')."""
        header, arrays = cls._read(path, space, device_fingerprint)
        p = header["params"]
        predictor = cls(space, device_fingerprint, min_source_rows=int(p["min_source_rows"]))
        networks = predictor.search_space.networks
        families = _stored_families()
        with tempfile.TemporaryDirectory(prefix="hwnas-per-deployment-") as scratch:
            for i, source in enumerate(p["sources"]):
                family = families.get(source["kind"])
                if family is None:
                    raise ValueError(
                        f"{path}: source {source['deployment']!r} is a {source['kind']!r} predictor, "
                        f"a family this hwnas does not know (known: {sorted(families)})"
                    )
                fingerprint = predictor._fingerprint(source["deployment"])
                file = Path(scratch) / f"source_{i}.npz"
                predictor.sources[source["deployment"]] = unembedded(
                    family, arrays[f"source_{i}"], file, networks, fingerprint
                )
            for i, entry in enumerate(p["adapted"]):
                deployment = entry["deployment"]
                if entry["own_source"]:
                    predictor.adapted[deployment] = predictor.sources[deployment]
                    continue
                file = Path(scratch) / f"adapted_{i}.npz"
                file.write_bytes(np.asarray(arrays[f"adapted_{i}"], dtype=np.uint8).tobytes())
                others = {d: m for d, m in predictor.sources.items() if d != deployment}
                predictor.adapted[deployment] = FewShotPredictor.load(
                    file, space=networks, device_fingerprint=predictor._fingerprint(deployment), sources=others
                )
        predictor.quantile = float(p["quantile"])
        return predictor


def _stored(model: Predictor) -> StoredPredictor:
    if not isinstance(model, StoredPredictor):
        raise TypeError(f"{type(model).__name__} is not a StoredPredictor; cannot embed it")
    return model
