"""Search spaces: each plugs into ``nas.SearchSpace`` and builds the networks its tables measured."""

from search_spaces.fbnet import FBNetSpace
from search_spaces.nb201 import NB201Space
from search_spaces.ofa import OFASpace

__all__ = ["FBNetSpace", "NB201Space", "OFASpace"]
