"""Which architectures a profile measures: stratified by FLOPs, uniform, a given list, or all.

Every selection is a function ``(space, n, rng) -> list[Architecture]`` of the space, the count and
an explicit ``numpy.random.Generator`` (lists ignore the generator), so one seed gives one list.
Options beyond those three (``pool``, ``path``) are keywords, bound by the configs in
``configs/selection`` (``_partial_: true``), so hwnas-profile calls every selection alike.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nas import Architecture, Candidate, FlopsSpace, SearchSpace
from nas.errors import HwnasError
from nas.objectives import Flops

log = logging.getLogger("hwnas.profile")

#: What a selection config instantiates to: ``(space, n, rng) -> n architectures``.
Selection = Callable[[SearchSpace, int, np.random.Generator], list[Architecture]]


class SelectionError(HwnasError, ValueError):
    """A selection that cannot be made (bad list line, too few distinct architectures)."""


def _check_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SelectionError(f"the number of architectures must be an integer >= 1, got {n!r}")
    return n


def flops_of(space: SearchSpace) -> Callable[[Architecture], float]:
    """FLOPs per architecture: the space's own formula when it has one (FBNet counts from its
    macro without building), else ``nas.objectives.Flops`` on the built network."""
    if isinstance(space, FlopsSpace):
        return lambda arch: float(space.flops(arch))
    counter = Flops()
    return lambda arch: counter(Candidate(arch, space))


def distinct_samples(space: SearchSpace, count: int, rng: np.random.Generator) -> list[Architecture]:
    """Up to ``count`` distinct architectures drawn uniformly, in draw order.

    Draws stop after ``20 x count`` tries, so a space with fewer distinct networks than asked
    gives what it has instead of looping forever.
    """
    seen: dict[str, Architecture] = {}
    for _ in range(20 * count):
        arch = space.sample(rng)
        seen.setdefault(arch.string, arch)
        if len(seen) == count:
            break
    return list(seen.values())


def uniform(space: SearchSpace, n: int, rng: np.random.Generator) -> list[Architecture]:
    """``n`` distinct architectures drawn uniformly over the gene vectors."""
    archs = distinct_samples(space, _check_count(n), rng)
    if len(archs) < n:
        raise SelectionError(f"asked for {n} distinct {space.name} architectures; sampling found {len(archs)}")
    return archs


def _spread_order(bins: int) -> list[int]:
    """Bin indices in van der Corput order (0, middle, quarters, ...): a run stopped early has
    still measured across the whole FLOPs range, not only the small networks."""
    bits = max(bins - 1, 0).bit_length()
    size = 1 << bits  # the smallest power of two >= bins
    order: dict[int, None] = {}
    for k in range(size):
        reversed_k = int(format(k, f"0{bits}b")[::-1], 2) if bits else 0
        order.setdefault(reversed_k * bins // size, None)  # every bin occurs, as size >= bins
    return list(order)


def stratified_by_flops(
    space: SearchSpace, n: int, rng: np.random.Generator, pool: int | None = None
) -> list[Architecture]:
    """``n`` distinct architectures spread evenly over the FLOPs distribution of the space.

    How: draw a pool of distinct candidates uniformly (``pool``, default ``max(10 n, 100)``),
    compute each one's FLOPs (:func:`flops_of`), sort the pool by FLOPs (ties by string, for
    determinism) and cut it into ``n`` bins of equal count (quantile bins). One architecture comes
    from each bin: the pool's smallest from the first bin and its largest from the last (so the
    profile spans the pool's whole FLOPs range and a predictor fit on it does not extrapolate),
    a random member of every other bin. Uniform sampling alone would crowd the middle of the
    range, where most networks are, and leave the extremes unmeasured.

    The list comes in van der Corput bin order (smallest, middle, quarters, eighths...) so any
    prefix is spread too. Growing ``n`` later re-bins the pool: a resumed profile keeps what was
    measured and adds picks of the new stratification.
    """
    _check_count(n)
    size = max(10 * n, 100) if pool is None else pool
    if isinstance(size, bool) or not isinstance(size, int) or size < n:
        raise SelectionError(f"pool must be an integer >= n ({n}), got {pool!r}")
    candidates = distinct_samples(space, size, rng)
    if len(candidates) < n:
        raise SelectionError(
            f"asked for {n} architectures but sampling found only {len(candidates)} distinct {space.name} networks"
        )
    flops_fn = flops_of(space)
    flops = np.array([flops_fn(a) for a in candidates])
    order = sorted(range(len(candidates)), key=lambda i: (flops[i], candidates[i].string))
    bins = np.array_split(np.asarray(order), n)
    picks: dict[int, Architecture] = {}
    for b, members in enumerate(bins):
        if b == 0:
            chosen = members[0]
        elif b == n - 1:
            chosen = members[-1]
        else:
            chosen = members[rng.integers(len(members))]
        picks[b] = candidates[int(chosen)]
    return [picks[b] for b in _spread_order(n)]


def from_list(space: SearchSpace, n: int, rng: np.random.Generator, path: str | Path) -> list[Architecture]:
    """The first ``n`` architectures of the file ``path``, in file order (all of them validated
    first: :func:`read_architecture_list`); ``rng`` is unused, as a list is not drawn."""
    archs = read_architecture_list(space, path)
    if len(archs) > _check_count(n):
        log.warning("%s names %d architectures; measuring the first n_archs=%d", path, len(archs), n)
    return archs[:n]


def every(space: SearchSpace, n: int, rng: np.random.Generator) -> list[Architecture]:
    """The first ``n`` distinct architectures of the space in enumeration order (all of them when
    ``n`` is at least the space's size: NB201's 15,625); ``rng`` is unused, nothing is drawn."""
    _check_count(n)
    archs: dict[str, Architecture] = {}
    for arch in space.enumerate():
        archs.setdefault(arch.string, arch)
        if len(archs) == n:
            break
    return list(archs.values())


def read_architecture_list(space: SearchSpace, path: str | Path) -> list[Architecture]:
    """The architectures named in a file, validated all before any is measured.

    A ``.csv`` file needs an ``arch`` column (a profile's or a table's ``archs.csv`` works);
    any other file holds one architecture string per line, blank lines and ``#`` comments skipped
    (OFA's JSON strings contain commas, so only the suffix decides). The first unparsable line
    raises :class:`SelectionError` naming the file, the line number and the space's parse error.
    Repeated architectures are kept once, at their first line.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise SelectionError(f"architecture list {path} does not exist")
    try:
        lines = _csv_arch_lines(path) if path.suffix.lower() == ".csv" else _text_arch_lines(path)
    except UnicodeDecodeError as error:
        raise SelectionError(
            f"{path}: byte {error.start} is not UTF-8 ({error.reason}); save the list as UTF-8 text"
        ) from None
    except csv.Error as error:
        raise SelectionError(f"{path}: not a readable CSV file ({error})") from None
    archs: dict[str, Architecture] = {}
    for line, string in lines:
        try:
            arch = space.parse(string)
        except ValueError as error:
            raise SelectionError(
                f"{path} line {line}: {string!r} is not a {space.name} architecture: {error}"
            ) from None
        archs.setdefault(arch.string, arch)
    if not archs:
        raise SelectionError(f"architecture list {path} names no architecture")
    if len(archs) < len(lines):
        log.warning("%s: %d repeated architecture(s) kept once", path, len(lines) - len(archs))
    return list(archs.values())


def _text_arch_lines(path: Path) -> list[tuple[int, str]]:
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.strip()
        if text and not text.startswith("#"):
            lines.append((number, text))
    return lines


def _csv_arch_lines(path: Path) -> list[tuple[int, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "arch" not in reader.fieldnames:
            raise SelectionError(
                f"{path} line 1: a CSV architecture list needs an 'arch' column, got {reader.fieldnames}"
            )
        # line_num counts physical lines read so far, so it is the line of the current row.
        return [(reader.line_num, row["arch"].strip()) for row in reader if (row["arch"] or "").strip()]
