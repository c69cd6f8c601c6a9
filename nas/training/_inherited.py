"""Accuracy inherited from a trained supernet, as an objective a search can maximise."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from nas._architecture import Architecture
from nas._capabilities import SupernetSpace
from nas._objective import Candidate, Cost, Direction, Objective, ObjectiveError
from nas._supernet import Supernet
from nas.errors import MissingFileError
from nas.training._bn import recalibrated_subnet
from nas.training._data import ImageDataset
from nas.training._sampling import fit_input
from nas.training._trainer import CHECKPOINT_FILE, subnet_accuracy, top1_percent


class InheritedAccuracy(Objective):
    """Top-1 accuracy (percent, on ``data``'s validation split) of each architecture's subnet with
    the weights of a supernet trained by ``hwnas-train-supernet``, after recomputing its BN
    statistics on ``bn_batches`` training batches (one seeded shuffle, the same for every
    architecture): what that command's ``inherited_accuracy.csv`` reports, for any architecture.

    ``checkpoint`` is the training run's directory or its ``checkpoint.pt``. The checkpoint
    records the space and the data it was trained on; another space or other data is refused
    naming both (an inherited accuracy on images the supernet never saw means nothing). The
    supernet is loaded, and the data read, at the first call.
    """

    direction = Direction.MAXIMIZE
    cost = Cost.PROXY

    def __init__(
        self,
        checkpoint: str | Path,
        data: ImageDataset,
        name: str = "accuracy",
        *,
        bn_batches: int = 4,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__(name)
        path = Path(checkpoint).expanduser()
        self.path = path / CHECKPOINT_FILE if path.is_dir() else path
        if not self.path.is_file():
            raise MissingFileError(
                f"no supernet checkpoint at {self.path}: give hwnas-train-supernet's run directory or its {CHECKPOINT_FILE}"
            )
        self.data = data
        self.bn_batches = bn_batches
        self.batch_size = batch_size
        self.seed = seed
        self._state: dict[str, Any] = torch.load(self.path, map_location="cpu", weights_only=True)
        trained_on = self._state["settings"]["data"]
        if trained_on != repr(data):
            raise ValueError(
                f"supernet {self.path} was trained on {trained_on}; its inherited accuracy is measured on "
                f"the same data, but this objective was given {data!r} (set data= as in the training run)"
            )
        self._supernet: Supernet | None = None
        self._calibration: list[Any] = []
        self._val: DataLoader | None = None

    def describe(self) -> str:
        return f"top-1 accuracy (percent) inherited from the supernet {self.path}, BN recalibrated"

    def source(self) -> str:
        return f"inherited accuracy of {self.path} on {self.data!r}, bn_batches {self.bn_batches}, seed {self.seed}"

    def supernet(self, space: SupernetSpace) -> Supernet:
        """The trained supernet (loaded once), refused for another space than it was trained in."""
        if self._supernet is None:
            if not isinstance(space, SupernetSpace):
                raise ObjectiveError(f"space {space.name!r} has no supernet to inherit weights from")
            supernet = space.supernet()
            if self._state["settings"]["space"] != repr(supernet.space):
                raise ObjectiveError(
                    f"supernet {self.path} was trained in {self._state['settings']['space']}, not in {supernet.space!r}"
                )
            supernet.load_state_dict(self._state["model"])
            train, val = self.data.splits()
            shuffled = DataLoader(
                train, batch_size=self.batch_size, shuffle=True, generator=torch.Generator().manual_seed(self.seed)
            )
            self._calibration = list(itertools.islice(shuffled, self.bn_batches))
            self._val = DataLoader(val, batch_size=self.batch_size)
            self._supernet = supernet.eval()
        return self._supernet

    def __call__(self, candidate: Candidate) -> float:
        supernet = self.supernet(candidate.space)
        return subnet_accuracy(supernet, candidate.arch, self._calibration, self._val)

    def subnet(self, space: SupernetSpace, arch: Architecture) -> nn.Module:
        """``arch``'s subnet with the trained weights, in eval mode, BN statistics recomputed on
        the same batches as its accuracy is (what hwnas-export deploys)."""
        return recalibrated_subnet(self.supernet(space), arch, self._calibration).eval()

    def accuracy_of(
        self, space: SupernetSpace, arch: Architecture, classify: Callable[[torch.Tensor], torch.Tensor]
    ) -> float:
        """Top-1 accuracy (percent) of ``classify`` on the validation images this objective scores
        ``arch`` on: for a deployed file of ``arch``'s subnet (an int8 model), to set beside
        :meth:`__call__`'s."""
        supernet = self.supernet(space)
        assert self._val is not None
        return top1_percent(classify, supernet, arch, self._val)

    def calibration_images(self, space: SupernetSpace, arch: Architecture) -> torch.Tensor:
        """The training images BN is recalibrated on, at ``arch``'s input resolution: what a
        quantised file of the subnet is calibrated on too."""
        supernet = self.supernet(space)
        return torch.cat([fit_input(images, supernet, arch) for images, _ in self._calibration])
