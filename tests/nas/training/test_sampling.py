"""Sampling strategies: what each step runs, and that a few steps lower the training loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas import Architecture, Supernet
from nas.training import SamplingStrategy, SandwichRule, UniformSampling
from tests.nas.training.helpers import batch, tiny_space


class Recording(Supernet):
    """Delegates to a supernet and records the architectures it is run with."""

    def __init__(self, inner: Supernet) -> None:
        super().__init__(inner.space)
        self.inner = inner
        self.calls: list[Architecture] = []

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        self.calls.append(arch)
        return self.inner(x, arch)

    def subnet(self, arch: Architecture) -> torch.nn.Module:
        return self.inner.subnet(arch)


def mean_loss(supernet: Supernet, archs: list[Architecture], images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():  # train-mode BN: batch statistics, as during training
        return float(np.mean([F.cross_entropy(supernet(images, a), labels).item() for a in archs]))


@pytest.mark.parametrize("strategy", [UniformSampling(), UniformSampling(n_per_step=2), SandwichRule()])
def test_a_few_steps_lower_the_training_loss(strategy: SamplingStrategy) -> None:
    space = tiny_space()
    supernet = space.supernet().train()
    images, labels = batch(32)
    rng = np.random.default_rng(0)
    probe = [space.largest(), *(space.sample(np.random.default_rng(seed)) for seed in range(3))]
    before = mean_loss(supernet, probe, images, labels)
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.1, momentum=0.9)
    for _ in range(15):
        optimizer.zero_grad(set_to_none=True)
        loss = strategy.step(supernet, images, labels, rng)
        assert np.isfinite(loss)
        optimizer.step()
    assert mean_loss(supernet, probe, images, labels) < 0.9 * before


def test_uniform_draws_from_the_given_generator() -> None:
    space = tiny_space()
    images, labels = batch(8)
    runs = []
    for _ in range(2):
        recording = Recording(space.supernet().train())
        UniformSampling(n_per_step=3).step(recording, images, labels, np.random.default_rng(5))
        runs.append(recording.calls)
    expected_rng = np.random.default_rng(5)
    assert runs[0] == runs[1] == [space.sample(expected_rng) for _ in range(3)]


def test_sandwich_runs_largest_then_smallest_then_random() -> None:
    space = tiny_space()
    recording = Recording(space.supernet().train())
    images, labels = batch(8)
    SandwichRule(n_random=2).step(recording, images, labels, np.random.default_rng(1))
    expected_rng = np.random.default_rng(1)
    assert recording.calls == [
        space.largest(),
        space.smallest(),
        space.sample(expected_rng),
        space.sample(expected_rng),
    ]


def test_sandwich_distils_the_largest_predictions() -> None:
    # With no random architectures and the smallest equal to the teacher's logits shape, the
    # student's gradient is zero exactly when it predicts the teacher's distribution.
    space = tiny_space()
    supernet = space.supernet().train()
    images, labels = batch(8)
    loss = SandwichRule(n_random=0).step(supernet, images, labels, np.random.default_rng(0))
    with torch.no_grad():
        teacher = supernet(images, space.largest())
        ce = F.cross_entropy(teacher, labels).item()
        kl = F.kl_div(supernet(images, space.smallest()).log_softmax(-1), teacher.softmax(-1), reduction="batchmean")
    assert loss == pytest.approx((ce + kl.item()) / 2, rel=1e-4)


@pytest.mark.parametrize("bad", [lambda: UniformSampling(n_per_step=0), lambda: SandwichRule(n_random=-1)])
def test_bad_counts_are_refused(bad) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        bad()
