"""Option values of any shape, given as a user types them on the command line (Hydra's override
grammar): each command's check passes them or refuses them with an OptionError that names the
option, never another exception. Property-based (hypothesis)."""

from __future__ import annotations

import contextlib
import math

from hydra.errors import HydraException
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf.errors import OmegaConfBaseException

from nas.cli._options import FIT, PIPELINE, SCORE, SEARCH, TRAIN_SUPERNET, OptionError, check_constraints
from nas.cli._options import check_options as check
from tests.nas.cli.test_options import composed

RULES = {"search": SEARCH, "pipeline": PIPELINE, "fit": FIT, "score": SCORE, "train_supernet": TRAIN_SUPERNET}
SCALARS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["nan", "inf", "-inf", "1e999", "null", "true", "false", "''", "abc", "'../x'", "a/b", "..", "1_000"]
    ),
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3).map(lambda v: f"[{','.join(v)}]"), max_leaves=6
)


@st.composite
def override(draw: st.DrawFn) -> tuple[str, str]:
    command = draw(st.sampled_from(sorted(RULES)))
    key = draw(st.sampled_from(sorted(RULES[command])))
    return command, f"{key}={draw(VALUES)}"


@settings(max_examples=150, deadline=None)
@given(override())
def test_any_option_value_passes_or_is_refused_naming_the_option(case: tuple[str, str]) -> None:
    command, text = case
    key = text.split("=", 1)[0]
    try:
        cfg = composed(command, text)
    except (HydraException, OmegaConfBaseException):
        return  # Hydra refuses what its grammar cannot read, with its own message, before hwnas runs
    try:
        check(cfg, RULES[command])
    except OptionError as error:
        assert str(error).startswith(f"{key}="), str(error)
        return
    value = cfg
    for part in key.split("."):
        value = value[part]
    if isinstance(value, int | float) and not isinstance(value, bool):
        assert math.isfinite(value)  # nothing a rule passes is NaN or infinite


BOUNDS = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.text(max_size=3), st.booleans()
)
CONSTRAINTS = st.dictionaries(
    st.sampled_from(["latency_ms", "energy_mj", "params"]),
    st.one_of(
        st.dictionaries(st.sampled_from(["lower", "upper", "other"]), BOUNDS, max_size=3),
        BOUNDS,
        st.lists(BOUNDS, max_size=2),
    ),
    max_size=2,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), CONSTRAINTS))
def test_any_constraints_pass_or_are_refused_naming_the_metric(constraints: dict | None) -> None:
    with contextlib.suppress(OptionError):
        check_constraints(constraints)
        for bounds in (constraints or {}).values():
            given_bounds = [bounds.get(side) for side in ("lower", "upper") if bounds.get(side) is not None]
            assert given_bounds and all(math.isfinite(b) for b in given_bounds)
