"""The gradient proxies (grad_norm, snip, fisher, grasp, jacob_cov) against hand-computed small
networks and the laws they obey, and (slow) against NASLib's published NB201 scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from nas import Candidate
from nas.proxies import (
    ProxyBatch,
    ProxyError,
    ProxyObjective,
    fisher,
    grad_norm,
    grasp,
    jacob_cov,
    naswot,
    snip,
)
from search_spaces import NB201Space
from search_spaces.nb201 import naslib_architecture


def small_batch(n: int = 6, channels: int = 2, side: int = 3, classes: int = 4) -> ProxyBatch:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(n, channels, side, side, generator=generator)
    return ProxyBatch(images, torch.arange(n) % classes, classes)


def seeded(module: nn.Module, seed: int = 1) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    return module


def two_layer_mlp(batch: ProxyBatch, hidden: int = 5) -> nn.Sequential:
    inputs = batch.images[0].numel()
    return seeded(
        nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, batch.num_classes))
    )


def softmax_minus_onehot(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """dL/dlogits of the mean cross-entropy: (softmax - one-hot) / N."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(labels)), labels] -= 1.0
    return p / len(labels)


def hand_mlp_gradients(net: nn.Sequential, batch: ProxyBatch) -> tuple[np.ndarray, np.ndarray]:
    """dL/dW1 and dL/dW2 of Flatten-Linear-ReLU-Linear, by the chain rule in float64 numpy."""
    x = batch.images.reshape(len(batch), -1).double().numpy()
    w1, b1 = net[1].weight.detach().double().numpy(), net[1].bias.detach().double().numpy()
    w2, b2 = net[3].weight.detach().double().numpy(), net[3].bias.detach().double().numpy()
    pre = x @ w1.T + b1
    hidden = np.maximum(pre, 0.0)
    d_logits = softmax_minus_onehot(hidden @ w2.T + b2, batch.labels.numpy())
    d_pre = (d_logits @ w2) * (pre > 0)
    return d_pre.T @ x, d_logits.T @ hidden


def test_grad_norm_is_the_sum_of_the_layers_gradient_norms() -> None:
    batch = small_batch()
    net = two_layer_mlp(batch)
    g1, g2 = hand_mlp_gradients(net, batch)
    # Biases are not scored; each layer's Frobenius norm is summed, not the norm of all together.
    expected = np.linalg.norm(g1) + np.linalg.norm(g2)
    assert grad_norm(net, batch) == pytest.approx(expected, rel=1e-5)


def test_snip_is_the_summed_absolute_weight_times_gradient() -> None:
    batch = small_batch()
    net = two_layer_mlp(batch)
    g1, g2 = hand_mlp_gradients(net, batch)
    w1, w2 = net[1].weight.detach().double().numpy(), net[3].weight.detach().double().numpy()
    expected = np.abs(w1 * g1).sum() + np.abs(w2 * g2).sum()
    assert snip(net, batch) == pytest.approx(expected, rel=1e-5)


def test_fisher_of_a_linear_layer_by_hand() -> None:
    batch = small_batch()
    net = seeded(nn.Sequential(nn.Flatten(), nn.Linear(batch.images[0].numel(), batch.num_classes)))
    x = batch.images.reshape(len(batch), -1).double().numpy()
    w, b = net[1].weight.detach().double().numpy(), net[1].bias.detach().double().numpy()
    logits = x @ w.T + b
    d_logits = softmax_minus_onehot(logits, batch.labels.numpy())
    per_channel = 0.5 * ((logits * d_logits) ** 2).mean(0)
    # NASLib counts each output channel's value once per weight of the channel (fan-in).
    assert fisher(net, batch) == pytest.approx(per_channel.sum() * x.shape[1], rel=1e-5)


