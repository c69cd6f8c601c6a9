"""The predictor file format (nas.predictor_file): round trip, refusals, no pickle, stable layout."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from nas import PredictorFileError, PredictorMismatchError
from nas.predictor_file import (
    FORMAT_VERSION,
    HEADER_FIELDS,
    load_predictor_file,
    read_header,
    read_predictor_file,
    save_predictor,
    write_predictor_file,
)
from nas.testing import rewrite_predictor_header

#: A format_version 1 file written before the format moved into nas (by
#: latency_predictors.predictors._format.save_predictor), with :data:`GOLDEN_CONTENT`.
GOLDEN = Path(__file__).parent / "data" / "predictor_format_v1.npz"
GOLDEN_CONTENT = {
    "kind": "k",
    "space": "s",
    "device_fingerprint": "0123456789abcdef",
    "feature_version": 3,
    "arrays": {"w": np.arange(6.0).reshape(2, 3), "keys": np.array(["a", "bb"]), "n": np.arange(3, dtype=np.int32)},
    "params": {"x": [1, 2], "name": "golden"},
}


def test_round_trip_keeps_header_and_arrays(tmp_path: Path) -> None:
    path = tmp_path / "p.lut"  # any name: no suffix is added
    arrays = {"w": np.arange(6.0).reshape(2, 3), "keys": np.array(["a", "bb"])}
    assert (
        save_predictor(
            path,
            kind="k",
            space="s",
            device_fingerprint="d",
            feature_version=3,
            arrays=arrays,
            params={"x": [1, 2]},
        )
        == path
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.lut"]  # no temporary file left
    header, loaded = load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"}, feature_version=3)
    assert header["format_version"] == FORMAT_VERSION
    assert (header["kind"], header["params"], header["feature_version"]) == ("k", {"x": [1, 2]}, 3)
    np.testing.assert_array_equal(loaded["w"], arrays["w"])
    assert list(loaded["keys"]) == ["a", "bb"]
    assert read_header(path)["space"] == "s"
    assert set(HEADER_FIELDS) < set(header)


def test_refusals_name_both_sides(tmp_path: Path) -> None:
    path = tmp_path / "p.npz"
    save_predictor(
        path,
        kind="k",
        space="s",
        device_fingerprint="d",
        feature_version=1,
        arrays={"w": np.ones(2)},
        params={},
    )
    with pytest.raises(PredictorMismatchError, match="'k'"):
        load_predictor_file(path, space="s", device_fingerprint="d", kinds={"other"})
    with pytest.raises(PredictorMismatchError, match="feature_version 1.*feature_version 2"):
        load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"}, feature_version=2)
    with pytest.raises(PredictorMismatchError, match="device d; asked for space 's', device e"):
        load_predictor_file(path, space="s", device_fingerprint="e", kinds={"k"})
    rewrite_predictor_header(path, format_version=FORMAT_VERSION + 5)
    with pytest.raises(
        PredictorFileError, match=f"format_version {FORMAT_VERSION + 5}.*format_version {FORMAT_VERSION}"
    ):
        load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"})


def test_a_header_missing_a_field_or_an_array_is_refused(tmp_path: Path) -> None:
    path = save_predictor(
        tmp_path / "p.npz",
        kind="k",
        space="s",
        device_fingerprint="d",
        feature_version=1,
        arrays={"w": np.ones(2)},
        params={},
    )
    header, arrays = read_predictor_file(path)
    write_predictor_file(path, {name: value for name, value in header.items() if name != "params"}, arrays)
    with pytest.raises(PredictorFileError, match=r"lacks \['params'\]"):
        load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"})
    write_predictor_file(path, header, {})
    with pytest.raises(PredictorFileError, match="array 'w' named in its header is missing"):
        load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"})


def test_refuses_object_arrays_and_pickled_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no objects"):
        save_predictor(
            tmp_path / "x.npz",
            kind="k",
            space="s",
            device_fingerprint="d",
            feature_version=1,
            arrays={"w": np.array([{"a": 1}], dtype=object)},
            params={},
        )
    pickled = tmp_path / "pickled.npz"
    with pickled.open("wb") as handle:
        np.savez(
            handle,
            __header__=np.frombuffer(b'{"format_version": 1}', dtype=np.uint8),
            w=np.array([1, "a"], dtype=object),
        )
    with pytest.raises(PredictorFileError, match="unpickling"):
        load_predictor_file(pickled, space="s", device_fingerprint="d", kinds={"k"})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(PredictorFileError):
        load_predictor_file(tmp_path / "junk.npz", space="s", device_fingerprint="d", kinds={"k"})
    with pytest.raises(ValueError, match="JSON-serialisable and finite"):
        save_predictor(
            tmp_path / "nan.npz",
            kind="k",
            space="s",
            device_fingerprint="d",
            feature_version=1,
            arrays={},
            params={"x": np.nan},
        )


def test_loads_with_allow_pickle_false(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.npz"
    save_predictor(path, kind="k", space="s", device_fingerprint="d", feature_version=1, arrays={}, params={})
    calls = []
    original = np.load

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("allow_pickle"))
        return original(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"})
    assert calls == [False]


def test_a_file_written_before_the_move_loads() -> None:
    content = GOLDEN_CONTENT
    header, arrays = load_predictor_file(
        GOLDEN, space="s", device_fingerprint="0123456789abcdef", kinds={"k"}, feature_version=3
    )
    assert header["format_version"] == 1
    assert header["params"] == content["params"]
    assert sorted(arrays) == sorted(content["arrays"])
    for name, expected in content["arrays"].items():
        np.testing.assert_array_equal(arrays[name], expected)
        assert arrays[name].dtype == expected.dtype


def test_the_same_content_is_written_byte_for_byte_as_before(tmp_path: Path) -> None:
    """Every member of the archive (each array's .npy bytes and the JSON header's) is what the
    format wrote before it moved: a file changes only when its content does."""
    path = save_predictor(tmp_path / "p.npz", **GOLDEN_CONTENT)
    with zipfile.ZipFile(GOLDEN) as before, zipfile.ZipFile(path) as after:
        assert after.namelist() == before.namelist()
        for name in before.namelist():
            assert after.read(name) == before.read(name), name
