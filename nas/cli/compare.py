"""hwnas-compare: several searches side by side (a sweep's directory, or runs listed).

    hwnas-compare 'runs=[multirun/2026-12-05/10-00-00]'             # every search under the sweep
    hwnas-compare 'runs=[outputs/a,outputs/b]' group_by=[device]     # other groups

Read top to bottom: every search run directory under ``runs`` (a directory holding summary.json
and pareto.json; a multi-device run counts once per device) -> grouped by what they searched
(``group_by``: by default space, device, objectives and sampler, so the seeds of one setting form
a group) -> per group the mean, standard deviation, minimum and maximum of the hypervolume, the
oracle's hypervolume ratio, the mean regret and the front size, over its runs -> compare.csv,
compare.md and, per device, the groups' fronts overlaid (compare/fronts_<device>.png), into this
command's run directory.
"""

from __future__ import annotations

import csv
import json
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from nas.cli import CONFIG_DIR
from nas.cli._explain import explained
from nas.errors import MissingFileError
from nas.plots import finish, pyplot

log = logging.getLogger("hwnas.compare")
#: What a group's runs agree on by default: everything but the seed.
DEFAULT_GROUP = ("space", "device", "objectives", "sampler")
FIGURES = ("hypervolume", "hypervolume_ratio", "mean_regret", "pareto_size")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="compare")
@explained
def main(cfg: DictConfig) -> None:
    out = Path(HydraConfig.get().runtime.output_dir)
    groups = compare(find_runs([Path(p).expanduser() for p in cfg.runs]), list(cfg.group_by), out)
    log.info("%d groups compared in %s", len(groups), out / "compare.md")


def find_runs(roots: Sequence[Path]) -> list[dict[str, Any]]:
    """Every search run under ``roots``: its summary, front and sampler, one per device."""
    runs = []
    for root in roots:
        if not root.is_dir():
            raise MissingFileError(f"runs: {root} is not a directory (give search run or sweep directories)")
        for summary_path in sorted(root.rglob("summary.json")):
            directory = summary_path.parent
            summary = json.loads(summary_path.read_text())
            if "pareto_size" not in summary or not (directory / "pareto.json").is_file():
                continue  # a multi-device run's own summary, a worker's, or another command's
            runs.append(
                {
                    "run_dir": str(directory),
                    "space": summary["space"],
                    "device": summary["device"],
                    "objectives": "+".join(summary["objectives"]),
                    "sampler": _sampler(directory),
                    "seed": _seed(directory),
                    "summary": summary,
                    "front": json.loads((directory / "pareto.json").read_text())["architectures"],
                }
            )
    if not runs:
        raise MissingFileError(f"no search run (summary.json beside pareto.json) under {[str(r) for r in roots]}")
    return runs


def _config(directory: Path) -> DictConfig | None:
    for path in (directory / ".hydra" / "config.yaml", directory.parent.parent / ".hydra" / "config.yaml"):
        if path.is_file():
            return OmegaConf.load(path)
    return None


def _sampler(directory: Path) -> str:
    cfg = _config(directory)
    return str(cfg.sampler._target_).rsplit(".", 1)[-1] if cfg is not None else "unknown"


def _seed(directory: Path) -> int | None:
    cfg = _config(directory)
    return int(cfg.seed) if cfg is not None else None


def compare(runs: list[dict[str, Any]], group_by: list[str], out: Path) -> list[dict[str, Any]]:
    """compare.csv, compare.md and the overlays of fronts; returns the groups' rows."""
    unknown = [k for k in group_by if k not in (*DEFAULT_GROUP, "seed")]
    if unknown:
        raise ValueError(f"group_by={group_by}: {unknown} unknown; choose from {[*DEFAULT_GROUP, 'seed']}")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(tuple(run[k] for k in group_by), []).append(run)
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(group_by, key)) | {"runs": len(members)}
        for figure in FIGURES:
            values = [v for v in (_figure(m["summary"], figure) for m in members) if v is not None]
            row |= _spread(figure, values)
        row["seeds"] = " ".join(str(m["seed"]) for m in members)
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with (out / "compare.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    images = overlays(runs, group_by, out / "compare")
    (out / "compare.md").write_text(markdown(rows, group_by, images, len(runs)))
    return rows


def _figure(summary: dict[str, Any], figure: str) -> float | None:
    value = {
        "hypervolume": summary.get("hypervolume"),
        "hypervolume_ratio": (summary.get("oracle") or {}).get("hypervolume_ratio"),
        "mean_regret": (summary.get("regret") or {}).get("mean"),
        "pareto_size": summary.get("pareto_size"),
    }[figure]
    return None if value is None else float(value)


def _spread(name: str, values: list[float]) -> dict[str, float | None]:
    if not values:
        return {f"{name}_mean": None, f"{name}_std": None, f"{name}_min": None, f"{name}_max": None}
    return {
        f"{name}_mean": statistics.fmean(values),
        f"{name}_std": statistics.stdev(values) if len(values) > 1 else 0.0,
        f"{name}_min": min(values),
        f"{name}_max": max(values),
    }


def overlays(runs: list[dict[str, Any]], group_by: list[str], directory: Path) -> list[str]:
    """Per device, every run's front (cost vs score, in the objectives' units: one device), coloured
    by group; the PNGs' names."""
    directory.mkdir(parents=True, exist_ok=True)
    plt = pyplot()
    names = []
    for device in sorted({r["device"] for r in runs}):
        mine = [r for r in runs if r["device"] == device]
        objectives = mine[0]["summary"]["objectives"]
        cost = next((o for o, d in objectives.items() if d == "minimize"), None)
        score = next((o for o, d in objectives.items() if d == "maximize"), None)
        if cost is None or score is None:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
        colours: dict[tuple, Any] = {}
        for run in mine:
            key = tuple(run[k] for k in group_by if k != "device")
            points = np.array([[a[cost], a[score]] for a in run["front"] if cost in a and score in a], dtype=float)
            if len(points) == 0:
                continue
            points = points[np.argsort(points[:, 0])]
            label = " ".join(map(str, key)) if key not in colours else None
            line = ax.step(points[:, 0], points[:, 1], where="post", marker="o", ms=3, alpha=0.7, label=label,
                           color=colours.get(key))  # fmt: skip
            colours.setdefault(key, line[0].get_color())
        ax.set_title(f"fronts on {device}", fontsize=9)
        finish(fig, ax, cost, score)
        name = f"fronts_{device}.png"
        fig.savefig(directory / name)
        plt.close(fig)
        names.append(name)
    return names


def markdown(rows: list[dict[str, Any]], group_by: list[str], images: list[str], n_runs: int) -> str:
    head = [*group_by, "runs", *(f"{f} (mean ± std, min-max)" for f in FIGURES)]
    lines = [f"# {n_runs} searches in {len(rows)} groups", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row[k]) for k in group_by] + [str(row["runs"])]
        for figure in FIGURES:
            mean = row[f"{figure}_mean"]
            cells.append(
                "-"
                if mean is None
                else f"{mean:.4g} ± {row[f'{figure}_std']:.2g} ({row[f'{figure}_min']:.4g}-{row[f'{figure}_max']:.4g})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *(f"![{name}](compare/{name})" for name in images)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
