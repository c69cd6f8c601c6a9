"""ZiCo on a linear classifier, against gradients of the cross-entropy derived and computed in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.proxies import ProxyBatch, ProxyError, zico


def linear_classifier(weight: np.ndarray, bias: np.ndarray) -> nn.Sequential:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return nn.Sequential(nn.Flatten(), layer)


def cross_entropy_weight_gradient(weight: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d mean CE / dW = (softmax(x W^T + b) - onehot(y))^T x / n."""
    logits = x @ weight.T + bias
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    return p.T @ x / len(y)


def numpy_zico(weight: np.ndarray, bias: np.ndarray, x: np.ndarray, y: np.ndarray, parts: int) -> float:
    grads = np.stack(
        [
            cross_entropy_weight_gradient(weight, bias, xs, ys)
            for xs, ys in zip(np.array_split(x, parts), np.array_split(y, parts))
        ]
    )
    std, mean_abs = grads.std(axis=0), np.abs(grads).mean(axis=0)
    return math.log(np.sum(mean_abs[std > 0] / std[std > 0]))


@pytest.mark.parametrize("parts", [2, 3])
def test_linear_layer_matches_numpy(parts: int) -> None:
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(size=(3, 8)), rng.normal(size=3)
    images, labels = rng.normal(size=(12, 2, 2, 2)), rng.integers(0, 3, size=12)
    batch = ProxyBatch(torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(labels), 3)
    expected = numpy_zico(weight, bias, images.reshape(12, -1), labels, parts)
    assert zico(linear_classifier(weight, bias), batch, parts=parts) == pytest.approx(expected, rel=1e-5)


def test_weights_with_constant_gradient_are_left_out() -> None:
    # Input feature 0 is 0 in every image: its weights' gradients are 0 in both mini-batches
    # (std 0), so they add nothing, as if the feature were not there.
    rng = np.random.default_rng(1)
    weight, bias = rng.normal(size=(3, 8)), rng.normal(size=3)
    images, labels = rng.normal(size=(10, 8, 1, 1)), rng.integers(0, 3, size=10)
    images[:, 0] = 0.0
    batch = ProxyBatch(torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(labels), 3)
    expected = numpy_zico(weight[:, 1:], bias, images.reshape(10, -1)[:, 1:], labels, 2)
    assert zico(linear_classifier(weight, bias), batch) == pytest.approx(expected, rel=1e-5)


def test_identical_mini_batches_leave_no_layer_to_score() -> None:
    rng = np.random.default_rng(2)
    half = rng.normal(size=(4, 8, 1, 1))
    images, labels = np.concatenate([half, half]), np.array([0, 1, 2, 0] * 2)
    batch = ProxyBatch(torch.as_tensor(images, dtype=torch.float32), torch.as_tensor(labels), 3)
    with pytest.raises(ProxyError, match="varies across mini-batches"):
        zico(linear_classifier(rng.normal(size=(3, 8)), np.zeros(3)), batch)


def test_parts_must_allow_a_spread() -> None:
    batch = ProxyBatch(torch.zeros(4, 1, 1, 1), torch.zeros(4, dtype=torch.int64), 1)
    with pytest.raises(ValueError, match="parts=1"):
        zico(linear_classifier(np.ones((1, 1)), np.zeros(1)), batch, parts=1)
