"""NB201Space.flops: the formula equals what nas.objectives.Flops counts on the built network."""

from __future__ import annotations

import time

import numpy as np
import pytest

from nas import ArchitectureError
from nas._objective import Candidate
from nas.objectives._model_stats import Flops
from search_spaces import NB201Space
from search_spaces.nb201._ops import OPS
from search_spaces.nb201._space import GENE_NAMES


def counted(space: NB201Space, arch) -> int:
    value = Flops()(Candidate(arch, space))
    assert value == int(value)
    return int(value)


def uniform(space: NB201Space, op: str):
    return space.architecture({name: op for name in GENE_NAMES})


@pytest.mark.parametrize("op", OPS)
def test_uniform_cells_match_flop_counter(op: str) -> None:
    space = NB201Space()
    arch = uniform(space, op)
    assert space.flops(arch) == counted(space, arch)


def test_published_all_conv3x3_value() -> None:
    # NB201 publishes 220.12 M multiply-accumulates for this cell; Flops counts 2 x MACs.
    space = NB201Space()
    assert space.flops(space.largest()) / 2e6 == pytest.approx(220.12, abs=0.01)


def test_sampled_architectures_match_flop_counter() -> None:
    space = NB201Space()
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = space.sample(rng)
        assert space.flops(arch) == counted(space, arch), arch.string


def test_non_default_configuration_matches_flop_counter() -> None:
    space = NB201Space(num_classes=100, channels=8, cells_per_stage=2)
    rng = np.random.default_rng(0)
    archs = [uniform(space, op) for op in OPS] + [space.sample(rng) for _ in range(5)]
    for arch in archs:
        assert space.flops(arch) == counted(space, arch), arch.string
    assert space.flops(archs[0]) != NB201Space().flops(uniform(NB201Space(), OPS[0]))


def test_flops_builds_no_module(monkeypatch: pytest.MonkeyPatch) -> None:
    space = NB201Space()
    arch = space.sample(np.random.default_rng(1))
    expected = counted(space, arch)

    def refuse(*args, **kwargs):
        raise AssertionError("flops must not build a module")

    monkeypatch.setattr(NB201Space, "build", refuse)
    monkeypatch.setattr("search_spaces.nb201._space.build_network", refuse)
    start = time.perf_counter()
    for _ in range(1000):
        value = space.flops(arch)
    assert time.perf_counter() - start < 1.0
    assert value == expected
    assert isinstance(value, int)


def test_flops_rejects_other_spaces() -> None:
    from search_spaces import FBNetSpace

    other = FBNetSpace().sample(np.random.default_rng(0))
    with pytest.raises(ArchitectureError):
        NB201Space().flops(other)
