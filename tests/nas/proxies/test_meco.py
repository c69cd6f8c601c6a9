"""MeCo on tiny networks whose channel correlations are known by construction or by numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nas.proxies import meco
from nas.proxies._meco import min_correlation_eigenvalues
from tests.nas.proxies.helpers import batch_of, pointwise_conv


def pointwise(weight: np.ndarray) -> nn.Sequential:
    """A 1x1 convolution with the given (out, in) weights: hooked twice (the Sequential and the conv)."""
    return nn.Sequential(pointwise_conv(weight))


def hadamard_rows(count: int) -> np.ndarray:
    """``count`` rows of the 16x16 Hadamard matrix past the constant one: centred, mutually
    orthogonal patterns over 16 positions, i.e. channels with correlation exactly 0."""
    h = np.array([[1.0]])
    for _ in range(4):
        h = np.block([[h, h], [h, -h]])
    return h[1 : 1 + count]


def test_perfectly_correlated_channels_score_zero() -> None:
    # Every output channel is a multiple of the single input channel: correlations are +-1, rank 1.
    image = np.random.default_rng(0).normal(size=(1, 1, 4, 4))
    assert meco(pointwise(np.array([[1.0], [2.0], [-3.0]])), batch_of(image), images=1, channels=None) == pytest.approx(
        0.0, abs=1e-12
    )


def test_uncorrelated_channels_score_one_per_hooked_module() -> None:
    image = hadamard_rows(4).reshape(1, 4, 4, 4)
    assert meco(pointwise(np.eye(4)), batch_of(image), images=1, channels=None) == pytest.approx(2.0)


def test_matches_numpy_corrcoef_eigenvalues() -> None:
    rng = np.random.default_rng(1)
    weight, image = rng.normal(size=(5, 3)), rng.normal(size=(1, 3, 4, 4))
    output = np.einsum("oc,cp->op", weight, image[0].reshape(3, -1))
    expected = 2 * np.linalg.eigvalsh(np.corrcoef(output)).min()
    assert meco(pointwise(weight), batch_of(image), images=1, channels=None) == pytest.approx(expected, rel=1e-5)


def test_images_setting_averages_the_per_image_eigenvalues() -> None:
    rng = np.random.default_rng(2)
    weight, images = rng.normal(size=(4, 4)), rng.normal(size=(3, 4, 3, 3))
    per_image = [meco(pointwise(weight), batch_of(images[i : i + 1]), images=1, channels=None) for i in range(3)]
    assert meco(pointwise(weight), batch_of(images), images=3, channels=None) == pytest.approx(np.mean(per_image))


def test_meco_opt_scales_a_channel_subset_by_c_over_k() -> None:
    # Four mutually uncorrelated channels: any 2 of them have eigenvalues 1, scaled by 4 / 2.
    image = hadamard_rows(4).reshape(1, 4, 4, 4)
    assert meco(pointwise(np.eye(4)), batch_of(image), images=1, channels=2) == pytest.approx(2 * 2.0)
    # A layer with no more channels than k uses them all, unscaled: plain MeCo.
    assert meco(pointwise(np.eye(4)), batch_of(image), images=1, channels=8) == pytest.approx(2.0)


def test_constant_channel_and_too_few_positions_give_exact_zero() -> None:
    maps = torch.as_tensor(hadamard_rows(3)).reshape(1, 3, 16).clone()
    maps[0, 1] = 2.5  # constant: its correlation is undefined (NaN in corrcoef)
    assert min_correlation_eigenvalues(maps).tolist() == [0.0]
    wide = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(0))  # 6 channels, 4 positions
    assert min_correlation_eigenvalues(wide).tolist() == [0.0, 0.0]


def test_bad_settings_name_the_value() -> None:
    image = batch_of(np.zeros((2, 1, 2, 2)))
    with pytest.raises(ValueError, match="images=3"):
        meco(pointwise(np.eye(1)), image, images=3)
    with pytest.raises(ValueError, match="channels=1"):
        meco(pointwise(np.eye(1)), image, images=1, channels=1)
