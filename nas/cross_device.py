"""What several devices' Pareto sets say together: shared architectures and a robust front.

Pure functions over plain mappings (architecture string -> value), so they read the same whether
the values came from tables, predictors or live measurements.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas import pareto


def on_several_fronts(fronts: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    """The architectures on the fronts of two or more devices, most shared first (then by string):
    ``[{"arch": ..., "devices": [...]}, ...]``."""
    devices: dict[str, list[str]] = {}
    for device, archs in fronts.items():
        for arch in dict.fromkeys(archs):
            devices.setdefault(arch, []).append(device)
    shared = [{"arch": a, "devices": d} for a, d in devices.items() if len(d) > 1]
    return sorted(shared, key=lambda r: (-len(r["devices"]), r["arch"]))


def robust_front(
    score: Mapping[str, float],
    costs: Mapping[str, Mapping[str, float]],
    scale: Mapping[str, float],
) -> list[dict[str, Any]]:
    """The architectures no other dominates on (score, worst normalised cost across devices).

    ``score`` is maximised (one value per architecture, the same on every device: an accuracy);
    ``costs[device][arch]`` is minimised, divided by ``scale[device]`` (e.g. the device's median
    cost) so devices of different speeds weigh alike; an architecture counts only with a score and
    a cost on every device. Rows (sorted by worst normalised cost) hold the score, the worst
    normalised cost, the device it comes from, and every device's raw and normalised cost."""
    devices = list(costs)
    archs = [a for a in score if all(a in costs[d] for d in devices)]
    if not archs or not devices:
        return []
    normalised = np.array([[costs[d][a] / scale[d] for d in devices] for a in archs])
    worst = normalised.max(axis=1)
    values = np.column_stack([[score[a] for a in archs], worst])
    keep = pareto.non_dominated_mask(values, ["maximize", "minimize"])
    rows = [
        {
            "arch": arch,
            "score": float(score[arch]),
            "worst_normalised_cost": float(worst[i]),
            "worst_device": devices[int(np.argmax(normalised[i]))],
            **{f"cost[{d}]": float(costs[d][arch]) for d in devices},
            **{f"normalised_cost[{d}]": float(normalised[i, j]) for j, d in enumerate(devices)},
        }
        for i, arch in enumerate(archs)
        if keep[i]
    ]
    return sorted(rows, key=lambda r: (r["worst_normalised_cost"], r["arch"]))