def test_fisher_of_a_convolution_sums_activation_times_gradient_over_positions() -> None:
    batch = small_batch(side=4)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, batch.num_classes))
    net = seeded(nn.Sequential(conv, nn.ReLU(), head))
    activation = conv(batch.images).detach().requires_grad_(True)
    loss = nn.functional.cross_entropy(head(activation.relu()), batch.labels)
    (gradient,) = torch.autograd.grad(loss, activation)
    conv_term = 0.5 * (activation * gradient).sum((2, 3)).pow(2).mean(0).sum() * (2 * 3 * 3)
    logits = head[2](activation.relu().mean((2, 3))).detach().requires_grad_(True)
    (d_logits,) = torch.autograd.grad(nn.functional.cross_entropy(logits, batch.labels), logits)
    linear_term = 0.5 * (logits * d_logits).pow(2).mean(0).sum() * 3
    assert fisher(net, batch) == pytest.approx((conv_term + linear_term).item(), rel=1e-5)


def test_fisher_frees_what_it_computed() -> None:
    """hwnas-score was killed for memory after ~800 cells: a hook holding its own tensor kept every
    call's activations and graph alive. Live tensors must not grow from call to call."""
    import gc

    batch = small_batch(side=4)

    def live_tensors() -> int:
        gc.collect()
        # type() is, not isinstance: isinstance probes torch's deprecated module attributes
        return sum(type(o) is torch.Tensor or type(o) is nn.Parameter for o in gc.get_objects())

    def score() -> None:
        net = seeded(
            nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, batch.num_classes))
        )
        fisher(net, batch)

    score()
    before = live_tensors()
    for _ in range(3):
        score()
    assert live_tensors() == before


def test_grasp_of_softmax_regression_uses_its_closed_form_hessian() -> None:
    # For logits W x + b the cross-entropy Hessian in W is mean_n (diag(p_n) - p_n p_n^T) (x) x_n x_n^T,
    # so Hg = mean_n [(diag(p_n) - p_n p_n^T) G x_n] x_n^T with G = dL/dW.
    batch = small_batch()
    net = seeded(nn.Sequential(nn.Flatten(), nn.Linear(batch.images[0].numel(), batch.num_classes)))
    x = batch.images.reshape(len(batch), -1).double().numpy()
    w, b = net[1].weight.detach().double().numpy(), net[1].bias.detach().double().numpy()
    logits = x @ w.T + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    g = softmax_minus_onehot(logits, batch.labels.numpy()).T @ x
    hg = np.zeros_like(w)
    for pn, xn in zip(p, x):
        hg += np.outer((np.diag(pn) - np.outer(pn, pn)) @ (g @ xn), xn) / len(x)
    assert grasp(net, batch) == pytest.approx(-(w * hg).sum(), rel=1e-5)


def test_jacob_cov_of_a_linear_map_is_the_fully_correlated_minimum() -> None:
    # A linear map's input Jacobian is the same for every image: C is all ones, eigenvalues N, 0...
    batch = small_batch()
    n, eps = len(batch), 1e-5
    net = seeded(nn.Sequential(nn.Flatten(), nn.Linear(batch.images[0].numel(), batch.num_classes)))
    expected = -(np.log(n + eps) + 1 / (n + eps) + (n - 1) * (np.log(eps) + 1 / eps))
    assert jacob_cov(net, batch) == pytest.approx(expected, rel=1e-6)


