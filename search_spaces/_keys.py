"""Lookup-table layer keys as values: what the key strings of profiles and predictor files name.

Each space declares its kinds of layer as frozen dataclasses deriving :class:`LayerKey`: the
fields are the sizes the key string carries, ``str(key)`` is that string, and the value knows its
input shape, its module and its lookup-table kind. One parser per space turns a string back
into its value, trying each kind's pattern and checking its fields; a key that none matches is
refused with the formats the space accepts. The strings are unchanged, so profiles and predictor files keep their keys.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from torch import nn

from nas import ArchitectureError, LayerSpec
from search_spaces._init import materialise


class LayerKey(ABC):
    """One kind of layer of a space, as the frozen value of its lookup-table key."""

    #: The full match of a key string of this kind; its named groups are the constructor's
    #: fields (integers unless :meth:`from_fields` says otherwise).
    PATTERN: ClassVar[re.Pattern[str]]

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> LayerKey:
        """The key of :attr:`PATTERN`'s named groups, every field an integer."""
        return cls(**{name: int(value) for name, value in fields.items()})

    def check(self) -> None:
        """Refuse (with :class:`~nas.ArchitectureError`) a parsed key whose fields contradict each
        other; keys a space builds from its own specs are consistent by construction."""
        return

    @property
    @abstractmethod
    def kind(self) -> str:
        """What keys a lookup table may price alike when it lacks one: the key without its
        sizes (``op:nor_conv_3x3`` for any NB201 ``op:nor_conv_3x3:c<C>:h<H>``)."""

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """One sample's input, (channels, height, width)."""

    @abstractmethod
    def module(self) -> nn.Module:
        """The layer's module, built the way the space's networks build it."""

    @abstractmethod
    def __str__(self) -> str:
        """The key string, as profiles and predictor files hold it."""

    @property
    def layer(self) -> LayerSpec:
        """The key string with its input shape: what a space lists its networks as."""
        return LayerSpec(str(self), self.input_shape)


def parse_key(key: str, kinds: Sequence[type[LayerKey]], space: str, formats: str) -> LayerKey:
    """The value of ``key``: the first of ``kinds`` whose pattern matches it whole."""
    for kind in kinds:
        match = kind.PATTERN.fullmatch(key)
        if match is not None:
            value = kind.from_fields(match.groupdict())
            value.check()
            return value
    raise ArchitectureError(f"{key!r} is not an {space} layer key; keys are {formats}")


def build_keyed_layer(layer: LayerSpec, key: LayerKey, seed: int) -> nn.Module:
    """A space's ``build_layer``: ``key`` is ``layer``'s key parsed (it alone must rebuild the
    layer, so a profile can be re-measured later), its input shape checked against ``layer``'s,
    and the module built from ``seed`` alone."""
    if tuple(layer.input_shape) != key.input_shape:
        raise ArchitectureError(
            f"layer {layer.key!r} takes inputs of shape {key.input_shape}, not {tuple(layer.input_shape)}"
        )
    return materialise(key.module, seed)
