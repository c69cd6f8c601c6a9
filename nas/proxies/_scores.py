"""Several proxies' scores of many architectures, each scored once: what a predictor on proxies
reads, for its training architectures and for every one it is asked about."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nas._architecture import Architecture
from nas._objective import Candidate, Objective, ObjectiveError
from nas._space import SearchSpace
from nas.scoring import SOURCES_FILE, ScoreFileError, read_scores

log = logging.getLogger("hwnas.score")


class ProxyScores:
    """``members`` (name -> objective, usually :class:`~nas.proxies.ProxyObjective`) scoring
    architectures of ``space`` into a matrix ``(n_archs, n_members)``; NaN where a member refuses
    an architecture (NB201's disconnected cells for most proxies).

    Every architecture is scored at most once per instance. ``score_dirs`` are ``hwnas-score``
    output directories to read first: a directory's column is used for a member only when the
    directory recorded the same space and the member's exact :meth:`~nas.Objective.source`
    (proxy, settings, data, seed), so a score computed differently is never mixed in; a directory
    that gives no member at all is refused, naming what it holds."""

    def __init__(
        self, members: Mapping[str, Objective], space: SearchSpace, score_dirs: Sequence[str | Path] = ()
    ) -> None:
        if not members:
            raise ValueError("ProxyScores needs at least one member")
        self.members = dict(members)
        self.space = space
        self._known: dict[str, dict[str, float]] = {}
        for directory in score_dirs:
            self._read(Path(directory))
        self.evaluations = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.members)

    def sources(self) -> dict[str, str]:
        """Each member's :meth:`~nas.Objective.source`: what its scores mean."""
        return {name: member.source() for name, member in self.members.items()}

    def __call__(self, archs: Sequence[Architecture]) -> np.ndarray:
        return np.array([[self._score(arch, name) for name in self.members] for arch in archs]).reshape(
            len(archs), len(self.members)
        )

    def _score(self, arch: Architecture, name: str) -> float:
        known = self._known.setdefault(arch.string, {})
        if name not in known:
            self.evaluations += 1
            try:
                known[name] = self.members[name].evaluate(Candidate(arch, self.space))
            except ObjectiveError as error:
                log.debug("%s", error)
                known[name] = math.nan
        return known[name]

    def _read(self, directory: Path) -> None:
        sources_file = directory / SOURCES_FILE
        if not sources_file.is_file():
            raise ScoreFileError(f"{directory} is not an hwnas-score output directory (no {SOURCES_FILE})")
        recorded = json.loads(sources_file.read_text())
        wanted = self.sources()
        usable = [
            n
            for n, s in recorded.get("objectives", {}).items()
            if wanted.get(n) == s and recorded.get("space") == self.space.name
        ]
        if not usable:
            raise ScoreFileError(
                f"{directory} holds {sorted(recorded.get('objectives', {}))} scored on {recorded.get('space')!r}; "
                f"none is a member here with the same settings ({wanted}, space {self.space.name!r}): "
                "drop the directory, or score with the members' settings"
            )
        rows = read_scores(directory, list(recorded["objectives"]))
        for arch, row in rows.items():
            known = self._known.setdefault(arch, {})
            for name in usable:
                value = row.values[name]
                known[name] = math.nan if value is None else value
        log.info("read %d architectures' %s from %s", len(rows), ", ".join(usable), directory)
