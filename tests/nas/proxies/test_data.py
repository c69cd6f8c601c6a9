"""ProxyData: one seeded batch per input shape, resized to the network, refused when it cannot fit."""

from __future__ import annotations

import pytest
import torch

from nas.proxies import ProxyBatch, ProxyData
from nas.training import PackagedImages, SklearnDigits


def test_the_batch_is_drawn_once_by_seed_and_resized_to_the_network() -> None:
    data = ProxyData(PackagedImages(count=64), batch_size=8, seed=0)
    batch = data.batch((3, 32, 32), 10)
    assert batch.images.shape == (8, 3, 32, 32) and batch.labels.shape == (8,) and batch.num_classes == 10
    assert data.batch((3, 32, 32), 10) is batch  # drawn once per shape
    assert data.batch((3, 24, 24), 10).images.shape == (8, 3, 24, 24)
    same = ProxyData(PackagedImages(count=64), batch_size=8, seed=0).batch((3, 32, 32), 10)
    other = ProxyData(PackagedImages(count=64), batch_size=8, seed=1).batch((3, 32, 32), 10)
    assert torch.equal(batch.images, same.images) and not torch.equal(batch.images, other.images)


def test_labels_beyond_the_network_classes_and_wrong_channels_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 5 classes"):
        ProxyData(SklearnDigits(), batch_size=64).batch((3, 32, 32), 5)
    with pytest.raises(ValueError, match="1 channels"):
        ProxyData(PackagedImages(count=16), batch_size=4).batch((1, 32, 32), 10)
    with pytest.raises(ValueError, match="at least 2"):
        ProxyData(batch_size=1)


def test_a_batch_splits_into_chunks_and_checks_its_shapes() -> None:
    batch = ProxyBatch(torch.zeros(5, 3, 4, 4), torch.zeros(5, dtype=torch.int64), 2)
    assert [len(c) for c in batch.chunks(2)] == [3, 2]
    with pytest.raises(ValueError, match="cannot split"):
        list(batch.chunks(6))
    with pytest.raises(ValueError, match=r"labels \(N,\)"):
        ProxyBatch(torch.zeros(5, 3, 4, 4), torch.zeros(4, dtype=torch.int64), 2)
