"""The figures hwnas draws, as matplotlib figures of plain data: TensorBoard's images
(:mod:`nas.tensorboard`) and the run report's PNGs (:mod:`nas.report`) are the same drawings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from nas import pareto
from nas._objective import Constraint
from nas.results import feasible
from nas.search import REUSED_KEY


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files, never a window
    import matplotlib.pyplot as plt

    return plt


def finish(fig: Any, ax: Any, xlabel: str, ylabel: str, legend: str | None = "best") -> Any:
    """Labels, a light grid, a small legend, a tight layout: every figure's last lines."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend is not None:
        ax.legend(loc=legend, fontsize=7)
    fig.tight_layout()
    return fig


def _axes(objectives: Sequence[str], directions: Sequence[str], pair: tuple[int, int]) -> tuple[int, int]:
    """(x, y) of a pair: a minimised cost on x against a maximised score on y, the way a reader
    asks "what does each millisecond buy"; else the pair's order."""
    i, j = pair
    if directions[i] == "maximize" and directions[j] == "minimize":
        return j, i
    return i, j


def _front_2d(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """The non-dominated rows of a two-column array, sorted by the first column."""
    if len(values) == 0:
        return values
    front = values[pareto.non_dominated_mask(values, directions)]
    return front[np.argsort(front[:, 0], kind="stable")]


def pareto_figure(
    trials: Sequence[FrozenTrial],
    objectives: Sequence[str],
    directions: Sequence[str],
    pair: tuple[int, int],
    *,
    constraints: Sequence[Constraint] = (),
    true_values: np.ndarray | None = None,
    title: str = "",
) -> Any:
    """The complete trials on one pair of objectives: feasible and infeasible ones, the found
    front, the constraint bounds on these axes and the true front where a table gives it (every
    architecture's values, ``true_values``)."""
    plt = pyplot()
    x, y = _axes(objectives, directions, pair)
    names = (objectives[x], objectives[y])
    directions = (directions[x], directions[y])
    evaluated = [t for t in trials if REUSED_KEY not in t.user_attrs]
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    if true_values is not None and len(true_values):
        true = _front_2d(true_values[:, [x, y]], directions)
        ax.step(true[:, 0], true[:, 1], where="post", c="black", ls="--", lw=1, label=f"true front ({len(true)})")
    for wanted, style in ((False, {"c": "0.6", "marker": "x"}), (True, {"c": "tab:blue", "marker": "o"})):
        points = np.array([[t.values[x], t.values[y]] for t in evaluated if feasible(t) == wanted])
        if len(points):
            label = "feasible" if wanted else "infeasible"
            ax.scatter(points[:, 0], points[:, 1], s=12, label=f"{label} ({len(points)})", **style)
    found = _front_2d(np.array([[t.values[x], t.values[y]] for t in evaluated if feasible(t)]), directions)
    if len(found):
        ax.step(found[:, 0], found[:, 1], where="post", c="tab:red", marker="o", ms=4, label=f"found ({len(found)})")
    for constraint in constraints:
        for bound in (constraint.lower, constraint.upper):
            if bound is None:
                continue
            if constraint.metric == names[0]:
                ax.axvline(bound, c="tab:orange", ls=":", label=constraint.name)
            elif constraint.metric == names[1]:
                ax.axhline(bound, c="tab:orange", ls=":", label=constraint.name)
    seen = np.array([t.values[y] for t in evaluated])
    if len(seen) and true_values is not None:
        # The table's worst networks (NB201's disconnected cells: 10% accuracy) would squash the
        # trials into a sliver: the score axis spans the trials, the true front beyond it clipped.
        span = max(float(np.ptp(seen)), 1e-9)
        if directions[1] == "maximize":
            ax.set_ylim(bottom=float(seen.min()) - 0.05 * span)
        else:
            ax.set_ylim(top=float(seen.max()) + 0.05 * span)
    ax.set_title(title, fontsize=9)
    return finish(fig, ax, names[0], names[1])


def overlay_figure(fronts: Mapping[str, np.ndarray], names: tuple[str, str], directions: tuple[str, str]) -> Any:
    """Every device's front (``fronts[device]``: its (cost, score) rows) on axes normalised per
    device (0 = that device's lowest value on its front, 1 = its highest): how the trade-off's
    shape differs between devices whose latencies differ by orders of magnitude."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for device, values in fronts.items():
        front = _front_2d(np.asarray(values, dtype=float).reshape(-1, 2), directions)
        if len(front) == 0:
            continue
        low, high = front.min(axis=0), front.max(axis=0)
        scaled = (front - low) / np.where(high > low, high - low, 1.0)
        ax.step(scaled[:, 0], scaled[:, 1], where="post", marker="o", ms=3, label=f"{device} ({len(front)})")
    return finish(
        fig,
        ax,
        f"{names[0]}, per device: 0 = its front's lowest, 1 = highest",
        f"{names[1]}, per device: 0 = its front's lowest, 1 = highest",
    )


def parity_figure(measured: np.ndarray, predicted: np.ndarray, name: str) -> Any:
    """Predicted against measured, with the identity and the +-10% band (log axes when positive)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 5.0), dpi=100)
    ax.scatter(measured, predicted, s=8, alpha=0.6)
    low, high = float(min(measured.min(), predicted.min())), float(max(measured.max(), predicted.max()))
    line = np.array([low, high])
    ax.plot(line, line, c="black", lw=1, label="predicted = measured")
    ax.fill_between(line, 0.9 * line, 1.1 * line, color="tab:green", alpha=0.15, label="within 10%")
    if low > 0:
        ax.set_xscale("log")
        ax.set_yscale("log")
    return finish(fig, ax, f"measured {name}", f"predicted {name}", legend="upper left")
