"""Options checked before a command works (nas.cli._options): each bad value is refused naming the
option, the value and what is allowed; good values, the shipped defaults among them, pass."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from nas.cli import CONFIG_DIR
from nas.cli._options import (
    EXPORT,
    FIT,
    PIPELINE,
    SCORE,
    SEARCH,
    TRAIN_SUPERNET,
    OptionError,
    check_constraints,
    check_options,
)
from tests.nas.cli.helpers import run_command

RULES = {"search": SEARCH, "pipeline": PIPELINE, "fit": FIT, "score": SCORE, "train_supernet": TRAIN_SUPERNET}


def composed(command: str, *overrides: str):  # noqa: ANN201 - a DictConfig
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(command, overrides=list(overrides))


@pytest.mark.parametrize("command", [*RULES, "export"])
def test_the_shipped_defaults_pass(command: str) -> None:
    overrides = ["run_dir=x"] if command == "export" else []
    check_options(composed(command, *overrides), {**RULES, "export": EXPORT}[command])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("budget.n_trials=-5", "budget.n_trials=-5: expected a whole number >= 1"),
        ("budget.n_trials=2.5", "budget.n_trials=2.5: expected a whole number >= 1"),
        ("budget.n_trials=true", "budget.n_trials=True: expected a whole number >= 1"),
        ("budget.timeout_s=-1", "budget.timeout_s=-1: expected null or a finite number > 0"),
        ("budget.timeout_s=inf", "budget.timeout_s=inf: expected null or a finite number > 0"),
        ("reference_point=[nan,100]", "reference_point=[nan, 100]: expected null or a list, each a finite number"),
        ("reference_point=5", "reference_point=5: expected null or a list"),
        ("regret_budgets=[50,-1]", "regret_budgets=[50, -1]: expected null or a list, each a whole number >= 1"),
        ("seed=-1", "seed=-1: expected a whole number >= 0"),
        ("device.name=../../x", "device.name='../../x': expected a name of letters"),
        ("space.name=a/b", "space.name='a/b': expected a name of letters"),
    ],
)
def test_bad_search_options_are_named(override: str, message: str) -> None:
    with pytest.raises(OptionError) as error:
        check_options(composed("search", override), SEARCH)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("constraints", "message"),
    [
        ({"latency_ms": {"upper": 1.0, "lower": 5.0}}, "lower=5.0 is above upper=1.0"),
        ({"latency_ms": {"upper": float("nan")}}, "constraints.latency_ms.upper=nan: expected a finite number"),
        ({"latency_ms": {"upper": "fast"}}, "constraints.latency_ms.upper='fast'"),
        ({"latency_ms": {"bound": "upper90"}}, "give upper=<x> or lower=<x>"),
    ],
)
def test_bad_constraints_are_named(constraints: dict, message: str) -> None:
    with pytest.raises(OptionError, match=message.replace("(", r"\(").replace("[", r"\[")):
        check_constraints(constraints)
    check_constraints({"latency_ms": {"upper": 5, "lower": 1}, "params": {"upper": 1e6}})


def test_other_commands_refuse_their_bad_counts() -> None:
    cases = [
        ("pipeline", "max_rounds=0", "max_rounds=0"),
        ("pipeline", "hv_tolerance=-0.1", "hv_tolerance=-0.1"),
        ("fit", "n_train=0", "n_train=0"),
        ("fit", "metric=power", "metric='power': expected one of latency_ms, energy_mj"),
        ("fit", "source_metric=[energy_mj,power]", "expected one of latency_ms, energy_mj, or a list of them"),
        ("fit", "source_metric=[]", r"source_metric=\[\]: expected one of"),
        ("score", "n_archs=0", "n_archs=0"),
        ("train_supernet", "optimizer.lr=0", "optimizer.lr=0"),
        ("train_supernet", "epochs=1.5", "epochs=1.5"),
    ]
    for command, override, message in cases:
        with pytest.raises(OptionError, match=message):
            check_options(composed(command, override), RULES[command])
    check_options(composed("fit", "metric=energy_mj", "source_metric=[energy_mj,latency_ms]"), FIT)


def test_a_device_name_that_would_leave_the_run_directory_is_refused(tmp_path: Path) -> None:
    """Named by space and device, the run directory is made safe before the command starts; the
    command then refuses the name (exit 2, no traceback) and nothing lands outside ``outputs``."""
    result = run_command("search", "device=table", "device.name=../../escaped", cwd=tmp_path, timeout_s=300)
    said = result.stdout + result.stderr
    assert result.returncode == 2 and "device.name='../../escaped'" in said and "Traceback" not in said
    run_dir = next(line.split("run directory: ")[1] for line in said.splitlines() if "run directory: " in line)
    assert Path(run_dir).name.endswith("_nb201_______escaped") and "/outputs/" in run_dir
    Path(run_dir, "search.log").unlink(missing_ok=True)
