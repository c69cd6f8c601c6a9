"""The check of an embedded LightGBM model (latency_predictors.predictors._lightgbm_text): what
LightGBM writes passes; edits that abort LightGBM's loader are refused; and no edit the check lets
through crashes LightGBM (checked in a child process, where an abort cannot take pytest down)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from latency_predictors.predictors._lightgbm_text import check_model_text
from latency_predictors.predictors._trees import model_array, model_from_array
from nas import PredictorFileError

FEATURES = 7


def _model(target: str = "linear") -> str:
    import lightgbm

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, FEATURES))
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values: splits with a missing-value type
    y = np.zeros(400) if target == "constant" else np.nan_to_num(2 * x[:, 0] + x[:, 3]) + rng.normal(size=400)
    params = {"verbose": -1, "num_leaves": 15, "min_data_in_leaf": 5, "seed": 0, "num_threads": 1}
    return lightgbm.train(params, lightgbm.Dataset(x, y), num_boost_round=12).model_to_string()


@pytest.fixture(scope="module")
def text() -> str:
    return _model()


def test_what_lightgbm_writes_passes_and_loads(text: str) -> None:
    check_model_text(text)
    check_model_text(_model("constant"))  # one-leaf trees
    booster = model_from_array(model_array(__import__("lightgbm").Booster(model_str=text)))
    assert booster.num_trees() == 12


def _edit_first(text: str, key: str, first_value: str) -> str:
    """``key``'s first value in the first tree replaced by ``first_value``."""
    match = re.search(rf"^{key}=(\S+)", text, flags=re.M)
    assert match is not None
    return text[: match.start(1)] + first_value + text[match.end(1) :]


def _resized(text: str) -> str:
    """``tree_sizes`` recomputed from the trees, as a deliberate editor would."""
    starts = [m.start() for m in re.finditer(r"^Tree=\d+$", text, flags=re.M)] + [text.index("end of trees")]
    sizes = " ".join(str(len(text[a:b].encode())) for a, b in zip(starts, starts[1:]))
    return re.sub(r"^tree_sizes=.*$", f"tree_sizes={sizes}", text, count=1, flags=re.M)


EDITS = {
    "a_longer_line": (lambda t: _edit_first(t, "leaf_value", "0.50000000001"), "tree_sizes does not match tree 1"),
    "feature_past_the_last": (lambda t: _resized(_edit_first(t, "split_feature", "9")), "split_feature outside"),
    "child_before_parent": (lambda t: _resized(_edit_first(t, "left_child", "0")), "not a later node"),
    "leaf_out_of_range": (lambda t: _resized(_edit_first(t, "left_child", "-99")), "has leaf 98 of 15"),
    "truncated": (lambda t: t[: len(t) // 2], "tree_sizes does not match|end of trees"),
    "num_leaves": (lambda t: _resized(_edit_first(t, "num_leaves", "9")), "values; expected"),
    "text": (lambda t: _resized(_edit_first(t, "leaf_value", "0x1")), "not a number"),
    "categorical": (lambda t: _resized(_edit_first(t, "decision_type", "1")), "numerical split"),
    "version": (lambda t: t.replace("version=v4", "version=v9"), "version 'v9'"),
}


@pytest.mark.parametrize("name", EDITS)
def test_edits_are_refused_naming_what(text: str, name: str) -> None:
    edit, message = EDITS[name]
    with pytest.raises(ValueError, match=message):
        check_model_text(edit(text))
    with pytest.raises(PredictorFileError, match="refit the predictor or restore the file"):
        model_from_array(np.frombuffer(edit(text).encode(), dtype=np.uint8))


def _mutations(text: str, count: int, rng: np.random.Generator) -> list[str]:
    """Edits that keep the file's byte size (so tree_sizes alone does not refuse them): a run of
    digits, somewhere in the trees, replaced by as many random digits."""
    trees, end = text.index("Tree=0"), text.index("end of trees")
    spans = [m.span() for m in re.finditer(r"\d+", text) if trees < m.start() < end]
    edited = []
    for _ in range(count):
        start, end = spans[rng.integers(len(spans))]
        digits = "".join(str(d) for d in rng.integers(0, 10, size=end - start))
        edited.append(text[:start] + digits + text[end:])
    return edited


LOADER = """
import sys, numpy as np, lightgbm
x = np.random.default_rng(0).normal(size=(64, int(sys.argv[2])))
x[::7, 0] = np.nan
for path in sys.argv[3:]:
    booster = lightgbm.Booster(model_str=open(path).read())
    booster.predict(x, num_threads=1)
print("loaded", len(sys.argv) - 3)
"""


def test_no_edit_the_check_lets_through_crashes_lightgbm(text: str, tmp_path: Path) -> None:
    accepted = []
    for number, edited in enumerate(_mutations(text, 400, np.random.default_rng(0))):
        try:
            check_model_text(edited)
        except ValueError:
            continue
        path = tmp_path / f"{number}.txt"
        path.write_text(edited)
        accepted.append(str(path))
    assert 50 < len(accepted) < 400  # some edits pass (thresholds, leaf values), some are refused
    loaded = subprocess.run(
        [sys.executable, "-c", LOADER, "-", str(FEATURES), *accepted], capture_output=True, text=True, timeout=300
    )
    assert loaded.returncode == 0, (loaded.returncode, loaded.stderr[-2000:])
    assert loaded.stdout.split()[-2:] == ["loaded", str(len(accepted))]
