"""hwnas-score end to end: a sample of NB201 scored into scores.csv, resumed, an architecture list,
and an unknown proxy refused with the available ones listed."""

from __future__ import annotations

import csv
import logging
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from nas.cli import CONFIG_DIR, config_options
from nas.cli.score import check_proxy_overrides, score_run
from tests.nas.cli.helpers import run_command


def run_score(*overrides: str) -> subprocess.CompletedProcess:
    return run_command("score", "progress=false", *overrides, timeout_s=300)


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def compose_score(*overrides: str):  # noqa: ANN201 - a DictConfig
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("score", overrides=["progress=false", *overrides])


def test_a_sample_is_scored_into_the_issue_columns_and_resumed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # In-process through the function behind the command (the subprocess test below runs the command).
    args = ["proxy=[params,flops]", "proxy_data.batch_size=8"]
    score_run(compose_score("n_archs=4", *args), tmp_path)
    rows = read(tmp_path / "scores.csv")
    assert list(rows[0]) == ["arch", "params", "flops", "seconds"] and len(rows) == 4
    assert all(float(r["params"]) > 0 and float(r["flops"]) > 0 for r in rows)
    assert (tmp_path / "sources.json").is_file()
    with caplog.at_level(logging.INFO, logger="hwnas.score"):
        score_run(compose_score("n_archs=6", *args), tmp_path)
    more = read(tmp_path / "scores.csv")
    assert len(more) == 6 and more[:4] == rows  # the first four kept, not rescored
    assert "4 of 6 architectures already scored" in caplog.text


def test_a_list_with_a_disconnected_cell_leaves_its_cell_empty_and_says_why(tmp_path: Path) -> None:
    listed = tmp_path / "archs.txt"
    disconnected = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"
    listed.write_text(
        f"|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|skip_connect~2|\n{disconnected}\n"
    )
    result = run_score(
        "selection=list",
        f"selection.path={listed}",
        "n_archs=2",
        "proxy=[naswot]",
        "proxy_data.batch_size=8",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read(tmp_path / "run" / "scores.csv")
    assert rows[0]["naswot"] != "" and rows[1] == {**rows[1], "arch": disconnected, "naswot": ""}
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file() and (tmp_path / "run" / "score.log").is_file()
    (failure,) = read(tmp_path / "run" / "failures.csv")
    assert failure["arch"] == disconnected and "does not depend on its input" in failure["error"]


def test_an_unknown_proxy_lists_the_available_ones() -> None:
    with pytest.raises(SystemExit, match="unknown proxy 'nope'; available: ") as error:
        check_proxy_overrides(["n_archs=3", "proxy=[naswot,nope]"])
    assert all(name in str(error.value) for name in config_options("proxy"))
    check_proxy_overrides(["proxy=[naswot]", "+proxy_data.batch_size=8"])  # known: no error


def test_the_aznas_proxies_see_gaussian_noise_whatever_the_runs_data_unless_told() -> None:
    from nas.cli.score import proxies_of

    cfg = compose_score("data=digits", "proxy=[expressivity,progressivity,trainability,meco]")
    sources = {name: proxy.source() for name, proxy in proxies_of(cfg).items()}
    assert all("GaussianImages(" in sources[name] for name in ("expressivity", "progressivity", "trainability"))
    assert "SklearnDigits(" in sources["meco"]
    told = compose_score("data=digits", "proxy=[expressivity]", "proxy.expressivity.data=${proxy_data}")
    assert "SklearnDigits(" in proxies_of(told)["expressivity"].source()
