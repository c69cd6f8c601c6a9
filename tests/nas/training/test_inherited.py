"""InheritedAccuracy: what evaluate() reports for a trained checkpoint, per candidate; the wrong
data, space or path refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nas import Candidate, ObjectiveError
from nas.training import CHECKPOINT_FILE, InheritedAccuracy, evaluate
from search_spaces import NB201Space
from tests.nas.training.helpers import DigitsSubset, tiny_space
from tests.nas.training.test_trainer import trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("supernet")
    trainer(directory, epochs=1).fit()
    return directory


def test_values_equal_what_evaluate_reports_for_the_trained_supernet(trained: Path) -> None:
    space = tiny_space()
    archs = [space.largest(), space.sample(np.random.default_rng(1))]
    objective = InheritedAccuracy(trained, DigitsSubset(), bn_batches=2, batch_size=32, seed=5)
    supernet = objective.supernet(space)
    expected = evaluate(supernet, archs, DigitsSubset(), bn_batches=2, batch_size=32, seed=5)
    assert [objective.evaluate(Candidate(a, space)) for a in archs] == [expected[a.string] for a in archs]
    assert InheritedAccuracy(trained / CHECKPOINT_FILE, DigitsSubset()).path == objective.path


def test_other_data_another_space_or_no_checkpoint_are_refused(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="trained on DigitsSubset"):
        InheritedAccuracy(trained, DigitsSubset(n_val=32))
    with pytest.raises(ObjectiveError, match="was trained in"):
        InheritedAccuracy(trained, DigitsSubset()).evaluate(Candidate(NB201Space().largest(), NB201Space()))
    with pytest.raises(FileNotFoundError, match="hwnas-train-supernet"):
        InheritedAccuracy(tmp_path, DigitsSubset())
