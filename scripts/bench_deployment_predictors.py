"""Predictors across deployments: one predictor with the deployment genes among its features, or
one per deployment with few-shot transfer from the others? Leave one deployment out.

    hwnas-profile space=nb201 deployment=cpu_stack n_archs=200 'deployments=[...]'   # the table
    python scripts/bench_deployment_predictors.py --profile <that run> --ks 5 10 20 50 --seeds 0 1 2

The table holds every network under every deployment (rows ``<network>@<deployment>``, one device
column). For each seed, a pool of ``--n-source`` networks is drawn with
``numpy.random.default_rng([seed, 1])`` (``nas.fit_data.source_pool``); for each deployment as the
target, the other deployments' measurements of the pool networks are what the arms learn the
other deployments from, and ``k`` of the target's other networks are drawn for training as
hwnas-fit draws them (``default_rng(seed).permutation``, the first k); every remaining network is
tested. The arms see exactly the same measurements:

* **per_deployment** (hwnas-fit ``predictor=per_deployment``): one predictor per deployment, each
  adapted few-shot from the other deployments' (fitted on the pool networks) with the k target
  rows (``latency_predictors.PerDeploymentPredictor``).
* **joint** (``--joint``, configs/predictor options; gbdt by default): one predictor with the
  deployment genes one-hot beside the network's, fitted on the same rows.
* **alone** (``--baseline``, layer_sum by default: boosted_layer_sum needs 20 rows): the k target
  rows only.

Every arm is ``hwnas-fit space=nb201 deployment=cpu_stack table_dir=<profile> predictor=<arm>``'s
fit (``nas.fitting.fit_split``) on the same rows of the deployed table, tested on the same rows.
Scores on the target's test networks: Spearman (the ranking within the deployment), within +/-10%
and the median absolute percentage error (what ranks candidates across deployments in a search).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate

from nas import DeployedSpace
from nas.cli._space import search_space
from nas.cli.fit import compose_fit
from nas.deployment_grid import DeploymentGrid
from nas.fit_data import FitSplit, source_pool
from nas.fitting import ParsedTable, fit_split
from nas.tables import BenchmarkTable

METRIC = "latency_ms"


@dataclass(frozen=True)
class Record:
    """One (target deployment, k, seed, arm) result."""

    target: str
    k: int
    seed: int
    arm: str
    n_train: int
    n_test: int
    spearman: float
    within_10pct: float
    median_ape: float


def benchmark(
    profile: Path,
    space_name: str = "nb201",
    deployment: str = "cpu_stack",
    ks: Sequence[int] = (5, 10, 20, 50),
    seeds: Sequence[int] = (0, 1, 2),
    n_source: int = 100,
    joint: Sequence[str] = ("gbdt",),
    baseline: str = "layer_sum",
    log: Callable[[str], None] = print,
) -> list[Record]:
    """Every record of the protocol above, for the deployed profile ``profile``."""
    base = [f"space={space_name}", f"deployment={deployment}", f"table_dir={profile}"]
    cfg = compose_fit(*base)
    space = search_space(cfg)
    assert isinstance(space, DeployedSpace)
    data = ParsedTable.parse(space, BenchmarkTable.load(profile))
    column = cfg.device.name
    values = data.table.column(METRIC, column)
    grid = DeploymentGrid.of(space, data.archs).complete()
    log(f"{profile}: {len(grid.networks)} networks under each of {len(grid.deployments)} deployments")
    records = []
    for seed in seeds:
        arms = {
            "per_deployment": compose_fit(*base, "predictor=per_deployment", f"seed={seed}"),
            f"alone_{baseline}": compose_fit(*base, f"predictor={baseline}", f"seed={seed}"),
            **{f"joint_{f}": compose_fit(*base, f"predictor={f}", f"seed={seed}") for f in joint},
        }
        factories = {arm: instantiate(arm_cfg.predictor) for arm, arm_cfg in arms.items()}
        pool = source_pool(len(grid.networks), n_source, seed)
        for j, target in enumerate(grid.deployments):
            for k in ks:
                # the target's networks outside the pool, k drawn as hwnas-fit draws them
                split = FitSplit.draw(values[grid.rows[:, j]], None, k, seed, pool, target.string)
                fits = {}
                for arm, factory in factories.items():
                    others = () if arm.startswith("alone_") else pool
                    fits[arm] = fit_split(
                        data, METRIC, column, factory, deployed_split(grid, j, others, split, len(data.archs)), seed
                    )
                records += [_record(target.string, k, seed, arm, result) for arm, result in fits.items()]
                log(
                    f"  {target.string:90s} k={k:3d} "
                    + " ".join(f"{r.arm}={r.spearman:.3f}/{r.within_10pct:.2f}" for r in records[-len(fits) :])
                )
    return records


def deployed_split(
    grid: DeploymentGrid, target: int, pool: Sequence[int] | np.ndarray, split: FitSplit, n_rows: int
) -> FitSplit:
    """The deployed table's rows of a split of the target deployment (column ``target`` of
    ``grid``; ``split`` indexes its networks): the ``pool`` networks under every other deployment
    and the split's training networks under the target to train on, its test networks under the
    target to test on (``n_rows``: the deployed table's rows)."""
    others = [c for c in range(len(grid.deployments)) if c != target]
    known = grid.rows[np.ix_(np.asarray(pool, dtype=np.int64), others)].ravel()
    train = np.concatenate([known, grid.rows[split.train, target]])
    test = grid.rows[split.test, target]
    used = np.sort(np.concatenate([train, test]))
    measured_on = np.arange(n_rows)  # every row of a profile was measured on its own network
    return FitSplit(used, measured_on, used, train, test, n_train_auto=False)


def _record(target: str, k: int, seed: int, arm: str, result: object) -> Record:
    metrics = result.metrics  # type: ignore[attr-defined]
    split = result.split  # type: ignore[attr-defined]

    def number(value: float | None) -> float:
        return float("nan") if value is None else float(value)

    return Record(
        target,
        k,
        seed,
        arm,
        len(split.train),
        len(split.test),
        number(metrics["spearman"]),
        number(metrics["within_10pct"]),
        number(metrics["median_ape"]),
    )


def summary_markdown(records: Sequence[Record]) -> str:
    """Per k and arm: mean over targets and seeds, and the lowest target (mean over seeds)."""
    arms = list(dict.fromkeys(r.arm for r in records))
    lines = [
        "| k | arm | Spearman | within 10% | median APE % | lowest target (Spearman) |",
        "|---|---|---|---|---|---|",
    ]
    for k in sorted({r.k for r in records}):
        for arm in arms:
            mine = [r for r in records if r.k == k and r.arm == arm]
            by_target = {
                t: statistics.fmean(r.spearman for r in mine if r.target == t) for t in {r.target for r in mine}
            }
            worst = min(by_target, key=by_target.__getitem__)
            lines.append(
                f"| {k} | {arm} | {_mean(r.spearman for r in mine):.3f} | {_mean(r.within_10pct for r in mine):.3f} "
                f"| {100 * _mean(r.median_ape for r in mine):.1f} | {by_target[worst]:.3f} ({worst}) |"
            )
    return "\n".join(lines)


def _mean(values: object) -> float:
    finite = [v for v in values if np.isfinite(v)]  # type: ignore[attr-defined]
    return statistics.fmean(finite) if finite else float("nan")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", type=Path, required=True, help="an hwnas-profile deployment=... run")
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--deployment", default="cpu_stack")
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-source", type=int, default=100)
    parser.add_argument("--joint", nargs="+", default=["gbdt"], help="configs/predictor options fitted jointly")
    parser.add_argument("--baseline", default="layer_sum", help="a configs/predictor option fitted on the k rows alone")
    parser.add_argument("--out", type=Path, default=Path("bench_deployment_predictors.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    records = benchmark(
        args.profile, args.space, args.deployment, args.ks, args.seeds, args.n_source, args.joint, args.baseline
    )
    args.out.write_text(json.dumps([asdict(r) for r in records], indent=1) + "\n")
    table = summary_markdown(records)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
