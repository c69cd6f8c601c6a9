"""The predictor file format: one ``.npz`` file, arrays plus a JSON header, no pickle anywhere.

Layout (format_version 2): a numpy ``savez`` archive whose members are the predictor's arrays
(numeric or fixed-width unicode dtypes only, never ``object``) plus one member ``__header__``: a
uint8 array holding UTF-8 JSON (keys sorted)::

    {"format_version": 2, "kind": "layer_sum", "space": "fbnet",
     "device_fingerprint": "0123abcd...", "feature_version": 1, "params": {...},
     "arrays": {"costs": {"dtype": "<f8", "shape": [110], "sha256": "9f86..."}, ...}}

One file (rather than a folder of header.json + weights.npz) so a predictor is written atomically
(temporary file, then ``os.replace``) and copied as one thing.

A predictor file is data from elsewhere, so reading it cannot hurt: nothing is unpickled (an object
array is refused before its bytes are read); the archive's directory is checked before anything is
decompressed (at most :data:`MAX_MEMBERS` members, :data:`MAX_BYTES` in all once decompressed,
only ``.npy`` members, each named in the header); each array's own header is checked against the
JSON header's dtype and shape before it is allocated; and each array must match the sha256 the
header records (format_version 2), so an edited array is refused rather than predicting other
values. Format 1 files (no checksums) still load, with a warning to refit.

Reading refuses a newer ``format_version`` than :data:`FORMAT_VERSION` (naming both), a file of
another kind, space, device or feature version (:class:`nas.PredictorMismatchError`, showing both
sides), and reads older versions through :data:`_UPGRADES`.

This module is the only one that knows the layout: predictor families write and read through
:func:`save_predictor` and :func:`load_predictor_file`, and :class:`nas.testing.PredictorContract`
inspects and edits files through :func:`read_predictor_file` and :func:`write_predictor_file`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nas._predictor import PredictorMismatchError
from nas.errors import HwnasError, MissingFileError

__all__ = [
    "FORMAT_VERSION",
    "HEADER_FIELDS",
    "HEADER_KEY",
    "MAX_BYTES",
    "PredictorFileError",
    "array_sha256",
    "load_predictor_file",
    "read_header",
    "read_predictor_file",
    "save_predictor",
    "write_predictor_file",
]

#: The version this code writes; files up to it are read, newer ones refused.
FORMAT_VERSION = 2
#: Limits checked from the archive's directory, before anything is decompressed: the largest
#: predictor hwnas writes (an ensemble of boosters for OFA) is a few MB.
MAX_MEMBERS = 10_000
MAX_BYTES = 256 * 2**20
MAX_HEADER_BYTES = 16 * 2**20
_NPY = ".npy"

log = logging.getLogger(__name__)
#: The archive member holding the JSON header (as uint8 UTF-8 bytes).
HEADER_KEY = "__header__"
#: What every header holds (besides ``arrays``, the dtype and shape of each array).
HEADER_FIELDS = ("format_version", "kind", "space", "device_fingerprint", "feature_version", "params")

Header = dict[str, Any]
Arrays = dict[str, np.ndarray]


def _upgrade_1(header: Header, arrays: Arrays) -> tuple[Header, Arrays]:
    # Version 1 recorded no checksums: nothing to add (a checksum of what is read would vouch for
    # nothing), so the file is read as it is and its user told.
    log.warning(
        "predictor file of kind %r for space %r was written before predictor files carried "
        "checksums (format_version 1): an edit to it cannot be detected; refit it to protect it",
        header.get("kind"),
        header.get("space"),
    )
    return header, arrays


#: Upgrades of older files: ``version -> f(header, arrays) -> (header, arrays)`` at ``version + 1``.
_UPGRADES: dict[int, Callable[[Header, Arrays], tuple[Header, Arrays]]] = {1: _upgrade_1}


class PredictorFileError(HwnasError, ValueError):
    """A predictor file that cannot be read: not an archive, no header, a newer format, pickled data."""


def _check_arrays(arrays: Mapping[str, np.ndarray]) -> Arrays:
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
    return write_predictor_file(path, header, checked)


def array_sha256(array: np.ndarray) -> str:
    """The checksum a header records for an array: sha256 of its bytes in C order."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def write_predictor_file(path: str | Path, header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``header`` (as given: :func:`save_predictor` builds a complete one, but for the sha256
    of each array it names, which is computed here from ``arrays``) and ``arrays`` to ``path``
    atomically; returns it. For tools and tests that edit a file read with
    :func:`read_predictor_file`."""
    path = Path(path)
    checked = _check_arrays(arrays)
    header = dict(header)
    if isinstance(header.get("arrays"), Mapping) and header.get("format_version", 0) >= 2:
        header["arrays"] = {
            name: {**spec, "sha256": array_sha256(checked[name])} if name in checked else spec
            for name, spec in header["arrays"].items()
        }
    try:
        text = json.dumps(header, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"predictor params must be JSON-serialisable and finite: {error}") from None
    members = {**checked, HEADER_KEY: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}
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


def read_predictor_file(path: str | Path) -> tuple[Header, Arrays]:
    """The header and arrays of a predictor file, checked as a file (see the module: limits, no
    pickle, every member named in the header with its dtype, shape and sha256) but not as a
    predictor (kind, space, device: :func:`load_predictor_file`)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"predictor file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            members = _members(path, archive)
            if HEADER_KEY not in members:
                raise PredictorFileError(
                    f"{path} has no {HEADER_KEY!r} member: not a hwnas predictor file (members: {sorted(members)[:10]})"
                )
            header = _parse_header(path, _read_array(path, archive, members[HEADER_KEY], None))
            specs = header.get("arrays", {})
            if not isinstance(specs, dict) or not all(isinstance(v, dict) for v in specs.values()):
                raise PredictorFileError(f"{path}: its header's 'arrays' is not a mapping of name to dtype and shape")
            unlisted = sorted(set(members) - set(specs) - {HEADER_KEY})
            if unlisted:
                raise PredictorFileError(f"{path} holds members its header does not name: {unlisted[:10]}")
            arrays = {
                name: _read_array(path, archive, info, specs.get(name))
                for name, info in members.items()
                if name != HEADER_KEY
            }
    except PredictorFileError:
        raise
    except _DAMAGED as error:  # what zipfile, zlib and numpy raise on damaged bytes
        raise PredictorFileError(
            f"{path} is not a readable predictor file (a numpy .npz archive): {type(error).__name__}: {error}"
        ) from None
    return header, arrays


