"""SupernetTrainer: checkpoints every epoch, resumes a killed run bit-exactly; evaluate()."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nas import Supernet
from nas.training import (
    CHECKPOINT_FILE,
    CheckpointMismatchError,
    OptimizerConfig,
    SandwichRule,
    SupernetTrainer,
    UniformSampling,
    evaluate,
)
from tests.nas.training.helpers import DigitsSubset, tiny_space

EPOCHS = 3  # 96 images, batches of 32: 3 steps per epoch


def trainer(directory: Path, supernet: Supernet | None = None, **settings) -> SupernetTrainer:  # noqa: ANN003
    return SupernetTrainer(
        supernet if supernet is not None else tiny_space().supernet(),
        DigitsSubset(),
        settings.pop("strategy", UniformSampling()),
        optimizer=OptimizerConfig(lr=0.1),
        epochs=settings.pop("epochs", EPOCHS),
        batch_size=32,
        seed=3,
        checkpoint_dir=directory,
        progress=False,
        **settings,
    )


class Killed(Exception):
    """Stands in for the process dying mid-epoch."""


def kill_after(supernet: Supernet, forwards: int, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = iter(range(forwards))
    original = supernet.forward

    def forward(x, arch):  # noqa: ANN001, ANN202
        if next(calls, None) is None:
            raise Killed
        return original(x, arch)

    monkeypatch.setattr(supernet, "forward", forward)


@pytest.mark.parametrize("strategy", [UniformSampling(), SandwichRule(n_random=1)])
def test_a_killed_run_resumes_to_the_uninterrupted_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, strategy
) -> None:  # noqa: ANN001
    whole = trainer(tmp_path / "whole", strategy=strategy)
    result = whole.fit()
    assert result.resumed_from == 0 and len(result.losses) == EPOCHS and result.images == EPOCHS * 96

    victim = tiny_space().supernet()
    forwards_per_step = 1 if isinstance(strategy, UniformSampling) else 3
    kill_after(victim, forwards_per_step * 4, monkeypatch)  # dies in the second step of epoch 2
    with pytest.raises(Killed):
        trainer(tmp_path / "killed", victim, strategy=strategy).fit()
    checkpoint = torch.load(tmp_path / "killed" / CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["epoch"] == 1
    assert {"model", "optimizer", "scheduler", "numpy_rng", "torch_rng"} <= set(checkpoint)

    resumed = trainer(tmp_path / "killed", strategy=strategy)
    again = resumed.fit()
    assert again.resumed_from == 1 and again.losses == result.losses
    final, expected = resumed.supernet.state_dict(), whole.supernet.state_dict()
    assert all(torch.equal(final[k], expected[k]) for k in expected)
    assert not (tmp_path / "killed" / (CHECKPOINT_FILE + ".tmp")).exists()


def test_a_finished_run_is_not_trained_again(tmp_path: Path) -> None:
    trainer(tmp_path, epochs=1).fit()
    again = trainer(tmp_path, epochs=1).fit()
    assert again.resumed_from == 1 and again.images == 0 and len(again.losses) == 1


def test_a_checkpoint_of_other_settings_is_refused(tmp_path: Path) -> None:
    trainer(tmp_path, epochs=1).fit()
    with pytest.raises(CheckpointMismatchError, match=CHECKPOINT_FILE):
        trainer(tmp_path, epochs=2).fit()
    with pytest.raises(CheckpointMismatchError):
        trainer(tmp_path, epochs=1, strategy=SandwichRule()).fit()


def test_training_lowers_the_loss_and_keeps_global_rng_alone(tmp_path: Path) -> None:
    state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()
    result = trainer(tmp_path, epochs=4).fit()
    assert result.losses[-1] < result.losses[0]
    assert result.images_per_s > 0
    assert torch.equal(state, torch.random.get_rng_state())
    assert np.array_equal(numpy_state, np.random.get_state()[1])


def test_evaluate_gives_deterministic_percentages(tmp_path: Path) -> None:
    space = tiny_space()
    run = trainer(tmp_path, epochs=2)
    run.fit()
    archs = [space.smallest(), space.largest(), space.sample(np.random.default_rng(0))]
    first = evaluate(run.supernet, archs, DigitsSubset(), bn_batches=2, batch_size=32)
    again = evaluate(run.supernet, archs, DigitsSubset(), bn_batches=2, batch_size=32)
    assert first == again and list(first) == [a.string for a in archs]
    assert all(0.0 <= acc <= 100.0 for acc in first.values())
    # All-none cells give one output for every image: at best the share of the commonest class.
    labels = DigitsSubset().splits()[1].tensors[1]
    assert first[space.smallest().string] <= 100.0 * torch.bincount(labels).max().item() / len(labels)


def test_a_diverging_loss_stops_the_run_at_once(tmp_path: Path) -> None:
    """A loss that is no longer finite ends the run where it happens, naming epoch, batch and the
    learning rate, not after every epoch has trained on NaN weights."""
    from nas.training import OptimizerConfig, TrainingDivergedError

    diverging = trainer(tmp_path, epochs=3)
    diverging.optimizer_config = OptimizerConfig(lr=1e12)
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, batch \d+: the training loss is (nan|inf).*lr=1e\+?12"):
        diverging.fit()
