"""Once-for-All's published references as objectives: its accuracy predictor and Note10 latency LUT.

Both describe OFA's width-1.2 network and answer instantly (Cost.LOOKUP), which makes them the
cheap accuracy and latency a search over :class:`OFASpace` can be checked with.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nas import Candidate, Cost, Direction, Objective, ObjectiveError
from nas.errors import MissingFileError
from search_spaces.ofa._layers import lut_keys
from search_spaces.ofa._model import NUM_LAYERS, NetworkSpec, OFAConfig
from search_spaces.ofa._space import OFASpace, config_of

__all__ = ["Note10LatencyLUT", "OFAAccuracyPredictor", "lut_keys"]

#: The width multiplier both references were made for.
REFERENCE_WIDTH = 1.2

_KERNEL_SLOT = {3: 0, 5: 1, 7: 2}
_EXPAND_SLOT = {3: 0, 4: 1, 6: 2}
_RESOLUTION_BASE = 112
_RESOLUTION_STEP = 16
_RESOLUTION_SLOTS = 8


def _ofa_space(candidate: Candidate, objective: str) -> OFASpace:
    space = candidate.space
    if candidate.arch.space != "ofa" or not isinstance(space, OFASpace):
        raise ObjectiveError(f"objective {objective!r} scores OFA architectures, not {candidate.arch.space!r} ones")
    if space.width_mult != REFERENCE_WIDTH:
        raise ObjectiveError(
            f"objective {objective!r} describes OFA's width-{REFERENCE_WIDTH} network; this space has "
            f"width_mult={space.width_mult}"
        )
    return space


class OFAAccuracyPredictor(Objective):
    """OFA's published ImageNet top-1 predictor (``acc_predictor.pth``), in percent.

    An MLP 128-400-400-400-1 on one-hots of the active layers' kernel sizes and expand ratios and
    of the resolution bucket. It predicts inherited (not fine-tuned) w1.2 subnets' accuracy on a
    10k-image hold-out of ImageNet train, which runs 3-5 points above published fine-tuned top-1.
    It was trained for r in 160..239 only: lower resolutions raise :class:`ObjectiveError` unless
    ``allow_extrapolation`` (then r >= 112 is encoded, with no guarantee of meaning).
    """

    direction = Direction.MAXIMIZE
    cost = Cost.LOOKUP
    #: Resolutions the predictor was trained on.
    TRAINED = range(160, 240)

    def __init__(self, path: str | Path, name: str = "accuracy", allow_extrapolation: bool = False) -> None:
        super().__init__(name)
        self.path = Path(path).expanduser().resolve()
        self.allow_extrapolation = allow_extrapolation
        self.model = nn.Sequential(
            nn.Linear(2 * 3 * NUM_LAYERS + _RESOLUTION_SLOTS, 400),
            nn.ReLU(),
            nn.Linear(400, 400),
            nn.ReLU(),
            nn.Linear(400, 400),
            nn.ReLU(),
            nn.Linear(400, 1),
        )
        # The file holds CUDA tensors; weights_only refuses anything but tensors.
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state)
        self.model.eval().requires_grad_(False)

    @staticmethod
    def features(config: OFAConfig) -> torch.Tensor:
        """The 128 inputs: kernel one-hots at 3i, expand one-hots at 60 + 3i (both all zero for
        layers skipped by depth), the resolution bucket at 120 + (r - 112) // 16."""
        slot = (config.r - _RESOLUTION_BASE) // _RESOLUTION_STEP
        if not 0 <= slot < _RESOLUTION_SLOTS:
            raise ObjectiveError(
                f"the OFA accuracy predictor has no input for resolution {config.r}; it encodes "
                f"{_RESOLUTION_BASE}..{_RESOLUTION_BASE + _RESOLUTION_STEP * _RESOLUTION_SLOTS - 1} "
                f"and was trained on {OFAAccuracyPredictor.TRAINED.start}..{OFAAccuracyPredictor.TRAINED.stop - 1}"
            )
        x = torch.zeros(2 * 3 * NUM_LAYERS + _RESOLUTION_SLOTS)
        for _, i in config.active_layers():
            x[3 * i + _KERNEL_SLOT[config.ks[i]]] = 1.0
            x[3 * NUM_LAYERS + 3 * i + _EXPAND_SLOT[config.e[i]]] = 1.0
        x[6 * NUM_LAYERS + slot] = 1.0
        return x

    def predict(self, config: OFAConfig) -> float:
        """Predicted top-1 in percent; raises :class:`ObjectiveError` outside the trained range."""
        if config.r not in self.TRAINED and not (self.allow_extrapolation and config.r < self.TRAINED.start):
            raise ObjectiveError(
                f"objective {self.name!r}: the OFA accuracy predictor was trained for resolutions "
                f"{self.TRAINED.start}..{self.TRAINED.stop - 1}, not r={config.r}"
                + ("" if config.r >= self.TRAINED.stop else " (allow_extrapolation=True scores it anyway)")
            )
        with torch.no_grad():
            return 100.0 * float(self.model(self.features(config)))

    def __call__(self, candidate: Candidate) -> float:
        _ofa_space(candidate, self.name)
        return self.predict(config_of(candidate.arch))

    def __repr__(self) -> str:
        return (
            f"OFAAccuracyPredictor(path={str(self.path)!r}, name={self.name!r}, "
            f"allow_extrapolation={self.allow_extrapolation})"
        )