_DAMAGED = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    NotImplementedError,
    RuntimeError,
    ValueError,
    OverflowError,
    UnicodeDecodeError,
)


def _members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name, refused from its directory alone (nothing decompressed)."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise PredictorFileError(f"{path} has {len(infos)} members; a predictor file holds at most {MAX_MEMBERS}")
    total = sum(info.file_size for info in infos)
    if total > MAX_BYTES:
        raise PredictorFileError(
            f"{path} would decompress to {total:,} bytes, above the {MAX_BYTES:,} a predictor file may hold; "
            "refused before decompressing"
        )
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
            raise PredictorFileError(
                f"{path}: member {info.filename!r} is encrypted or compressed as numpy never writes"
            )
        name = info.filename.removesuffix(_NPY)
        if not info.filename.endswith(_NPY) or name in members:
            raise PredictorFileError(f"{path}: member {info.filename!r} is not one .npy array")
        members[name] = info
    return members


def _parse_header(path: Path, raw: np.ndarray) -> Header:
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_HEADER_BYTES:
        raise PredictorFileError(f"{path}: its header is not UTF-8 bytes of at most {MAX_HEADER_BYTES:,}")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise PredictorFileError(f"{path}: its header is not UTF-8 JSON: {error}") from None
    if not isinstance(header, dict) or type(header.get("format_version")) is not int:
        raise PredictorFileError(f"{path}: its header has no integer 'format_version'")
    return header


