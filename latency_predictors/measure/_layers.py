"""Layer profiles: latencies of a space's distinct layers, for lookup-table predictors.

A network's layers come from ``space.layers(arch)`` of a :class:`nas.LayeredSpace` as
:class:`nas.LayerSpec` (a key naming the
computation and one sample's input shape); a layer is measured alone as
``space.build_layer(layer)`` on a random input of ``(batch_size, *layer.input_shape)``.

``layers.csv`` (``key,input_shape,latency_ms,iqr_ms,repeats``; ``input_shape`` as ``16x32x32``)
lives beside a network profile and shares its ``device.json``, so both are refused or resumed
together. Rows are flushed and fsynced as measured, a torn last line is dropped on reopening, and
keys already in the file are not measured again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from latency_predictors.measure._profile import (
    NO_ENERGY_METER,
    Measure,
    ProfileCsv,
    ProfileRun,
    build_manifest,
    measure_module,
    open_manifest,
)
from latency_predictors.measure._runtimes import Runtime
from nas import Architecture, ArchitectureError, BoundedSpace, Device, LayeredSpace, LayerSpec, SearchSpace

log = logging.getLogger("hwnas.profile")

LAYERS_FILE = "layers.csv"
LAYER_COLUMNS = ("key", "input_shape", "latency_ms", "iqr_ms", "repeats")


def check_layered(space: SearchSpace) -> LayeredSpace:
    """``space`` itself, refused unless it lists its networks' layers."""
    if not isinstance(space, LayeredSpace):
        raise TypeError(
            f"{space!r} does not list its networks' layers (it is no nas.LayeredSpace); profile whole "
            "networks only (layers=false)"
        )
    return space


def distinct_layers(space: SearchSpace, archs: Iterable[Architecture]) -> list[LayerSpec]:
    """The layers of ``archs``, each key once, in first-seen order (stem to head, arch by arch)."""
    space = check_layered(space)
    seen: dict[str, LayerSpec] = {}
    for arch in archs:
        for layer in space.layers(arch):
            first = seen.setdefault(layer.key, layer)
            if first.input_shape != layer.input_shape:
                raise ValueError(
                    f"{space.name} layer key {layer.key!r} comes with input shapes {first.input_shape} "
                    f"and {layer.input_shape} (in {arch.string}); a key must name one computation"
                )
    return list(seen.values())


def covering_architectures(space: SearchSpace) -> list[Architecture]:
    """Architectures meant to show every layer configuration at least once, before sampling:
    the smallest and largest (where the space names them) and, for each choice position j, the
    architecture taking every gene's j-th choice (modulo its count): per-gene coverage of every
    value. For NB201 these are its 5 uniform cells, which hold every op at every stage."""
    archs: list[Architecture] = [space.smallest(), space.largest()] if isinstance(space, BoundedSpace) else []
    genes = space.genes()
    for j in range(max(len(g.choices) for g in genes)):
        try:
            archs.append(space.architecture({g.name: g.choices[j % len(g.choices)] for g in genes}))
        except ArchitectureError:  # a space may reject some combinations; sampling covers them
            continue
    return archs


def all_layers(space: SearchSpace, rng: np.random.Generator, patience: int = 200) -> list[LayerSpec]:
    """Every distinct layer configuration of ``space``, as far as it can be found.

    Starts from :func:`covering_architectures`, then draws architectures with ``rng`` until
    ``patience`` consecutive draws add no new layer key. This is a coverage heuristic, not a
    proof: a layer that depends on a rare combination of genes (OFA's input channels depend on
    the previous stage's depth and expand ratio) is found only with enough patience.
    """
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
    space = check_layered(space)
    seen: dict[str, LayerSpec] = {layer.key: layer for layer in distinct_layers(space, covering_architectures(space))}
    quiet = 0
    while quiet < patience:
        before = len(seen)
        for layer in space.layers(space.sample(rng)):
            seen.setdefault(layer.key, layer)
        quiet = 0 if len(seen) > before else quiet + 1
    return list(seen.values())


def _shape_cell(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


class LayerProfileWriter:
    """Appends measured layers to ``layers.csv`` in a profile directory (see the module)."""

    def __init__(
        self,
        directory: str | Path,
        device: Device,
        *,
        space: Mapping[str, Any],
        settings: Mapping[str, Any],
        host: Mapping[str, Any] | None = None,
        energy_meter: str | Mapping[str, Any] = NO_ENERGY_METER,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.manifest = open_manifest(
            self.directory, device, build_manifest(device, space, settings, host, energy_meter)
        )
        self._file = ProfileCsv(self.directory / LAYERS_FILE, LAYER_COLUMNS)
        self._done = {row[0] for row in self._file.rows}

    def __len__(self) -> int:
        return len(self._file.rows)

    def __contains__(self, key: str) -> bool:
        return key in self._done

    def rows(self) -> list[dict[str, str]]:
        return [dict(zip(LAYER_COLUMNS, row)) for row in self._file.rows]

    def append(self, layer: LayerSpec, latency: Any) -> None:
        if layer.key in self._done:
            raise ValueError(f"layer {layer.key!r} is already in {self._file.path}")
        self._file.append(
            [layer.key, _shape_cell(layer.input_shape), latency.median_ms, latency.iqr_ms, latency.repeats]
        )
        self._done.add(layer.key)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def profile_layers(
    space: LayeredSpace,
    layers: Iterable[LayerSpec],
    runtime: Runtime,
    writer: LayerProfileWriter,
    *,
    measure: Measure,
    batch_size: int = 1,
    progress: bool = False,
) -> ProfileRun:
    """Measure every layer whose key is not yet in ``writer``'s file; failures are logged and
    left out (a rerun retries them)."""
    from tqdm import tqdm

    layers = list(layers)
    pending = [layer for layer in layers if layer.key not in writer]
    started = time.perf_counter()
    failed: list[str] = []
    for layer in tqdm(pending, desc=f"layers on {writer.device.name}", unit="layer", disable=not progress):
        module = space.build_layer(layer).eval()
        # A fixed generator: the same input for every run of the profile, no global state touched.
        example = torch.randn(batch_size, *layer.input_shape, generator=torch.Generator().manual_seed(0))
        try:
            stats, _ = measure_module(runtime, module, example, measure)
        except Exception as error:  # noqa: BLE001 - one layer's export failure is not the run's
            log.error("could not measure layer %s: %s", layer.key, error)
            failed.append(layer.key)
            continue
        writer.append(layer, stats)
    return ProfileRun(
        measured=len(pending) - len(failed),
        skipped=len(layers) - len(pending),
        failed=tuple(failed),
        elapsed_s=time.perf_counter() - started,
    )