class Note10LatencyLUT(Objective):
    """OFA's Samsung Note10 latency, in ms: the sum of per-layer means of its lookup tables.

    ``directory`` holds one ``<r>_lookup_table.yaml`` per resolution (OFA's note10_lut); other
    resolutions raise :class:`ObjectiveError` naming the available ones. Tables are read on
    first use of their resolution.
    """

    direction = Direction.MINIMIZE
    cost = Cost.LOOKUP
    SUFFIX = "_lookup_table.yaml"

    def __init__(self, directory: str | Path, name: str = "latency_ms") -> None:
        super().__init__(name)
        self.directory = Path(directory).expanduser().resolve()
        paths = sorted(self.directory.glob(f"*{self.SUFFIX}")) if self.directory.is_dir() else []
        if not paths:
            raise MissingFileError(
                f"no <resolution>{self.SUFFIX} files in {self.directory}; expected OFA's note10_lut folder"
            )
        self._paths = {int(p.name.removesuffix(self.SUFFIX)): p for p in paths}
        self._tables: dict[int, dict[str, float]] = {}

    @property
    def resolutions(self) -> tuple[int, ...]:
        return tuple(sorted(self._paths))

    def table(self, resolution: int) -> dict[str, float]:
        """Mean latency (ms) by layer key for one resolution."""
        if resolution not in self._paths:
            raise ObjectiveError(
                f"objective {self.name!r}: no Note10 lookup table for r={resolution} in {self.directory}; "
                f"tables exist for r in {', '.join(str(r) for r in self.resolutions)}"
            )
        if resolution not in self._tables:
            import yaml  # Why here: only this objective needs YAML (PyYAML comes with Hydra).

            with self._paths[resolution].open() as handle:
                entries = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            self._tables[resolution] = {key: float(entry["mean"]) for key, entry in entries.items()}
        return self._tables[resolution]

    def layer_latencies(self, spec: NetworkSpec) -> list[tuple[str, float]]:
        """(key, ms) of every layer of ``spec``; a key the table lacks raises :class:`ObjectiveError`."""
        table = self.table(spec.resolution)
        result = []
        for key in lut_keys(spec):
            if key not in table:
                raise ObjectiveError(
                    f"objective {self.name!r}: the r={spec.resolution} Note10 table has no entry {key!r} "
                    f"(the tables cover OFA's width-{REFERENCE_WIDTH} network with 1000 classes)"
                )
            result.append((key, table[key]))
        return result

    def latency(self, spec: NetworkSpec) -> float:
        return sum(ms for _, ms in self.layer_latencies(spec))

    def __call__(self, candidate: Candidate) -> float:
        space = _ofa_space(candidate, self.name)
        return self.latency(space.spec(candidate.arch))

    def __repr__(self) -> str:
        return f"Note10LatencyLUT(directory={str(self.directory)!r}, name={self.name!r})"
