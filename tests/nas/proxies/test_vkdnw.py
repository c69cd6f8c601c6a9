"""VKDNW against hand-computed facts and an independent brute-force Fisher matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.proxies import ProxyBatch, vkdnw, vkdnw_single
from nas.proxies._vkdnw import decile_entropy, fisher_information


def test_a_flat_spectrum_has_the_maximal_entropy_ln_9() -> None:
    assert decile_entropy(torch.full((20,), 3.5, dtype=torch.float64)) == pytest.approx(math.log(9), abs=1e-12)


def test_a_single_spike_has_zero_entropy_and_an_all_zero_spectrum_scores_zero() -> None:
    spike = torch.zeros(10, dtype=torch.float64)
    spike[-1] = 1.0  # deciles: eight zeros and 0.1 (the 0.9 decile interpolates toward the spike)
    assert decile_entropy(spike) == 0.0
    assert decile_entropy(torch.zeros(10, dtype=torch.float64)) == 0.0


def test_entropy_of_the_deciles_of_1_to_10_by_hand() -> None:
    # The k/10 quantile of 1..10 (linear interpolation) is 1 + 0.9 k.
    deciles = np.array([1 + 0.9 * k for k in range(1, 10)])
    p = deciles / deciles.sum()
    expected = float(-(p * np.log(p)).sum())
    assert decile_entropy(torch.arange(1.0, 11.0, dtype=torch.float64)) == pytest.approx(expected, abs=1e-12)


def test_rounding_below_zero_counts_as_zero() -> None:
    eigenvalues = torch.tensor([-1e-18, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    clamped = eigenvalues.clamp(min=0.0)
    assert decile_entropy(eigenvalues) == decile_entropy(clamped)


def _tiny_network(norm: type[nn.Module] = nn.BatchNorm2d) -> nn.Sequential:
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, stride=2),
        nn.BatchNorm2d(3) if norm is nn.BatchNorm2d else nn.GroupNorm(1, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(3, 4),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
        if norm is nn.BatchNorm2d:
            model[1].running_mean.copy_(torch.randn(3, generator=generator))
    return model.eval()


# BatchNorm's derivatives come from one run of the layer (it is linear in its parameters);
# GroupNorm, not in that list, from forward-mode AD: both against brute force.
@pytest.mark.parametrize("norm", [nn.BatchNorm2d, nn.GroupNorm])
def test_fisher_matrix_equals_a_brute_force_jacobian_computation(norm: type[nn.Module]) -> None:
    model = _tiny_network(norm)
    images = torch.randn(5, 2, 6, 6, generator=torch.Generator().manual_seed(1))
    fisher = fisher_information(model, images, max_tensors=5, weights_per_tensor=2)

    # Independently: the full Jacobian of each image's logits by every parameter, the sampled
    # columns picked by the documented rule (evenly spaced elements of the first 5 tensors).
    params = list(model.parameters())[:5]
    columns = []
    for n in range(len(images)):
        rows = []
        for c in range(4):
            grads = torch.autograd.grad(model(images[n : n + 1])[0, c], params)
            rows.append(torch.cat([g.reshape(-1)[torch.linspace(0, g.numel() - 1, 2).long()] for g in grads]))
        columns.append(torch.stack(rows))
    jacobians = torch.stack(columns).double()
    with torch.no_grad():
        p = torch.softmax(model(images).double(), dim=1) * 0.95 + 0.05 / 4
    covariance = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    expected = sum(j.T @ a @ j for j, a in zip(jacobians, covariance)) / len(images)
    assert fisher.shape == (10, 10)
    assert torch.allclose(fisher, expected, rtol=1e-5, atol=1e-9)


def _batch() -> ProxyBatch:
    images = torch.randn(6, 2, 6, 6, generator=torch.Generator().manual_seed(2))
    return ProxyBatch(images, torch.arange(6) % 4, 4)


def test_vkdnw_is_an_entropy_of_nine_deciles() -> None:
    score = vkdnw(_tiny_network(), _batch(), weights_per_tensor=3)
    assert 0.0 < score <= math.log(9)


def test_single_ranking_orders_by_parameter_tensors_first() -> None:
    small, large = _tiny_network(), _tiny_network()
    large.append(nn.Linear(4, 4))
    assert int(vkdnw_single(small, _batch())) == 6 and int(vkdnw_single(large, _batch())) == 8


def test_images_setting_scores_the_first_images_of_the_batch() -> None:
    batch = _batch()
    first = ProxyBatch(batch.images[:4], batch.labels[:4], batch.num_classes)
    assert vkdnw(_tiny_network(), batch, images=4) == vkdnw(_tiny_network(), first)
    assert vkdnw(_tiny_network(), batch, images=4) != vkdnw(_tiny_network(), batch)
