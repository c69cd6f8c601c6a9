"""The elastic OFA supernet: one set of weights for every kernel size, width, depth and resolution.

As in Once-for-All's ``OFAMobileNetV3``: each of the 20 stage layers keeps its largest weights
(7x7 depthwise, expand ratio 6); a smaller kernel is the centre crop of the next larger one
passed through a learned ``k^2 x k^2`` matrix (7->5, then 5->3; identity at initialisation); a
smaller width keeps the first middle channels (:meth:`OFASupernet.sort_channels` first puts the
most important ones there); a smaller depth runs the first layers of each stage; the resolution
is the input's size. The stem and the head are not elastic.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from nas import Architecture, Supernet
from search_spaces._init import initialise
from search_spaces.ofa._blocks import squeeze_channels
from search_spaces.ofa._model import (
    DROPOUT,
    MAX_DEPTH,
    NUM_STAGES,
    Macro,
    OFAHead,
    OFANetwork,
    conv_module,
    first_block_spec,
    first_conv_spec,
    head_specs,
    macro,
    mid_channels,
    stage_layer_spec,
)
from search_spaces.ofa._space import EXPAND_RATIOS, KERNEL_SIZES, OFASpace, config_of

Tensors = dict[str, torch.Tensor]


class KernelTransforms(nn.Module):
    """OFA's elastic-kernel matrices, one ``small^2 x small^2`` per pair of consecutive sizes.

    A kernel of size k is made from the largest one by repeatedly cropping the centre of the next
    larger size and mixing its taps with that pair's matrix (shared by all channels), so a small
    kernel can differ from a plain crop once trained.
    """

    def __init__(self, kernel_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        for small, large in self._pairs():
            matrix = nn.Parameter(torch.empty(small * small, small * small))
            self.register_parameter(self._name(large, small), matrix)
        self.reset_parameters()

    def _pairs(self) -> Iterator[tuple[int, int]]:
        return zip(self.kernel_sizes[:-1], self.kernel_sizes[1:])

    @staticmethod
    def _name(large: int, small: int) -> str:
        return f"matrix_{large}to{small}"

    def matrix(self, large: int, small: int) -> nn.Parameter:
        return getattr(self, self._name(large, small))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Identity, as OFA: before training, a small kernel is exactly the centre crop.
        for small, large in self._pairs():
            self.matrix(large, small).copy_(torch.eye(small * small))

    def forward(self, weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
        """A depthwise weight (C, 1, K, K) of the largest size K brought to ``kernel_size``."""
        channels = weight.shape[0]
        for small, large in reversed(list(self._pairs())):
            if large <= kernel_size:
                break
            start = (large - small) // 2
            crop = weight[:, :, start : start + small, start : start + small].reshape(channels, small * small)
            # F.linear multiplies by the transpose, as OFA's get_active_filter does.
            weight = F.linear(crop, self.matrix(large, small)).reshape(channels, 1, small, small)
        return weight


def _batch_norm_state(prefix: str, bn: nn.BatchNorm2d, channels: int | None) -> Tensors:
    # Slices are views: in training, F.batch_norm updates the shared running statistics in place.
    keep = slice(channels)
    return {
        f"{prefix}weight": bn.weight[keep],
        f"{prefix}bias": bn.bias[keep],
        f"{prefix}running_mean": bn.running_mean[keep],
        f"{prefix}running_var": bn.running_var[keep],
        f"{prefix}num_batches_tracked": bn.num_batches_tracked,
    }


def _batch_norm(x: torch.Tensor, state: Tensors, prefix: str, bn: nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(
        x,
        state[f"{prefix}running_mean"],
        state[f"{prefix}running_var"],
        state[f"{prefix}weight"],
        state[f"{prefix}bias"],
        bn.training,
        bn.momentum if bn.momentum is not None else 0.0,
        bn.eps,
    )


def _permute(tensor: torch.Tensor, dim: int, order: torch.Tensor) -> None:
    tensor.copy_(tensor.index_select(dim, order))


def _permute_batch_norm(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
    for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
        _permute(tensor, 0, order)


def _descending(importance: torch.Tensor) -> torch.Tensor:
    return torch.sort(importance, descending=True, stable=True).indices


class ElasticInvertedResidual(nn.Module):
    """One stage layer: its largest static block plus the kernel matrices.

    :meth:`weights` gives the tensors of the static block of one (kernel, expand ratio) choice,
    keyed like that block's state dict; :meth:`forward` runs exactly those tensors, which is why
    the supernet and its extracted subnets agree.
    """

    def __init__(self, m: Macro, stage: int, index_in_stage: int) -> None:
        super().__init__()
        largest = stage_layer_spec(m, stage, index_in_stage, max(KERNEL_SIZES), max(EXPAND_RATIOS))
        self.stride = largest.stride
        self.mid_of = {e: mid_channels(largest.in_channels, e) for e in EXPAND_RATIOS}
        self.block = largest.module()
        self.kernel_transforms = KernelTransforms(KERNEL_SIZES)

    def weights(self, kernel_size: int, expand_ratio: int) -> Tensors:
        mid = self.mid_of[expand_ratio]
        b = self.block
        state: Tensors = {}
        if b.expand is not None:
            state["expand.conv.weight"] = b.expand.conv.weight[:mid]
            state.update(_batch_norm_state("expand.bn.", b.expand.bn, mid))
        state["depthwise.conv.weight"] = self.kernel_transforms(b.depthwise.conv.weight[:mid], kernel_size)
        state.update(_batch_norm_state("depthwise.bn.", b.depthwise.bn, mid))
        if b.se is not None:
            hidden = squeeze_channels(mid)
            state["se.reduce.weight"] = b.se.reduce.weight[:hidden, :mid]
            state["se.reduce.bias"] = b.se.reduce.bias[:hidden]
            state["se.expand.weight"] = b.se.expand.weight[:mid, :hidden]
            state["se.expand.bias"] = b.se.expand.bias[:mid]
        state["project.conv.weight"] = b.project.conv.weight[:, :mid]
        state.update(_batch_norm_state("project.bn.", b.project.bn, None))
        return state

    def forward(self, x: torch.Tensor, kernel_size: int, expand_ratio: int) -> torch.Tensor:
        w = self.weights(kernel_size, expand_ratio)
        b = self.block
        h = x
        if b.expand is not None:
            h = b.expand.act(_batch_norm(F.conv2d(h, w["expand.conv.weight"]), w, "expand.bn.", b.expand.bn))
        mid = self.mid_of[expand_ratio]
        h = F.conv2d(h, w["depthwise.conv.weight"], stride=self.stride, padding=kernel_size // 2, groups=mid)
        h = b.depthwise.act(_batch_norm(h, w, "depthwise.bn.", b.depthwise.bn))
        if b.se is not None:
            scale = F.conv2d(h.mean((2, 3), keepdim=True), w["se.reduce.weight"], w["se.reduce.bias"])
            scale = F.conv2d(b.se.relu(scale), w["se.expand.weight"], w["se.expand.bias"])
            h = h * b.se.gate(scale)
        h = _batch_norm(F.conv2d(h, w["project.conv.weight"]), w, "project.bn.", b.project.bn)
        return x + h if b.residual else h

    @torch.no_grad()
    def sort_channels(self) -> None:
        """OFA's ``re_organize_middle_weights``: middle channels by descending L1 norm of their
        projection weights, SE hidden units by the L1 norm of their SE-expand weights. Both are
        permutations applied consistently to every tensor they touch, so the largest choice
        computes the same function; a narrower choice then keeps the most important channels."""
        b = self.block
        order = _descending(b.project.conv.weight.abs().sum(dim=(0, 2, 3)))
        _permute(b.project.conv.weight, 1, order)
        if b.expand is not None:
            _permute(b.expand.conv.weight, 0, order)
            _permute_batch_norm(b.expand.bn, order)
        _permute(b.depthwise.conv.weight, 0, order)
        _permute_batch_norm(b.depthwise.bn, order)
        if b.se is not None:
            _permute(b.se.reduce.weight, 1, order)
            _permute(b.se.expand.weight, 0, order)
            _permute(b.se.expand.bias, 0, order)
            hidden_order = _descending(b.se.expand.weight.abs().sum(dim=(0, 2, 3)))
            _permute(b.se.expand.weight, 1, hidden_order)
            _permute(b.se.reduce.weight, 0, hidden_order)
            _permute(b.se.reduce.bias, 0, hidden_order)


def _prefixed(prefix: str, state: Mapping[str, torch.Tensor]) -> Tensors:
    return {f"{prefix}{key}": value for key, value in state.items()}


class OFASupernet(Supernet):
    """Shared weights of every :class:`OFASpace` architecture (create it with ``space.supernet()``)."""

    space: OFASpace

    def __init__(self, space: OFASpace) -> None:
        super().__init__(space)
        m = macro(space.width_mult)
        self.first_conv = conv_module(first_conv_spec(m))
        self.first_block = first_block_spec(m).module()
        self.stages = nn.ModuleList(
            nn.ModuleList(ElasticInvertedResidual(m, stage, j) for j in range(MAX_DEPTH)) for stage in range(NUM_STAGES)
        )
        final_expand, feature_mix = head_specs(m)
        self.head = OFAHead(final_expand, feature_mix, space.num_classes, DROPOUT)

    @classmethod
    def create(cls, space: OFASpace, seed: int = 0) -> OFASupernet:
        """A supernet whose weights come from ``seed`` alone (built on the meta device, like
        :func:`build_network`, so torch's global random state is never touched)."""
        with torch.device("meta"):
            supernet = cls(space)
        supernet = supernet.to_empty(device="cpu")
        initialise(supernet, torch.Generator().manual_seed(seed))
        return supernet

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        self.check(arch)
        config = config_of(arch)
        if tuple(x.shape[-2:]) != (config.r, config.r):
            # Elastic resolution means the input is the architecture's size; a silent mismatch
            # would train or score a different network than the one named.
            raise ValueError(
                f"input of spatial size {tuple(x.shape[-2:])} for an architecture with r={config.r}; "
                f"resize the batch to {config.r}x{config.r} first"
            )
        h = self.first_block(self.first_conv(x))
        for stage, index in config.active_layers():
            h = self.stages[stage][index % MAX_DEPTH](h, config.ks[index], config.e[index])
        return self.head(h)

    def subnet(self, arch: Architecture) -> OFANetwork:
        """The static network of ``arch`` (the class :meth:`OFASpace.build` builds) holding copies
        of the weights it inherits: sliced widths, transformed kernels, BN statistics."""
        self.check(arch)
        config = config_of(arch)
        state = _prefixed("first_conv.", self.first_conv.state_dict())
        state.update(_prefixed("blocks.0.", self.first_block.state_dict()))
        for block, (stage, index) in enumerate(config.active_layers(), start=1):
            layer = self.stages[stage][index % MAX_DEPTH]
            state.update(_prefixed(f"blocks.{block}.", layer.weights(config.ks[index], config.e[index])))
        state.update(_prefixed("head.", self.head.state_dict()))
        with torch.device("meta"):
            model = OFANetwork(self.space.spec(arch))
        # strict=True checks every tensor of the subnet is inherited, and of the right shape.
        copies = {key: value.detach().clone(memory_format=torch.contiguous_format) for key, value in state.items()}
        model.load_state_dict(copies, strict=True, assign=True)
        return model.train(self.training)

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Reorder every stage layer's middle channels by importance (see
        :meth:`ElasticInvertedResidual.sort_channels`); the largest architecture's function is
        unchanged, narrower ones then inherit the most important channels. Call it between
        training phases (as OFA does before each elastic-width phase): an optimizer's per-weight
        state is not permuted with the weights."""
        for stage in self.stages:
            for layer in stage:
                layer.sort_channels()
