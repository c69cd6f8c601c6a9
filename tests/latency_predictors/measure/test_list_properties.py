"""Architecture list files (``hwnas-profile archs_file=``), and the device records beside profiles,
on any bytes: read, or refused with the project's own error naming the file, never another
exception. Property-based (hypothesis)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from latency_predictors.measure import read_architecture_list
from latency_predictors.measure._selection import SelectionError
from nas import Architecture, Device, HwnasError, read_device_record
from search_spaces import NB201Space

SPACE = NB201Space()
VALID = [SPACE.sample(np.random.default_rng(seed)).string for seed in range(4)]
# Pieces a list file is made of, and what breaks one: quotes, separators, NULs, invalid UTF-8.
PIECES = st.sampled_from(
    [*VALID, "\n", "\r\n", ",", '"', "#", "arch", "index", " ", "\x00", "|", "~", "+", "nor_conv_3x3", "é"]
)


@st.composite
def list_bytes(draw: st.DrawFn) -> bytes:
    text = "".join(draw(st.lists(PIECES, max_size=30)))
    data = text.encode("utf-8")
    if draw(st.booleans()):  # a stray byte that is not UTF-8 (a file saved in another encoding)
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xe9", b"\xc3"])) + data[at:]
    return data


def _read_or_refuse(suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"archs{suffix}"
        path.write_bytes(data)
        try:
            archs = read_architecture_list(SPACE, path)
        except SelectionError as error:
            assert str(path) in str(error)
            return
        assert archs and all(isinstance(a, Architecture) for a in archs)
        assert len({a.string for a in archs}) == len(archs)


@settings(max_examples=300, deadline=None)
@given(list_bytes())
def test_a_text_list_is_read_or_refused_naming_the_file(data: bytes) -> None:
    _read_or_refuse(".txt", data)


@settings(max_examples=300, deadline=None)
@given(list_bytes(), st.booleans())
def test_a_csv_list_is_read_or_refused_naming_the_file(data: bytes, header: bool) -> None:
    _read_or_refuse(".csv", (b"index,arch\n" if header else b"") + data)


JSON_PIECES = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        '"cpu"',
        '"name"',
        '"threads"',
        '"fingerprint"',
        ":",
        ",",
        "1",
        "-1",
        "1e999",
        "null",
        "true",
        '"x"',
        "NaN",
        " ",
        "\x00",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(JSON_PIECES, max_size=25))
def test_a_device_record_is_read_or_refused(pieces: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "device.json").write_text("".join(pieces))
        with contextlib.suppress(HwnasError):
            assert isinstance(read_device_record(folder), dict)
            assert isinstance(Device.read(folder), Device)
