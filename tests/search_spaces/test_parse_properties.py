"""Every space's architecture parser, on any text: it parses, or raises the project's own
ArchitectureError (which the commands explain), never another exception. Property-based
(hypothesis): arbitrary text, and valid strings edited a character at a time."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas import Architecture, ArchitectureError, SearchSpace
from search_spaces import FBNetSpace, NB201Space, OFASpace

SPACES = {"nb201": NB201Space(), "fbnet": FBNetSpace(), "ofa": OFASpace()}
VALID = {
    name: [space.sample(np.random.default_rng(seed)).string for seed in range(5)] for name, space in SPACES.items()
}
ALPHABET = st.sampled_from(list('{}[]"|~+:,.-0123456789eE ') + ["nor_conv_3x3", "ks", "none", "k3_e6", "\x00", "é"])


def _parses_or_explains(space: SearchSpace, text: str) -> None:
    with contextlib.suppress(ArchitectureError):  # any other exception fails the test
        assert isinstance(space.parse(text), Architecture)


@st.composite
def edited(draw: st.DrawFn, name: str) -> str:
    """A valid string of the space with a few characters inserted, deleted or replaced."""
    text = draw(st.sampled_from(VALID[name]))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "repeat"]))
        piece = draw(ALPHABET)
        if action == "insert":
            text = text[:at] + piece + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + 1 :]
        elif action == "replace":
            text = text[:at] + piece + text[at + 1 :]
        else:
            text = text[:at] + text[at : at + 8] * draw(st.integers(2, 50)) + text[at:]
    return text


@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_text_parses_or_raises_architecture_error(name: str, data: st.DataObject) -> None:
    text = data.draw(st.one_of(st.text(max_size=300), st.lists(ALPHABET, max_size=60).map("".join), edited(name)))
    _parses_or_explains(SPACES[name], text)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,  # nesting past the recursion limit
        "{" + '"a":' * 50_000,
        '{"r": 1' + "0" * 5_000 + "}",  # an integer past Python's digit limit
        '{"ks":[3],"ks":[3],"e":[],"d":[],"r":224}',  # a repeated key: not silently the last one
        VALID["ofa"][0].rsplit(":", 1)[0] + ":224.0}",  # 224.0 is not a resolution of the table's
    ],
    ids=["deep_lists", "deep_objects", "huge_int", "repeated_key", "float_resolution"],
)
def test_ofa_strings_that_once_escaped_are_architecture_errors(text: str) -> None:
    with pytest.raises(ArchitectureError):
        SPACES["ofa"].parse(text)
