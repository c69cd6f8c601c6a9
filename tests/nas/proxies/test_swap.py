"""SWAP's count of distinct sign patterns, checked by hand and against numpy on one-ReLU networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.proxies import ProxyError, swap
from nas.proxies._swap import gaussian_reinit
from tests.nas.proxies.helpers import batch_of, pointwise_conv


def conv_relu(weight: np.ndarray) -> nn.Sequential:
    return nn.Sequential(pointwise_conv(weight), nn.ReLU())


def test_one_relu_count_by_hand() -> None:
    # 3 samples, 1 channel, 2x2 positions = 4 neurons; their sign patterns over the samples are
    # (+,+,-), (+,+,-), (-,-,-), (+,-,+): 3 distinct.
    x = np.array([[1, 2, -1, 3], [4, 5, -2, -6], [-7, -8, -3, 9]]).reshape(3, 1, 2, 2)
    assert math.exp(swap(nn.Sequential(nn.ReLU()), batch_of(x), samples=3, gaussian_init=False)) == pytest.approx(3)


@pytest.mark.parametrize("samples", [16, 70])  # 70: patterns span two packed 64-bit words
def test_count_equals_numpy_distinct_sign_rows(samples: int) -> None:
    rng = np.random.default_rng(0)
    weight, images = rng.normal(size=(3, 2)), rng.normal(size=(samples, 2, 3, 3))
    pre = np.einsum("oc,ncp->nop", weight, images.reshape(samples, 2, -1)).reshape(samples, -1)
    expected = len(np.unique(pre.T > 0, axis=0))
    score = swap(conv_relu(weight), batch_of(images), samples=samples, gaussian_init=False)
    assert math.exp(score) == pytest.approx(expected)


def test_regularisation_subtracts_the_squared_distance_of_the_parameter_count() -> None:
    rng = np.random.default_rng(1)
    model, batch = conv_relu(rng.normal(size=(4, 2))), batch_of(rng.normal(size=(16, 2, 3, 3)))
    plain = swap(model, batch, gaussian_init=False)
    kparams = 8 / 1e3
    regular = swap(model, batch, gaussian_init=False, mu_kparams=1.0, sigma_kparams2=2.0)
    assert regular == pytest.approx(plain - (kparams - 1.0) ** 2 / 2.0)
    assert swap(model, batch, gaussian_init=False, mu_kparams=kparams, sigma_kparams2=2.0) == pytest.approx(plain)


def test_repeats_average_counts_of_fresh_gaussian_draws() -> None:
    rng = np.random.default_rng(2)
    batch = batch_of(rng.normal(size=(16, 2, 3, 3)))
    model = conv_relu(rng.normal(size=(6, 2)))
    counts = []
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        gaussian_reinit(model, generator)
        counts.append(math.exp(swap(model, batch, gaussian_init=False)))
    assert math.exp(swap(conv_relu(np.ones((6, 2))), batch, repeats=3, seed=5)) == pytest.approx(np.mean(counts))


def test_bad_settings_and_networks() -> None:
    batch = batch_of(np.ones((4, 1, 2, 2)))
    with pytest.raises(ValueError, match="samples=5"):
        swap(nn.Sequential(nn.ReLU()), batch, samples=5)
    with pytest.raises(ValueError, match="sigma_kparams2=None"):
        swap(nn.Sequential(nn.ReLU()), batch, samples=4, mu_kparams=1.0)
    with pytest.raises(ProxyError, match="ReLU"):
        swap(nn.Sequential(nn.Flatten(), nn.ReLU()), batch, samples=4)
