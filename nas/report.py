"""A run's report.md: what a search found, readable without TensorBoard.

One search (:func:`write_report`): its settings and figures (hypervolume, oracle ratio, regret),
PNGs in ``report/`` (the trials and front per pair of objectives with the true front where a
table knows it, the hypervolume after each trial, the search's estimates against their
measurements where the front was re-measured) and the front as a table. Several devices
(:func:`write_devices_report`): the fronts overlaid and each device's figures, linking to its own
report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from nas._objective import Constraint
from nas.plots import finish, overlay_figure, pareto_figure, parity_figure, pyplot
from nas.results import RunningFront

REPORT = "report.md"
FIGURES = "report"


def hypervolume_curve(
    trials: Sequence[FrozenTrial], directions: Sequence[str], reference: Sequence[float]
) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the feasible trials up to it), in number order."""
    front = RunningFront(directions, np.asarray(reference, dtype=float))
    curve = []
    for trial in sorted(trials, key=lambda t: t.number):
        front.add(trial)
        curve.append((trial.number, front.hypervolume))
    return curve


def write_report(
    run_dir: Path,
    trials: Sequence[FrozenTrial],
    summary: Mapping[str, Any],
    front: Sequence[Mapping[str, Any]],
    *,
    constraints: Sequence[Constraint] = (),
    true_values: np.ndarray | None = None,
    sampler: str = "",
    seed: int | None = None,
) -> Path:
    """``run_dir/report.md`` and its PNGs in ``run_dir/report/``; returns the report's path."""
    figures = run_dir / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    objectives = list(summary["objectives"])
    directions = list(summary["objectives"].values())
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    title = f"{summary['space']} on {summary['device']}"
    lines = [
        f"# Search report: {title}",
        "",
        f"Study `{summary.get('study_name')}`, sampler {sampler or 'unknown'}, seed {seed}; "
        f"{_counts(summary)}. Wall time {summary.get('wall_time_s', float('nan')):.1f} s.",
        "",
        "| front size | hypervolume | reference | oracle hypervolume ratio | mean regret |",
        "|---|---|---|---|---|",
        f"| {summary.get('pareto_size')} | {_fmt(summary.get('hypervolume'))} | {summary.get('reference_rule', '')} "
        f"| {_fmt((summary.get('oracle') or {}).get('hypervolume_ratio'))} "
        f"| {_fmt((summary.get('regret') or {}).get('mean'))} |",
        "",
        "## Trials and front",
        "",
    ]
    for i, j in combinations(range(len(objectives)), 2):
        name = f"pareto_{objectives[i]}_vs_{objectives[j]}.png"
        figure = pareto_figure(
            complete, objectives, directions, (i, j), constraints=constraints, true_values=true_values, title=title
        )
        _save(figure, figures / name)
        lines += [f"![trials and front]({FIGURES}/{name})", ""]
    reference = summary.get("reference_point")
    if reference and complete:
        curve = hypervolume_curve(trials, directions, [reference[o] for o in objectives])
        _save(_curve_figure(curve, summary.get("reference_rule", "")), figures / "hypervolume.png")
        lines += ["## Hypervolume after each trial", "", f"![hypervolume]({FIGURES}/hypervolume.png)", ""]
    measured = [o for o in objectives if f"{o}.measured" in (front[0] if front else {})]
    for objective in measured:
        pairs = [
            (r[f"{objective}.measured"], r[objective]) for r in front if r.get(f"{objective}.measured") is not None
        ]
        if pairs:
            values, estimates = (np.array(v, dtype=float) for v in zip(*pairs))
            name = f"parity_{objective}.png"
            _save(parity_figure(values, estimates, objective), figures / name)
            lines += [f"## {objective}: the search's estimate against its measurement (the front)", ""]
            lines += [f"![parity]({FIGURES}/{name})", ""]
    lines += ["## The front", "", *_table(front, ["number", "arch", *objectives, *(f"{o}.measured" for o in measured)])]
    if any(r.get("onnx") for r in front):
        lines += [
            "",
            "ONNX files (seeded, untrained weights; `hwnas-export` gives trained ones): the `onnx` column of pareto.csv.",
        ]
    path = run_dir / REPORT
    path.write_text("\n".join(lines) + "\n")
    return path


def write_devices_report(
    run_dir: Path, summaries: Mapping[str, Mapping[str, Any]], overlay: Mapping[str, Any] | None
) -> Path:
    """The run's report over its devices: the fronts overlaid (``overlay``: ``fronts``, ``names``,
    ``directions`` as :func:`nas.plots.overlay_figure` takes them) and each device's figures."""
    figures = run_dir / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    lines = [f"# Search report: {len(summaries)} devices", ""]
    if overlay is not None:
        _save(overlay_figure(overlay["fronts"], overlay["names"], overlay["directions"]), figures / "overlay.png")
        lines += ["Every device's front, axes normalised per device:", "", f"![overlay]({FIGURES}/overlay.png)", ""]
    lines += [
        "| device | front size | hypervolume | oracle hypervolume ratio | mean regret | report |",
        "|---|---|---|---|---|---|",
    ]
    for device, summary in summaries.items():
        lines.append(
            f"| {device} | {summary.get('pareto_size')} | {_fmt(summary.get('hypervolume'))} "
            f"| {_fmt((summary.get('oracle') or {}).get('hypervolume_ratio'))} "
            f"| {_fmt((summary.get('regret') or {}).get('mean'))} | [devices/{device}/{REPORT}](devices/{device}/{REPORT}) |"
        )
    path = run_dir / REPORT
    path.write_text("\n".join(lines) + "\n")
    return path


def _curve_figure(curve: list[tuple[int, float]], rule: str) -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    ax.plot([n for n, _ in curve], [hv for _, hv in curve], drawstyle="steps-post")
    return finish(fig, ax, "trial", f"hypervolume ({rule})" if rule else "hypervolume", legend=None)


def _save(figure: Any, path: Path) -> None:
    plt = pyplot()
    figure.savefig(path)
    plt.close(figure)


def _counts(summary: Mapping[str, Any]) -> str:
    trials = summary.get("trials") or {}
    states = ", ".join(f"{trials[k]} {k.lower()}" for k in ("COMPLETE", "FAIL", "PRUNED", "RUNNING") if trials.get(k))
    return f"{trials.get('evaluated')} evaluations in {trials.get('total')} trials ({states})"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    if not rows:
        return ["(no feasible architecture)"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        # GitHub's tables split cells at every unescaped |, code spans included (NB201's strings hold many).
        cells = [f"`{_escaped(row[c])}`" if c == "arch" else _fmt(row.get(c)) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _escaped(text: str) -> str:
    return str(text).replace("|", "\\|")
