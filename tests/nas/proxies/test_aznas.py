"""AZ-NAS's components against hand-computed facts, and its block rule on every space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.proxies import (
    ProxyBatch,
    ProxyError,
    az_nas_scores,
    block_features,
    expressivity,
    progressivity,
    trainability,
)
from nas.proxies._aznas import spectral_entropy
from search_spaces import FBNetSpace, NB201Space, OFASpace


def _batch(channels: int, size: int, count: int = 8) -> ProxyBatch:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(count, channels, size, size, generator=generator)
    return ProxyBatch(images, torch.arange(count) % 2, 2)


def _hadamard_features() -> torch.Tensor:
    """(2, 7, 2, 2) features whose 8 positions x 7 channels are the columns 2..8 of an 8x8
    Hadamard matrix: zero-mean, orthogonal, equal norm, so the channel covariance is 1 * I."""
    h = torch.tensor([[1.0]])
    for _ in range(3):
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h[:, 1:].reshape(2, 2, 2, 7).permute(0, 3, 1, 2)


def test_isotropic_features_have_the_maximal_entropy_ln_channels() -> None:
    assert spectral_entropy(_hadamard_features()) == pytest.approx(math.log(7), abs=1e-12)


def test_features_on_one_direction_have_zero_entropy() -> None:
    column = _hadamard_features()[:, :1]
    assert spectral_entropy(
        column.expand(-1, 5, -1, -1) * torch.arange(1.0, 6.0)[None, :, None, None]
    ) == pytest.approx(0.0, abs=1e-12)


def test_constant_feature_is_refused() -> None:
    with pytest.raises(ProxyError, match="constant"):
        spectral_entropy(torch.ones(4, 3, 2, 2))


def _scaled_then_pooled(scale: float) -> nn.Sequential:
    conv = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(scale)
    return nn.Sequential(conv, nn.AvgPool2d(2))


def test_trainability_of_a_scaling_block_and_a_pooling_block_by_hand() -> None:
    # One channel: E[g_in g_out] over positions is exact. Scaling by 2 gives s = 2; a 2x2 average
    # pool passes g/4 to each of four inputs, which pixel-unshuffle stacks: s = |(1/4,...)| = 1/2.
    # Both blocks score 2 - s - 1/s = -0.5.
    score = trainability(_scaled_then_pooled(2.0), _batch(1, 4), kaiming_fan_in=False)
    assert score == pytest.approx(-0.5, abs=1e-12)


def test_one_channel_features_have_no_expressivity_and_no_progress() -> None:
    scores = az_nas_scores(_scaled_then_pooled(2.0), _batch(1, 4), kaiming_fan_in=False)
    assert scores.expressivity == 0.0 and scores.progressivity == 0.0


class _TimesOne(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


def test_a_block_returning_its_input_is_no_block_and_a_computed_identity_is_refused() -> None:
    conv = _scaled_then_pooled(2.0)[0]
    skipped = nn.Sequential(conv, nn.Identity())
    assert len(block_features(skipped, _batch(1, 4).images)) == 2
    assert trainability(skipped, _batch(1, 4), kaiming_fan_in=False) == pytest.approx(2 - 2 - 0.5)
    computed = nn.Sequential(conv, _TimesOne())
    with pytest.raises(ProxyError, match="identity"):
        trainability(computed, _batch(1, 4))
    scores = az_nas_scores(computed, _batch(1, 4))
    assert scores.trainability == -math.inf and scores.expressivity == 0.0


def test_nb201_features_are_the_stem_and_every_cell_as_in_the_reference() -> None:
    space = NB201Space()
    arch = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
    )
    model = space.build(arch, seed=0).eval()
    images = _batch(3, 32, 4).images
    features = block_features(model, images)
    assert len(features) == 1 + len(model.cells) == 18
    with torch.no_grad():
        expected = [model.stem(images)]
        for cell in model.cells:
            expected.append(cell(expected[-1]))
    assert all(torch.allclose(f, e) for f, e in zip(features, expected))


def test_kaiming_rescaling_changes_trainability_and_all_scores_stay_finite() -> None:
    space = NB201Space()
    arch = space.parse("|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    batch = _batch(3, 32, 8)
    plain = az_nas_scores(space.build(arch, seed=0).train(), batch)
    scaled = az_nas_scores(space.build(arch, seed=0).train(), batch, kaiming_fan_in=True)
    assert plain.trainability != scaled.trainability
    assert all(math.isfinite(v) for v in (*vars(plain).values(), *vars(scaled).values()))


@pytest.mark.parametrize(("space", "images", "size"), [(FBNetSpace(), 8, None), (OFASpace(), 2, 128)])
def test_other_spaces_are_scored_on_their_main_block_sequence(space, images: int, size: int | None) -> None:
    arch = space.sample(np.random.default_rng(0))
    channels, height, _ = space.input_shape_of(arch)
    model = space.build(arch, seed=0).train()
    batch = ProxyBatch(_batch(channels, size or height, images).images, torch.zeros(images, dtype=torch.long), 2)
    blocks = max((m for m in model.modules() if isinstance(m, nn.Sequential)), key=len)
    built = [block for block in blocks if not isinstance(block, nn.Identity)]
    assert len(block_features(model, batch.images)) == len(built) + 1 >= 10
    scores = az_nas_scores(model, batch)
    assert all(math.isfinite(v) for v in vars(scores).values())


def test_each_component_alone_equals_the_joint_computation() -> None:
    space = NB201Space()
    arch = space.parse(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    )
    batch = _batch(3, 32, 8)
    joint = az_nas_scores(space.build(arch, seed=0).train(), batch)
    for component in (expressivity, progressivity, trainability):
        alone = component(space.build(arch, seed=0).train(), batch)
        assert alone == pytest.approx(getattr(joint, component.__name__), rel=1e-9, abs=1e-12)


def test_float32_channels_last_entropy_agrees_with_a_float64_covariance() -> None:
    # Features with a large common offset: centring in float32 must not lose the spread.
    generator = torch.Generator().manual_seed(1)
    mixing = torch.randn(6, 6, generator=generator, dtype=torch.float64)
    samples = torch.randn(4 * 9 * 9, 6, generator=generator, dtype=torch.float64) @ mixing + 50.0
    expected_p = np.clip(np.linalg.eigvalsh(np.cov(samples.numpy(), rowvar=False, bias=True)), 0, None)
    expected_p = expected_p / expected_p.sum()
    expected = -float(np.sum(expected_p * np.log(expected_p)))
    feature = samples.float().reshape(4, 9, 9, 6).permute(0, 3, 1, 2)  # channels-last (N, C, H, W)
    assert feature.is_contiguous(memory_format=torch.channels_last)
    assert spectral_entropy(feature) == pytest.approx(expected, abs=1e-5)
