"""What a proxy receives besides the network: one labelled batch, and the errors a proxy raises."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from nas._objective import ObjectiveError


class ProxyError(ObjectiveError):
    """A proxy cannot score this network (no weights, no gradient path, a degenerate output).

    Raised inside a proxy without the architecture (the proxy never sees it); the
    :class:`~nas.proxies.ProxyObjective` re-raises it naming the proxy and the architecture.
    """


@dataclass(frozen=True)
class ProxyBatch:
    """One batch of images with class labels, as every data-dependent proxy takes it.

    ``images`` is float32 ``(N, C, H, W)`` at the network's input size; ``labels`` int64 ``(N,)``
    in ``0..num_classes-1``; ``num_classes`` is the network's number of outputs.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"ProxyBatch needs images (N, C, H, W) and labels (N,), got {tuple(self.images.shape)} "
                f"and {tuple(self.labels.shape)}"
            )
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= self.num_classes):
            raise ValueError(
                f"ProxyBatch labels span {int(self.labels.min())}..{int(self.labels.max())}, outside the "
                f"network's {self.num_classes} classes: give data with at most {self.num_classes} classes"
            )

    def __len__(self) -> int:
        return self.images.shape[0]

    def chunks(self, parts: int) -> Iterator[ProxyBatch]:
        """``parts`` consecutive sub-batches of (nearly) equal size, e.g. for gradient statistics
        across mini-batches (ZiCo)."""
        if not 1 <= parts <= len(self):
            raise ValueError(f"cannot split a batch of {len(self)} into {parts} parts")
        for images, labels in zip(self.images.tensor_split(parts), self.labels.tensor_split(parts)):
            yield ProxyBatch(images, labels, self.num_classes)


#: A zero-cost proxy: a score of a freshly initialised network (in training mode, which it may
#: change or consume) on one batch; larger means the network is predicted to be more accurate.
Proxy = Callable[[nn.Module, ProxyBatch], float]


def weight_layers(model: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """The network's convolutions and linear layers, in module order: the layers whose weights
    pruning-style proxies (snip, grasp, synflow...) score; refuses a network without any."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not layers:
        raise ProxyError("the network has no Conv2d or Linear layer to score")
    return layers


def relu_layers(model: nn.Module) -> list[nn.ReLU]:
    """The network's ReLU modules (the activation-pattern proxies hook them); refuses a network
    without any."""
    layers = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not layers:
        raise ProxyError("the network has no nn.ReLU module whose activation pattern could be read")
    return layers
