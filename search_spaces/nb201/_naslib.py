"""NASLib's coding of NAS-Bench-201 cells, as its published tables (NAS-Bench-Suite-Zero) key them."""

from __future__ import annotations

import re

from nas import Architecture, ArchitectureError
from search_spaces.nb201._space import NB201Space

#: NASLib's op codes.
NASLIB_OPS: dict[int, str] = {0: "skip_connect", 1: "none", 2: "nor_conv_3x3", 3: "nor_conv_1x1", 4: "avg_pool_3x3"}
#: The NB201 gene at each position of NASLib's 6-tuple: edges (1,2),(1,3),(1,4),(2,3),(2,4),(3,4)
#: of its 1-based nodes.
NASLIB_EDGES: tuple[str, ...] = ("edge_1_0", "edge_2_0", "edge_3_0", "edge_2_1", "edge_3_1", "edge_3_2")


def naslib_architecture(space: NB201Space, key: str) -> Architecture:
    """The architecture of a NASLib key such as ``"(0, 2, 3, 2, 3, 1)"``."""
    codes = [int(c) for c in re.findall(r"-?\d+", key)]
    if len(codes) != len(NASLIB_EDGES) or any(c not in NASLIB_OPS for c in codes):
        raise ArchitectureError(f"{key!r} is not a NASLib NB201 key: six op codes in 0..4, e.g. '(0, 2, 3, 2, 3, 1)'")
    return space.architecture({gene: NASLIB_OPS[code] for gene, code in zip(NASLIB_EDGES, codes)})