class HalfSquare(nn.Module):
    """f(x) = sum_j w_j x_j^2 / 2 per image: its input Jacobian is x * w."""

    def __init__(self, inputs: int) -> None:
        super().__init__()
        self.weigh = nn.Linear(inputs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.weigh(x.flatten(1).pow(2) / 2)


def test_jacob_cov_reads_the_correlations_of_the_input_jacobians() -> None:
    batch = small_batch()
    net = seeded(HalfSquare(batch.images[0].numel()))
    rows = batch.images.flatten(1).double().numpy() * net.weigh.weight.detach().double().numpy()
    v = np.linalg.eigvalsh(np.corrcoef(rows)) + 1e-5
    assert jacob_cov(net, batch) == pytest.approx(-np.sum(np.log(v) + 1 / v), rel=1e-6)
    # Each eigenvalue adds log(v) + 1/v >= 1: no score exceeds -N (reached when C is the identity).
    assert jacob_cov(net, batch) <= -len(batch)


def test_images_setting_scores_the_first_images_only() -> None:
    batch = small_batch(n=8)
    first = ProxyBatch(batch.images[:4], batch.labels[:4], batch.num_classes)
    for proxy in (grad_norm, snip, fisher, grasp, jacob_cov):
        net = two_layer_mlp(batch)
        assert proxy(net, batch, images=4) == pytest.approx(proxy(two_layer_mlp(batch), first), rel=1e-9)
        # A batch smaller than `images` is used whole.
        assert proxy(two_layer_mlp(batch), first, images=32) == pytest.approx(proxy(two_layer_mlp(batch), first))
    with pytest.raises(ValueError, match="images=1"):
        grad_norm(two_layer_mlp(batch), batch, images=1)


class Unreached(nn.Module):
    """A linear layer the output never uses: no gradient reaches any weight."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3)) * 2.0


@pytest.mark.parametrize("proxy", [grad_norm, snip, fisher, grasp], ids=lambda p: p.__name__)
def test_no_gradient_path_to_a_weight_is_a_proxy_error(proxy) -> None:
    batch = ProxyBatch(small_batch(channels=3).images, torch.arange(6) % 3, 3)
    with pytest.raises(ProxyError, match="no gradient path"):
        proxy(Unreached(), batch)


def test_jacob_cov_refuses_an_output_that_ignores_an_image() -> None:
    batch = small_batch()
    linear = nn.Linear(batch.images[0].numel(), batch.num_classes)
    net = seeded(nn.Sequential(ZeroFirstImage(), nn.Flatten(), linear))
    with pytest.raises(ProxyError, match="constant"):
        jacob_cov(net, batch)


class ZeroFirstImage(nn.Module):
    """Multiplies the first image by 0: the output ignores it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(len(x), 1, 1, 1)
        mask[0] = 0.0
        return x * mask


def naslib_cells(data_dir: Path, space: NB201Space, count: int) -> list[tuple[Candidate, dict]]:
    """``count`` cells of NASLib's CIFAR-10 table (a fixed random subset) with their published rows."""
    table = json.loads((data_dir / "nb201" / "zero_cost_naslib_subset.json").read_text())["cifar10"]
    keys = sorted(table)
    picked = np.random.default_rng(1).choice(len(keys), size=count, replace=False)
    cells = []
    for i in picked:
        arch = naslib_architecture(space, keys[i])
        cells.append((Candidate(arch, space), table[keys[i]]))
    return cells


def score_or_last(objective: ProxyObjective, candidate: Candidate) -> float:
    """A refused network ranks last, as NASLib ranks its NaN scores (-1e8)."""
    try:
        return objective.evaluate(candidate)
    except ProxyError:
        return -np.inf


# Spearman with NASLib's published CIFAR-10 scores on 20 cells, with the default data (packaged
# photographs with random labels, not CIFAR-10; NASLib drew a fresh CIFAR-10 batch per cell).
# Measured: (on these 20 cells; on 30 cells of another draw; on 100 other cells with another
# batch); each floor leaves margin below all three. grasp (a Hessian product) and jacob_cov
# depend most on the images.
NASLIB_FLOORS = {
    "snip": (snip, "snip", 0.90),  # (0.978; 0.950; 0.981)
    "fisher": (fisher, "fisher", 0.90),  # (0.985; 0.956; 0.971)
    # grad_norm (0.964, 0.978) shares snip's backward pass (its own sum is checked by hand above);
    # grasp (0.610, 0.692) and jacob_cov (0.807, 0.909) agree less and cost the most. Their
    # agreement is measured on all 725 cells by scripts/bench_proxies.py, not in the suite.
    "naswot": (naswot, "nwot", 0.95),  # (0.974; 0.989; 0.990 at batch 64, 0.992 at NASLib's 32)
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NASLIB_FLOORS))
def test_ranks_like_naslib_published_scores(name: str, data_dir: Path) -> None:
    proxy, naslib_name, floor = NASLIB_FLOORS[name]
    objective = ProxyObjective(proxy)
    cells = naslib_cells(data_dir, NB201Space(), count=20)
    ours = [score_or_last(objective, candidate) for candidate, _ in cells]
    theirs = [row[naslib_name]["score"] for _, row in cells]
    assert spearmanr(ours, theirs).statistic > floor
