"""TensorBoard views of a search: Pareto scatter, hypervolume curve, one HParams row per trial."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.results import TrialsTable


def write_tensorboard(
    logdir: Path,
    table: TrialsTable,
    front: Sequence[dict[str, Any]],
    hv_history: Sequence[tuple[int, float]],
    genes: Sequence[str] = (),
    params_by_trial: dict[int, dict[str, Any]] | None = None,
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(logdir)) as writer:
        if len(table.objectives) >= 2:
            writer.add_figure("pareto/scatter", pareto_figure(table, front), global_step=len(table.rows))
        for number, hv in hv_history:
            writer.add_scalar("search/hypervolume", hv, global_step=number)
        for row in table.rows:
            if row["state"] != "COMPLETE":
                continue
            hparams = {"arch": row["arch"], "trial": row["number"], **(params_by_trial or {}).get(row["number"], {})}
            metrics = {f"objective/{n}": row[n] for n in table.objectives}
            metrics["objective/feasible"] = float(row["feasible"])
            # One sub-run per trial is how TensorBoard's HParams dashboard shows one row per trial.
            writer.add_hparams(hparams, metrics, run_name=f"trial_{row['number']:05d}")


def pareto_figure(table: TrialsTable, front: Sequence[dict[str, Any]]):  # noqa: ANN201 - Figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Plot latency-like objective on x when there is one: the reader's question is "what does
    # each millisecond buy".
    x_name = next((n for n in table.objectives if n.startswith("latency")), table.objectives[1])
    y_name = next(n for n in table.objectives if n != x_name)
    complete = [r for r in table.rows if r["state"] == "COMPLETE"]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    for feasible, colour, label in ((False, "0.75", "infeasible"), (True, "tab:blue", "feasible")):
        pts = [r for r in complete if r["feasible"] == feasible]
        if pts:
            ax.scatter([r[x_name] for r in pts], [r[y_name] for r in pts], s=12, c=colour, label=label)
    if front:
        ax.plot(
            [r[x_name] for r in front],
            [r[y_name] for r in front],
            "o-",
            c="tab:red",
            ms=5,
            drawstyle="steps-post",
            label=f"Pareto set ({len(front)})",
        )
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
