"""The predictor file format (nas.predictor_file): round trip, refusals, no pickle, stable layout."""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
            __header__=np.frombuffer(b'{"format_version": 1, "arrays": {"w": {}}}', dtype=np.uint8),
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


class _Planted:
    """Unpickling this touches a file: the proof that a pickle ran."""

    def __init__(self, witness: Path) -> None:
        self.witness = witness

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.witness),))  # type: ignore[return-value]


def test_a_pickled_member_is_refused_without_running_it(tmp_path: Path) -> None:
    import io
    import json

    witness = tmp_path / "unpickled"
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([_Planted(witness)], dtype=object), allow_pickle=True)
    header = {"format_version": 2, "arrays": {"v": {"dtype": "|O", "shape": [1], "sha256": ""}}}
    path = tmp_path / "p.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__header__.npy", _npy(np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)))
        archive.writestr("v.npy", buffer.getvalue())
    with pytest.raises(PredictorFileError, match="unpickling"):
        read_predictor_file(path)
    assert not witness.exists()
    np.load(path, allow_pickle=True)["v"]  # what the check stands between: numpy would run it
    assert witness.exists()


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def _saved(path: Path) -> Path:
    return save_predictor(path, **GOLDEN_CONTENT)


def _rewrite_member(path: Path, name: str, payload: bytes) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members[name] = payload
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)


def test_an_edited_array_is_refused_by_its_checksum(tmp_path: Path) -> None:
    path = _saved(tmp_path / "p.npz")
    edited = GOLDEN_CONTENT["arrays"]["w"] * 2  # same dtype and shape: only the checksum tells
    _rewrite_member(path, "w.npy", _npy(edited))
    with pytest.raises(PredictorFileError, match="'w' does not match the sha256"):
        load_predictor_file(path, space="s", device_fingerprint="0123456789abcdef", kinds={"k"})


def test_members_the_header_does_not_name_or_cannot_hold_are_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path / "p.npz")
    _rewrite_member(path, "extra.npy", _npy(np.zeros(3)))
    with pytest.raises(PredictorFileError, match=r"members its header does not name: \['extra'\]"):
        read_predictor_file(path)
    path = _saved(tmp_path / "q.npz")
    claims = (
        np.lib.format.magic(1, 0)
        + b"\x76\x00"
        + ("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000,), }".ljust(117) + "\n").encode()
    )
    _rewrite_member(path, "w.npy", claims + b"\x00" * 64)  # 8 GB claimed, 64 bytes given
    with pytest.raises(PredictorFileError, match="claims 8,000,000,000 bytes"):
        read_predictor_file(path)


def test_a_file_that_would_decompress_past_the_limit_is_refused_before_decompressing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nas.predictor_file as predictor_file

    path = _saved(tmp_path / "p.npz")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.npy", b"\x00" * 4_000_000)  # 4 MB of zeros, a few KB compressed
    assert path.stat().st_size < 100_000
    monkeypatch.setattr(predictor_file, "MAX_BYTES", 1_000_000)
    opened = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: opened.append(a) or pytest.fail("decompressed"))
    with pytest.raises(PredictorFileError, match=r"would decompress to 4,00\d,\d{3} bytes, above the 1,000,000"):
        read_predictor_file(path)
    assert not opened


def test_a_file_written_before_the_move_loads(caplog: pytest.LogCaptureFixture) -> None:
    """Format 1 (no checksums) loads, upgraded, with a warning that an edit cannot be detected."""
    content = GOLDEN_CONTENT
    header, arrays = load_predictor_file(
        GOLDEN, space="s", device_fingerprint="0123456789abcdef", kinds={"k"}, feature_version=3
    )
    assert header["format_version"] == FORMAT_VERSION == 2
    assert "before predictor files carried checksums" in caplog.text
    assert header["params"] == content["params"]
    assert sorted(arrays) == sorted(content["arrays"])
    for name, expected in content["arrays"].items():
        np.testing.assert_array_equal(arrays[name], expected)
        assert arrays[name].dtype == expected.dtype


def test_the_same_content_is_written_byte_for_byte_as_before(tmp_path: Path) -> None:
    """Every array member of the archive is the .npy bytes the format wrote before it moved, and
    the header says the same but for the version and the checksums it added: a file changes only
    when its content does."""
    path = save_predictor(tmp_path / "p.npz", **GOLDEN_CONTENT)
    with zipfile.ZipFile(GOLDEN) as before, zipfile.ZipFile(path) as after:
        assert after.namelist() == before.namelist()
        for name in before.namelist():
            if name != "__header__.npy":
                assert after.read(name) == before.read(name), name
    old, new = read_header(GOLDEN), read_header(path)
    assert new["format_version"] == 2 and old["format_version"] == 1
    assert {n: {k: v for k, v in spec.items() if k != "sha256"} for n, spec in new["arrays"].items()} == old["arrays"]
    assert {k: v for k, v in new.items() if k not in ("format_version", "arrays")} == {
        k: v for k, v in old.items() if k not in ("format_version", "arrays")
    }


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_damage_to_a_file_is_read_or_refused_as_a_predictor_file_error(
    data: st.DataObject, tmp_path_factory
) -> None:
    """Bytes flipped, cut, inserted or a member recompressed: the reader returns checked content or
    raises PredictorFileError, never another exception (zlib, struct, unicode, numpy...)."""
    import io

    path = tmp_path_factory.mktemp("damaged") / "p.npz"
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(
            buffer, "w", compression=data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
        ) as archive,
        zipfile.ZipFile(_saved(path)) as original,
    ):
        for name in original.namelist():
            archive.writestr(name, original.read(name))
    raw = bytearray(buffer.getvalue())
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            raw[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del raw[at : at + data.draw(st.integers(1, 64))]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    path.write_bytes(bytes(raw))
    try:
        header, arrays = read_predictor_file(path)
    except PredictorFileError:
        return
    assert isinstance(header, dict) and all(isinstance(a, np.ndarray) for a in arrays.values())


@settings(max_examples=200, deadline=None)
@given(
    header=st.dictionaries(
        st.sampled_from([*HEADER_FIELDS, "arrays"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
            max_leaves=8,
        ),
    )
)
def test_any_header_content_loads_or_is_refused_as_a_file_error(header: dict, tmp_path_factory) -> None:
    """Any JSON in the header (wrong types, missing fields, odd array specs): PredictorFileError
    or PredictorMismatchError, never another exception."""
    import json

    path = tmp_path_factory.mktemp("header") / "p.npz"
    raw = np.frombuffer(json.dumps({"format_version": 2, **header}).encode(), dtype=np.uint8)
    with path.open("wb") as handle:
        np.savez(handle, __header__=raw, w=np.arange(3.0))
    with contextlib.suppress(PredictorFileError, PredictorMismatchError):  # anything else fails
        load_predictor_file(path, space="s", device_fingerprint="d", kinds={"k"})
