"""Objectives (what a search measures) and constraints (bounds on what it measured)."""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from nas._architecture import Architecture

if TYPE_CHECKING:
    from torch import nn

    from nas._space import SearchSpace


class Direction(str, enum.Enum):
    MINIMIZE = "minimize"
    MAXIMIZE = "maximize"


class Cost(enum.IntEnum):
    """How expensive an objective is; a trial evaluates cheap ones first, so it fails early."""

    LOOKUP = 0  # a table row, a predictor call
    STATIC = 1  # counted from the built module (params, FLOPs)
    PROXY = 2  # forward/backward passes (zero-cost proxies)
    MEASUREMENT = 3  # timed runs on a device


class ObjectiveError(RuntimeError):
    """An objective could not produce a value for this architecture (the trial fails, not the run)."""


class UnavailableError(ObjectiveError):
    """The objective holds no value for this architecture and cannot produce one (a table without
    its row, or with an empty cell): nothing was measured, so the trial is not an evaluation and
    the search asks for another architecture."""


class Candidate:
    """What an objective sees: one architecture of one space, with its module built at most once.

    ``model`` is shared by every objective of a trial and must be treated as read-only; an
    objective that changes weights (synflow) asks for :meth:`fresh_model`.
    """

    def __init__(self, arch: Architecture, space: SearchSpace) -> None:
        self.arch = arch
        self.space = space

    @cached_property
    def network(self) -> Architecture:
        """The network the candidate runs (``space.network_of``): ``arch`` itself, unless its
        space adds a deployment to it. Objectives that look networks up in a table read this. A
        candidate made without a space (a table lookup needs none) is its own network."""
        return self.arch if self.space is None else self.space.network_of(self.arch)

    @cached_property
    def model(self) -> nn.Module:
        return self.fresh_model()

    def fresh_model(self) -> nn.Module:
        return self.space.build(self.arch).eval()


class Objective(ABC):
    """A named, directed measurement of an architecture."""

    direction: Direction = Direction.MINIMIZE
    cost: Cost = Cost.STATIC
    #: Whether values are counts (parameters, FLOPs): records write them as integers.
    integer: bool = False

    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> str:
        """One line for a reader of the results: what a value is, in which unit. Records write it
        beside each column (columns.json); the default is the class docstring's first line."""
        return (type(self).__doc__ or type(self).__name__).strip().splitlines()[0]

    def describe_details(self) -> dict[str, str]:
        """What each key of :meth:`details` means, by key."""
        return {}

    @abstractmethod
    def __call__(self, candidate: Candidate) -> float:
        """The objective's value; raise :class:`ObjectiveError` when there is none."""

    def details(self, candidate: Candidate) -> dict[str, float | int | bool]:
        """Numbers about this objective's last evaluation of ``candidate`` worth keeping beside its
        value (a measurement's spread, its repeats); recorded per trial, never optimised."""
        return {}

    def source(self) -> str:
        """What the values mean and where they come from, as a short stable string: two objectives
        with equal sources give comparable values. A study stores its objectives' sources and
        refuses to be resumed with others (a pixel3 latency must never join a raspi4 study).
        Override where settings change the values (a device, a unit, a log scale)."""
        return f"{type(self).__module__}.{type(self).__qualname__}"

    def oracle(self) -> dict[str, float] | None:
        """Every architecture string this objective knows a value for, when it knows them all
        up front (a benchmark table); ``None`` otherwise. Searches use it to report regret."""
        return None

    def truth(self) -> Objective | None:
        """The objective that measures what this one estimates (a predictor's table column or its
        device), used to score a returned front and regret; ``None`` when this one measures."""
        return None

    def evaluate(self, candidate: Candidate) -> float:
        """The value, checked to be a finite number, or an :class:`ObjectiveError` saying why not."""
        value = float(self(candidate))
        if not math.isfinite(value):
            raise ObjectiveError(f"objective {self.name!r} returned {value} for {candidate.arch.string}")
        return value

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@dataclass(frozen=True)
class Constraint:
    """A bound on one objective or metric; a violation <= 0 is feasible (Optuna's convention)."""

    metric: str
    upper: float | None = None
    lower: float | None = None

    def __post_init__(self) -> None:
        if self.upper is None and self.lower is None:
            raise ValueError(f"constraint on {self.metric!r} needs an upper or a lower bound")

    @property
    def name(self) -> str:
        parts = []
        if self.lower is not None:
            parts.append(f"{self.metric}>={self.lower:g}")
        if self.upper is not None:
            parts.append(f"{self.metric}<={self.upper:g}")
        return ",".join(parts)

    def violation(self, value: float) -> float:
        bounds = []
        if self.upper is not None:
            bounds.append(value - self.upper)
        if self.lower is not None:
            bounds.append(self.lower - value)
        return max(bounds)
