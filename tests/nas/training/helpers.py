"""A tiny supernet and data for fast training tests: NB201 at C=4, one cell per stage, 8x8 digits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, TensorDataset

from nas.training import ImageDataset, SklearnDigits
from search_spaces import NB201Space


class SmallNB201(NB201Space):
    """NB201 with 8x8 inputs (the skeleton halves 8 -> 4 -> 2), so a step takes milliseconds."""

    input_shape = (3, 8, 8)


def tiny_space() -> SmallNB201:
    return SmallNB201(channels=4, cells_per_stage=1)


@dataclass(frozen=True)
class DigitsSubset(ImageDataset):
    """The first ``n_train`` / ``n_val`` images of the digits' seeded split, at 8x8."""

    n_train: int = 96
    n_val: int = 64

    num_classes = 10
    input_shape = (3, 8, 8)

    def splits(self) -> tuple[Dataset, Dataset]:
        train, val = SklearnDigits(image_size=8).splits()
        return _head(train, self.n_train), _head(val, self.n_val)


def _head(dataset: TensorDataset, n: int) -> TensorDataset:
    images, labels = dataset.tensors
    return TensorDataset(images[:n].clone(), labels[:n].clone())


def batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = DigitsSubset(n_train=n).splits()[0].tensors
    return images, labels