def _read_array(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, spec: Mapping | None) -> np.ndarray:
    """One member, its .npy header checked (dtype, size, against ``spec`` where given) before its
    data is allocated, and its sha256 where ``spec`` records one."""
    name = info.filename.removesuffix(_NPY)
    with archive.open(info) as stream:
        try:
            version = np.lib.format.read_magic(stream)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read:
                raise ValueError(f".npy version {version}")
            shape, fortran, dtype = read[version](stream, max_header_size=10_000)
        except ValueError as error:
            # numpy names object dtypes it would need to unpickle here too
            raise PredictorFileError(
                f"{path}: array {name!r} cannot be read without unpickling or is not a .npy array ({error}); "
                "predictor files never hold pickled data"
            ) from None
        if dtype.hasobject or dtype.kind not in "biufcU":
            raise PredictorFileError(
                f"{path}: array {name!r} has dtype {dtype}, which would mean unpickling; predictor files "
                "never hold pickled data"
            )
        size = math.prod(shape) * dtype.itemsize
        if size > info.file_size:
            raise PredictorFileError(
                f"{path}: array {name!r} claims {size:,} bytes in a {info.file_size:,}-byte member"
            )
        if spec is not None and (spec.get("dtype") != dtype.str or spec.get("shape") != list(shape)):
            raise PredictorFileError(
                f"{path}: array {name!r} is {dtype.str} {list(shape)}, header says "
                f"{spec.get('dtype')} {spec.get('shape')}"
            )
        data = stream.read(size)
    if len(data) != size:
        raise PredictorFileError(f"{path}: array {name!r} is truncated ({len(data):,} of {size:,} bytes)")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
    if spec is not None and "sha256" in spec and array_sha256(array) != spec["sha256"]:
        raise PredictorFileError(
            f"{path}: array {name!r} does not match the sha256 its header records: the file was edited "
            "or damaged; refit the predictor or restore the file"
        )
    return array


def read_header(path: str | Path) -> Header:
    """The JSON header of a predictor file, unchecked (for listing and inspecting files)."""
    return read_predictor_file(path)[0]


def load_predictor_file(
    path: str | Path,
    *,
    space: str,
    device_fingerprint: str,
    kinds: Collection[str],
    feature_version: int | None = None,
) -> tuple[Header, Arrays]:
    """The header and arrays of a predictor file, refusing what does not fit.

    Refuses (in this order) a file whose ``format_version`` is newer than :data:`FORMAT_VERSION`
    (:class:`PredictorFileError` naming both), a ``kind`` outside ``kinds``, another space or device
    fingerprint, or (when given) another ``feature_version`` (:class:`nas.PredictorMismatchError`
    showing the file's value and the asked one). Older files are upgraded step by step.
    """
    path = Path(path)
    header, arrays = read_predictor_file(path)
    version = written = header["format_version"]
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
    missing = [field for field in HEADER_FIELDS if field not in header]
    if missing:
        raise PredictorFileError(f"{path}: its header lacks {missing}")
    types = {"kind": str, "space": str, "device_fingerprint": str, "feature_version": int, "params": dict}
    wrong = [f"{k} is {type(header[k]).__name__}" for k, kind in types.items() if type(header[k]) is not kind]
    if wrong:
        raise PredictorFileError(f"{path}: its header's {', '.join(wrong)}; expected {types}")
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
    for name in header.get("arrays", {}):
        if name not in arrays:
            raise PredictorFileError(f"{path}: array {name!r} named in its header is missing")
    if written >= 2:
        unchecked = [n for n, spec in header["arrays"].items() if "sha256" not in spec]
        if unchecked:
            raise PredictorFileError(f"{path}: its header records no sha256 for {unchecked[:5]}")
    return header, arrays
