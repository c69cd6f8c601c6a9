"""NAS-Bench-201: the cell space behind the nb201 benchmark tables."""

from search_spaces.nb201._naslib import naslib_architecture
from search_spaces.nb201._space import NB201Space, is_disconnected
from search_spaces.nb201._supernet import NB201Supernet

__all__ = ["NB201Space", "NB201Supernet", "is_disconnected", "naslib_architecture"]
