"""The predictor file format: one ``.npz`` file, arrays plus a JSON header, no pickle anywhere.

Layout (format_version 1): a numpy ``savez`` archive whose members are the predictor's arrays
(numeric or fixed-width unicode dtypes only, never ``object``) plus one member ``__header__``: a
uint8 array holding UTF-8 JSON::

    {"format_version": 1, "kind": "layer_sum", "space": "fbnet",
     "device_fingerprint": "0123abcd...", "feature_version": 1, "params": {...},
     "arrays": {"costs": {"dtype": "<f8", "shape": [110]}, ...}}

One file (rather than a folder of header.json + weights.npz) so a predictor is written atomically
(temporary file, then ``os.replace``) and copied as one thing. It is read with
``np.load(..., allow_pickle=False)``: a file holding pickled objects is refused, never executed.

Reading refuses a newer ``format_version`` than :data:`FORMAT_VERSION` (naming both), a file of
another kind, space, device or feature version (:class:`nas.PredictorMismatchError`, showing both
sides), and reads older versions through :data:`_UPGRADES` (empty while 1 is the only version).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from nas import Predictor, PredictorMismatchError, SearchSpace, features_version

__all__ = [
    "FORMAT_VERSION",
    "HEADER_KEY",
    "PredictorFileError",
    "load_predictor_file",
    "read_header",
    "save_predictor",
]

#: The version this code writes; files up to it are read, newer ones refused.
FORMAT_VERSION = 1
#: The archive member holding the JSON header (as uint8 UTF-8 bytes).
HEADER_KEY = "__header__"

#: Upgrades of older files: ``version -> f(header, arrays) -> (header, arrays)`` at ``version + 1``.
_UPGRADES: dict[
    int,
    Callable[
        [dict[str, Any], dict[str, np.ndarray]],
        tuple[dict[str, Any], dict[str, np.ndarray]],
    ],
] = {}


class PredictorFileError(ValueError):
    """A predictor file that cannot be read: not an archive, no header, a newer format, pickled data."""


def _check_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    checked = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name or name.startswith("__"):
            raise ValueError(f"array name {name!r} is not allowed (non-empty, not starting with '__')")
        array = np.asarray(value)
        if array.dtype.hasobject or array.dtype.kind not in "biufcU":
            raise ValueError(
                f"array {name!r} has dtype {array.dtype}; predictor files hold only numeric or "
                "unicode arrays (no objects, no pickle)"
            )
        checked[name] = array
    return checked


def save_predictor(
    path: str | Path,
    *,
    kind: str,
    space: str,
    device_fingerprint: str,
    feature_version: int,
    arrays: Mapping[str, np.ndarray],
    params: Mapping[str, Any],
) -> Path:
    """Write ``path`` (exactly that name; no suffix is added) atomically; returns it.

    ``params`` must be JSON-serialisable (it is written with ``allow_nan=False``).
    """
    path = Path(path)
    checked = _check_arrays(arrays)
    header = {
        "format_version": FORMAT_VERSION,
        "kind": str(kind),
        "space": str(space),
        "device_fingerprint": str(device_fingerprint),
        "feature_version": int(feature_version),
        "params": dict(params),
        "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in checked.items()},
    }
    try:
        text = json.dumps(header, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"predictor params must be JSON-serialisable and finite: {error}") from None
    members = {
        **checked,
        HEADER_KEY: np.frombuffer(text.encode("utf-8"), dtype=np.uint8),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **members)  # a file object: numpy appends no ".npz"
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _open(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not path.is_file():
        raise FileNotFoundError(f"predictor file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if HEADER_KEY not in names:
                raise PredictorFileError(
                    f"{path} has no {HEADER_KEY!r} member: not a hwnas predictor file (members: {sorted(names)[:10]})"
                )
            raw = archive[HEADER_KEY]
            arrays = {name: archive[name] for name in names if name != HEADER_KEY}
    except PredictorFileError:
        raise
    except ValueError as error:  # numpy refuses object arrays when allow_pickle=False
        raise PredictorFileError(
            f"{path} cannot be read without unpickling ({error}); predictor files never hold pickled data"
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError) as error:
        raise PredictorFileError(f"{path} is not a predictor file (a numpy .npz archive): {error}") from None
    try:
        header = json.loads(raw.astype(np.uint8).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PredictorFileError(f"{path}: its header is not UTF-8 JSON: {error}") from None
    if not isinstance(header, dict) or not isinstance(header.get("format_version"), int):
        raise PredictorFileError(f"{path}: its header has no integer 'format_version'")
    return header, arrays


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a predictor file, unchecked (for listing and inspecting files)."""
    return _open(Path(path))[0]


def load_predictor_file(
    path: str | Path,
    *,
    space: str,
    device_fingerprint: str,
    kinds: Collection[str],
    feature_version: int | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and arrays of a predictor file, refusing what does not fit.

    Refuses (in this order) a file whose ``format_version`` is newer than :data:`FORMAT_VERSION`
    (:class:`PredictorFileError` naming both), a ``kind`` outside ``kinds``, another space or device
    fingerprint, or (when given) another ``feature_version`` (:class:`nas.PredictorMismatchError`
    showing the file's value and the asked one). Older files are upgraded step by step.
    """
    path = Path(path)
    header, arrays = _open(path)
    version = header["format_version"]
    if version > FORMAT_VERSION:
        raise PredictorFileError(
            f"{path} has predictor format_version {version}, newer than this hwnas reads "
            f"(format_version {FORMAT_VERSION}); upgrade hwnas or refit the predictor"
        )
    if version < 1:
        raise PredictorFileError(f"{path} has format_version {version}; versions start at 1")
    while version < FORMAT_VERSION:
        header, arrays = _UPGRADES[version](header, arrays)
        version = header["format_version"] = version + 1
    missing = [k for k in ("kind", "space", "device_fingerprint", "feature_version", "params") if k not in header]
    if missing:
        raise PredictorFileError(f"{path}: its header lacks {missing}")
    if header["kind"] not in kinds:
        raise PredictorMismatchError(f"{path} holds a {header['kind']!r} predictor; expected one of {sorted(kinds)}")
    if (header["space"], header["device_fingerprint"]) != (space, device_fingerprint):
        raise PredictorMismatchError(
            f"{path}: predictor was trained for space {header['space']!r}, device "
            f"{header['device_fingerprint']}; asked for space {space!r}, device {device_fingerprint}"
        )
    if feature_version is not None and header["feature_version"] != feature_version:
        raise PredictorMismatchError(
            f"{path}: predictor uses feature_version {header['feature_version']}; this code computes "
            f"feature_version {feature_version}; refit the predictor"
        )
    for name, spec in header.get("arrays", {}).items():
        if name not in arrays:
            raise PredictorFileError(f"{path}: array {name!r} named in its header is missing")
        if list(arrays[name].shape) != spec["shape"]:
            raise PredictorFileError(
                f"{path}: array {name!r} has shape {list(arrays[name].shape)}, header says {spec['shape']}"
            )
    return header, arrays


class StoredPredictor(Predictor):
    """A :class:`nas.Predictor` kept in this file format: a subclass names its ``kind`` and
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
