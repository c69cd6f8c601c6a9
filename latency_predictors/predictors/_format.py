"""Predictors kept in hwnas's predictor file format (:mod:`nas.predictor_file`, which owns the
layout): :class:`StoredPredictor`, the base that writes and reads a family's arrays and params,
and the embedding of one predictor's file inside another's (few-shot sources, a boosted layer
sum's base)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nas import Predictor, PredictorMismatchError, SearchSpace, features_version
from nas.predictor_file import load_predictor_file, save_predictor

__all__ = ["StoredPredictor", "embedded", "unembedded"]


class StoredPredictor(Predictor):
    """A :class:`nas.Predictor` kept in a predictor file (:mod:`nas.predictor_file`): a subclass names its ``kind`` and
    ``FEATURE_VERSION`` and hands its arrays and params to :meth:`_write`; :meth:`_read` gives
    them back, refusing a file for another kind, space, device or feature version."""

    kind: ClassVar[str]
    FEATURE_VERSION: ClassVar[int]
    #: Whether predictions read the space's feature matrix: then its ``nas.features_version`` is
    #: recorded (``params["space_features_version"]``) and a space computing other columns refused.
    USES_SPACE_FEATURES: ClassVar[bool] = False

    def _write(self, path: str | Path, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> None:
        if self.USES_SPACE_FEATURES:
            params = {**params, "space_features_version": features_version(self.search_space)}
        save_predictor(
            path,
            kind=self.kind,
            space=self.space,
            device_fingerprint=self.device_fingerprint,
            feature_version=self.FEATURE_VERSION,
            arrays=arrays,
            params=params,
        )

    @classmethod
    def _read(
        cls, path: str | Path, space: SearchSpace, device_fingerprint: str
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        header, arrays = load_predictor_file(
            path,
            space=space.name,
            device_fingerprint=device_fingerprint,
            kinds={cls.kind},
            feature_version=cls.FEATURE_VERSION,
        )
        recorded = header["params"].get("space_features_version", 1)  # files from before it was recorded
        if cls.USES_SPACE_FEATURES and recorded != features_version(space):
            raise PredictorMismatchError(
                f"{path}: predictor was trained on {space.name} features version {recorded}; this "
                f"{space.name} space computes features version {features_version(space)}; refit the predictor"
            )
        return header, arrays


def embedded(predictor: StoredPredictor, file: Path) -> np.ndarray:
    """``predictor``'s saved file (written to ``file``) as a uint8 array, to embed in another
    predictor's file (few-shot sources, a boosted layer sum's base)."""
    predictor.save(file)
    return np.frombuffer(file.read_bytes(), dtype=np.uint8).copy()


def unembedded(
    family: type[StoredPredictor], array: np.ndarray, file: Path, space: SearchSpace, device_fingerprint: str
) -> StoredPredictor:
    """The predictor an :func:`embedded` array holds, loaded by ``family`` through ``file``."""
    file.write_bytes(np.asarray(array, dtype=np.uint8).tobytes())
    return family.load(file, space=space, device_fingerprint=device_fingerprint)
