"""Which architectures a profile measures: FLOPs-stratified, uniform, or a validated list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from latency_predictors.measure import (
    SelectionError,
    from_list,
    read_architecture_list,
    stratified_by_flops,
    uniform,
)
from latency_predictors.measure._selection import _spread_order, distinct_samples, flops_of
from nas import Candidate
from nas.cli import CONFIG_DIR
from nas.objectives import Flops
from search_spaces import FBNetSpace, NB201Space
from tests.nas.toy import ToySpace


@pytest.fixture(scope="module")
def fbnet() -> FBNetSpace:
    return FBNetSpace()  # FLOPs by formula: large pools stay fast


def test_stratified_picks_span_the_pool_and_fill_every_quantile_bin(fbnet: FBNetSpace) -> None:
    n, pool = 12, 600
    picks = stratified_by_flops(fbnet, n, np.random.default_rng(3), pool=pool)
    # The same pool, drawn again from the same seed, to compare against.
    candidates = distinct_samples(fbnet, pool, np.random.default_rng(3))
    pool_flops = np.sort([fbnet.flops(a) for a in candidates])
    chosen = np.array([fbnet.flops(a) for a in picks])
    assert len({a.string for a in picks}) == n
    assert chosen.min() == pool_flops[0] and chosen.max() == pool_flops[-1]  # the whole range
    edges = [chunk[0] for chunk in np.array_split(pool_flops, n)][1:]
    bins = np.searchsorted(edges, chosen, side="right")
    assert sorted(bins) == list(range(n))  # one pick in each equal-count FLOPs bin
    uniform_spread = np.array([fbnet.flops(a) for a in uniform(fbnet, n, np.random.default_rng(3))])
    assert np.ptp(chosen) > np.ptp(uniform_spread)


def test_selections_are_deterministic_per_seed(fbnet: FBNetSpace) -> None:
    def strings(seed: int) -> list[str]:
        return [a.string for a in stratified_by_flops(fbnet, 8, np.random.default_rng(seed), pool=200)]

    assert strings(0) == strings(0) and strings(0) != strings(1)
    assert [a.string for a in uniform(fbnet, 5, np.random.default_rng(7))] == [
        a.string for a in uniform(fbnet, 5, np.random.default_rng(7))
    ]


@pytest.mark.parametrize("option", ["stratified", "uniform"])
def test_a_selection_config_is_its_function_with_the_options_bound(fbnet: FBNetSpace, option: str) -> None:
    node = OmegaConf.load(Path(CONFIG_DIR) / "selection" / f"{option}.yaml")
    select = instantiate(node)
    direct = {"stratified": stratified_by_flops, "uniform": uniform}[option]
    assert select(fbnet, 8, np.random.default_rng(0)) == direct(fbnet, 8, np.random.default_rng(0))
    if option == "stratified":
        node.pool = 200
        assert instantiate(node)(fbnet, 8, np.random.default_rng(0)) == stratified_by_flops(
            fbnet, 8, np.random.default_rng(0), pool=200
        )


def test_built_model_flops_are_used_without_a_space_formula() -> None:
    space = NB201Space(channels=4, cells_per_stage=1)
    arch = space.sample(np.random.default_rng(0))
    assert flops_of(space)(arch) == Flops()(Candidate(arch, space))
    picks = stratified_by_flops(space, 3, np.random.default_rng(0), pool=12)
    assert len({a.string for a in picks}) == 3


def test_spread_order_visits_every_bin_once_middle_early() -> None:
    for bins in (1, 2, 5, 8, 13):
        order = _spread_order(bins)
        assert sorted(order) == list(range(bins)) and order[0] == 0
    assert _spread_order(8)[:3] == [0, 4, 2]


def test_bad_counts_and_pools_are_named(fbnet: FBNetSpace) -> None:
    with pytest.raises(SelectionError, match="got 0"):
        uniform(fbnet, 0, np.random.default_rng(0))
    with pytest.raises(SelectionError, match="pool must be an integer >= n"):
        stratified_by_flops(fbnet, 10, np.random.default_rng(0), pool=5)
    with pytest.raises(SelectionError, match="found only 64 distinct toy"):
        stratified_by_flops(ToySpace(), 65, np.random.default_rng(0), pool=65)


def test_from_list_reads_text_and_csv_and_names_the_first_bad_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    space = NB201Space()
    good = [space.sample(np.random.default_rng(s)).string for s in range(3)]
    text = tmp_path / "archs.txt"
    text.write_text(f"# chosen by hand\n{good[0]}\n\n{good[1]}\n{good[0]}\n")
    assert [a.string for a in read_architecture_list(space, text)] == good[:2]  # repeats kept once
    table = tmp_path / "archs.csv"
    table.write_text("index,arch\n" + "".join(f"{i},{s}\n" for i, s in enumerate(good)))
    assert [a.string for a in read_architecture_list(space, table)] == good
    with caplog.at_level("WARNING", logger="hwnas.profile"):
        first = from_list(space, 2, np.random.default_rng(0), path=table)
    assert [a.string for a in first] == good[:2] and "measuring the first n_archs=2" in caplog.text
    listed = OmegaConf.load(Path(CONFIG_DIR) / "selection" / "list.yaml")
    listed.path = str(table)
    assert instantiate(listed)(space, 5, np.random.default_rng(0)) == read_architecture_list(space, table)

    bad = tmp_path / "bad.txt"
    bad.write_text(f"{good[0]}\n{good[1]}\n|conv_9x9~0|+|bogus|\n|also bad|\n")
    with pytest.raises(SelectionError, match=r"bad.txt line 3: '\|conv_9x9~0\|\+\|bogus\|' is not a nb201"):
        read_architecture_list(space, bad)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text(f"index,arch\n0,{good[0]}\n1,nope\n")
    with pytest.raises(SelectionError, match="bad.csv line 3"):
        read_architecture_list(space, bad_csv)
    with pytest.raises(SelectionError, match="needs an 'arch' column"):
        (tmp_path / "cols.csv").write_text("index,network\n0,x\n")
        read_architecture_list(space, tmp_path / "cols.csv")
    with pytest.raises(SelectionError, match="does not exist"):
        read_architecture_list(space, tmp_path / "missing.txt")
