"""FBNet: nine blocks at each of 22 layers, in HW-NAS-Bench's macro-architecture."""

from search_spaces.fbnet._blocks import CIFAR100, IMAGENET, MACROS, OPS, FBNetMacro, LayerShape
from search_spaces.fbnet._space import FBNetSpace
from search_spaces.fbnet._supernet import FBNetSupernet

__all__ = [
    "CIFAR100",
    "IMAGENET",
    "MACROS",
    "OPS",
    "FBNetMacro",
    "FBNetSpace",
    "FBNetSupernet",
    "LayerShape",
]
