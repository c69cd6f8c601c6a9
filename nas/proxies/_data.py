"""The batch proxies see: drawn once, by seed, from any image source of :mod:`nas.training`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from nas.proxies._batch import ProxyBatch
from nas.training import ImageDataset, PackagedImages


@dataclass(frozen=True)
class ProxyData:
    """``batch_size`` images of ``dataset``'s training split, chosen by ``seed``.

    The default source is :class:`~nas.training.PackagedImages` (crops of real photographs that
    ship inside installed packages: nothing to download). Images are resized to each network's
    input size when it differs (Once-for-All's resolution gene), so one source serves every space.
    """

    dataset: ImageDataset = field(default_factory=PackagedImages)
    batch_size: int = 64
    seed: int = 0
    _cache: dict[tuple[tuple[int, ...], int], ProxyBatch] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError(f"ProxyData(batch_size={self.batch_size}): proxies compare images, give at least 2")

    def describe(self) -> str:
        return f"{self.dataset!r}, batch {self.batch_size}, seed {self.seed}"

    def batch(self, input_shape: tuple[int, ...], num_classes: int) -> ProxyBatch:
        """The batch for a network of this input shape (channels, height, width) and classes."""
        key = (tuple(input_shape), num_classes)
        if key not in self._cache:
            self._cache[key] = self._draw(tuple(input_shape), num_classes)
        return self._cache[key]

    def _draw(self, input_shape: tuple[int, ...], num_classes: int) -> ProxyBatch:
        train, _ = self.dataset.splits()
        if len(train) < self.batch_size:
            raise ValueError(
                f"{self.dataset!r} has {len(train)} training images, fewer than batch_size={self.batch_size}"
            )
        picked = np.random.default_rng(self.seed).choice(len(train), size=self.batch_size, replace=False)
        images, labels = zip(*(train[int(i)] for i in picked))
        batch = torch.stack([torch.as_tensor(image, dtype=torch.float32) for image in images])
        if batch.shape[1] != input_shape[0]:
            raise ValueError(
                f"{self.dataset!r} gives {batch.shape[1]}-channel images; the network takes {input_shape[0]} channels"
            )
        if tuple(batch.shape[2:]) != tuple(input_shape[1:]):
            batch = torch.nn.functional.interpolate(
                batch, size=tuple(input_shape[1:]), mode="bilinear", align_corners=False, antialias=True
            )
        return ProxyBatch(batch.contiguous(), torch.as_tensor(labels, dtype=torch.int64), num_classes)
