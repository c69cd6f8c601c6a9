"""A zero-cost proxy as a search objective: build, check, score, refuse what is not a number."""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import torch

from nas._capabilities import DisconnectedSpace
from nas._objective import Candidate, Cost, Direction, Objective
from nas.proxies._batch import Proxy, ProxyBatch, ProxyError
from nas.proxies._data import ProxyData

if TYPE_CHECKING:
    from torch import nn


class ProxyObjective(Objective):
    """A proxy's score of each architecture, maximised; the configs of ``configs/proxy`` build these.

    Each call builds the architecture afresh from ``seed`` (``space.build(arch, seed)``), puts it in
    training mode and hands it with the batch of ``data`` (drawn once per input shape) to
    ``proxy``: equal settings give equal scores, whatever ran before. A network whose output does
    not depend on its input (an NB201 cell with no path from input to output: 341 of 15,625) is
    refused with a :class:`ProxyError` before the proxy runs, whatever the proxy: such a network
    is untrainable, and a proxy's value for it (a log-determinant of a singular matrix, a ratio of
    zero gradients) would be an accident of the formula, so a search fails the trial and
    ``hwnas-score`` writes the row without a score; rankings put these networks last. A space that
    knows these networks (:class:`~nas.DisconnectedSpace`) is asked; any other network is checked
    through its input gradient (:func:`output_ignores_input`: a forward and backward pass, a
    quarter of the four default proxies' cost on NB201 when each of them ran it). A NaN or
    infinite score is an error naming the proxy and the architecture, never a ranked value.
    """

    direction = Direction.MAXIMIZE
    cost = Cost.PROXY

    def __init__(
        self,
        proxy: Proxy,
        name: str | None = None,
        *,
        data: ProxyData | None = None,
        seed: int = 0,
        check_degenerate: bool = True,
    ) -> None:
        super().__init__(name or proxy_name(proxy))
        self.proxy = proxy
        self.data = data if data is not None else ProxyData()
        self.seed = seed
        self.check_degenerate = check_degenerate

    def describe(self) -> str:
        doc = (getattr(_function(self.proxy), "__doc__", None) or "").strip().splitlines()
        return f"zero-cost proxy {self.name}" + (f": {doc[0]}" if doc else "") + "; higher is better"

    def source(self) -> str:
        settings = _settings(self.proxy)
        return f"proxy {proxy_name(self.proxy)}({settings}) on {self.data.describe()}, weights seed {self.seed}"

    def batch(self, candidate: Candidate) -> ProxyBatch:
        return self.data.batch(candidate.space.input_shape_of(candidate.arch), candidate.space.num_classes)

    def __call__(self, candidate: Candidate) -> float:
        batch = self.batch(candidate)
        model = candidate.space.build(candidate.arch, seed=self.seed).train()
        where = f"proxy {self.name!r} on {candidate.arch.string}"
        if self.check_degenerate and _ignores_input(candidate, model, batch):
            raise ProxyError(
                f"{where}: the network's output does not depend on its input (no path from input to "
                "output), so it is left unscored; rank it last"
            )
        try:
            value = float(self.proxy(model, batch))
        except ProxyError as error:
            raise ProxyError(f"{where}: {error}") from error
        if not math.isfinite(value):
            raise ProxyError(f"{where}: the score is {value}, not a finite number")
        return value


def _ignores_input(candidate: Candidate, model: nn.Module, batch: ProxyBatch) -> bool:
    space = candidate.space
    if isinstance(space, DisconnectedSpace):
        return bool(space.disconnected_of(space.encoding.indices([candidate.arch]))[0])
    return output_ignores_input(model, batch)


def output_ignores_input(model: nn.Module, batch: ProxyBatch) -> bool:
    """Whether ``model``'s output has zero gradient with respect to every pixel of the batch's
    first images (at most 8).

    Run in eval mode (BatchNorm on its running statistics, so batch statistics cannot make
    constant features differ); the mode is restored afterwards. Read through the input gradient
    rather than by comparing the images' outputs: at default initialisation a chain of
    convolutions with eval-mode BatchNorm shrinks the signal geometrically, and on about 1.5% of
    NB201 cells (connected, 87-92% accurate: every path holds two or more convolutions) the
    input's share of the output falls below float32's resolution of the classifier's bias, so
    the outputs compare equal. The gradient is added to no constant: tiny but nonzero there, and
    exactly zero through a ``none`` edge (``x * 0``).
    """
    was_training = model.training
    model.eval()
    images = batch.images[: min(len(batch), 8)].detach().clone().requires_grad_(True)
    try:
        out = model(images)
        if not out.requires_grad:
            return True
        # Unequal weights per output: a sum of softmax-like outputs could be constant.
        weights = torch.arange(1, out[0].numel() + 1, dtype=out.dtype).reshape(out.shape[1:])
        (gradient,) = torch.autograd.grad((out * weights).sum(), images, allow_unused=True)
    finally:
        model.train(was_training)
    return gradient is None or not bool(gradient.any())


def proxy_name(proxy: Proxy) -> str:
    """The proxy function's name (through ``functools.partial``, as Hydra's ``_partial_`` makes)."""
    return _function(proxy).__name__


def _function(proxy: Proxy) -> Proxy:
    while isinstance(proxy, functools.partial):
        proxy = proxy.func
    return proxy


def _settings(proxy: Proxy) -> str:
    keywords = proxy.keywords if isinstance(proxy, functools.partial) else {}
    return ",".join(f"{k}={v!r}" for k, v in sorted(keywords.items()))
