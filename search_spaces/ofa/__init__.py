"""Once-for-All MobileNetV3: the space behind the ofa tables, its elastic supernet and references."""

from search_spaces.ofa._model import NetworkSpec, OFAConfig, OFANetwork
from search_spaces.ofa._references import Note10LatencyLUT, OFAAccuracyPredictor
from search_spaces.ofa._space import OFASpace
from search_spaces.ofa._supernet import OFASupernet

__all__ = [
    "NetworkSpec",
    "Note10LatencyLUT",
    "OFAAccuracyPredictor",
    "OFAConfig",
    "OFANetwork",
    "OFASpace",
    "OFASupernet",
]
