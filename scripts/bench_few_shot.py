"""Few-shot benchmark: leave one device out, pretrain on the others, adapt from k measurements.

    python scripts/bench_few_shot.py --ks 10 --seeds 0 1 2 --out bench_out/few_shot
    python scripts/bench_few_shot.py --tasks nb201:latency_ms --devices raspi4 --ks 10 20 50

For each task (space and metric), seed: draw a pretraining pool of ``n_source`` rows with
``numpy.random.default_rng([seed, 1])``; fit one source predictor (``--source-family``:
layer_sum, hwnas-fit's default, or gbdt) per device column on that device's pool rows only. For
each device as target: its sources are every other column (for an energy task also the latency
columns, except the target device's own latency column); ``k`` training rows are drawn with
``default_rng([seed, 2, k])`` among the target's rows outside the pool; the test set is every
other target row outside the pool, so no source measurement of a test architecture is ever used.
A column that copied one measurement per isomorphism class (``nas.tables.measured_rows``) is
fitted and predicted on the rows actually measured, and a target row whose measured architecture
some source was fitted on is left out too. Scores: Spearman, within_10pct and interval coverage
on the test rows; also a gbdt trained on the same k target rows alone (the no-transfer baseline).
The adaptation is ``FewShotPredictor(blend=--blend, analytic=not --no-analytic,
own_layer_sum=--own-layer-sum)``.

:func:`few_shot_benchmark` is the importable entry point (scripts/bench_predictors.py can call it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from latency_predictors import FewShotPredictor, GradientBoostingPredictor, LayerSumPredictor
from nas import Predictor, SearchSpace, isomorphism_classes
from nas.predictor_metrics import prediction_metrics
from nas.tables import BenchmarkTable, measured_rows, pool_rows, source_pool, unseen_rows
from search_spaces import FBNetSpace, NB201Space

REPO = Path(__file__).resolve().parents[1]
SPACES: dict[str, Callable[[], SearchSpace]] = {"nb201": NB201Space, "fbnet": FBNetSpace}
TASKS = ("nb201:latency_ms", "fbnet:latency_ms", "nb201:energy_mj")
#: Source predictor families by name: (space, device fingerprint, seed, n_estimators) -> unfitted.
SOURCE_FAMILIES: dict[str, Callable[[SearchSpace, str, int, int], Predictor]] = {
    "layer_sum": lambda space, name, seed, n: LayerSumPredictor(space, name, unseen="kind_mean"),
    "gbdt": lambda space, name, seed, n: GradientBoostingPredictor(space, name, n_estimators=n, seed=seed),
}


@dataclass(frozen=True)
class FewShotRecord:
    """One (task, target device, k, seed) result."""

    space: str
    metric: str
    device: str
    k: int
    seed: int
    n_source: int
    n_test: int
    sources: tuple[str, ...]
    spearman: float
    within_10pct: float
    coverage: float
    baseline_spearman: float


def few_shot_benchmark(
    data_dir: Path,
    tasks: Sequence[str] = TASKS,
    ks: Sequence[int] = (10, 20, 50),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    devices: Sequence[str] | None = None,
    n_source: int = 900,
    n_estimators: int = 300,
    log: Callable[[str], None] = print,
    source_family: str = "layer_sum",
    blend: str = "linear",
    analytic: bool = True,
    own_layer_sum: bool = False,
) -> list[FewShotRecord]:
    """Every record of the leave-one-device-out protocol above (``devices`` narrows the targets)."""
    records = []
    for task in tasks:
        space_name, metric = task.split(":")
        space = SPACES[space_name]()
        table = BenchmarkTable.load(data_dir / space_name)
        archs = [space.parse(s) for s in table.archs]
        classes = isomorphism_classes(space, archs)
        # every column that may serve as a source: the task's metric, and latency for energy
        columns = [(metric, d) for d in table.devices(metric)]
        if metric != "latency_ms":
            columns += [("latency_ms", d) for d in table.devices("latency_ms")]
        for seed in seeds:
            pool = source_pool(len(archs), n_source, seed)
            features: dict[tuple[str, str], np.ndarray] = {}
            predictors: dict[tuple[str, str], Predictor] = {}
            seen = [pool]
            started = time.perf_counter()
            for column in columns:
                values = table.column(*column)
                rows, measured = pool_rows(values, classes, pool)
                seen.append(measured)
                source = SOURCE_FAMILIES[source_family](space, f"{column[0]}:{column[1]}", seed, n_estimators)
                source.fit([archs[i] for i in measured], values[rows])
                predictors[column] = source
                features[column] = source.predict(archs)
            log(f"{task} seed {seed}: {len(columns)} source predictors in {time.perf_counter() - started:.0f} s")
            for device in table.devices(metric):
                if devices and device not in devices:
                    continue
                names = [c for c in columns if c[1] != device]  # never the target device's own columns
                values = table.column(metric, device)
                measured = measured_rows(values, classes)
                candidates = unseen_rows(values, classes, seen)
                few = FewShotPredictor(
                    space,
                    f"{metric}:{device}",
                    {f"{m}:{d}": predictors[(m, d)] for m, d in names},
                    blend=blend,
                    analytic=analytic,
                    own_layer_sum=own_layer_sum,
                )
                z = few.with_analytic(np.column_stack([features[c] for c in names]), archs)[measured]
                for k in ks:
                    train = np.sort(np.random.default_rng([seed, 2, k]).choice(candidates, k, replace=False))
                    test = np.setdiff1d(candidates, train)
                    train_archs, test_archs = ([archs[i] for i in measured[rows]] for rows in (train, test))
                    few.fit_features(z[train], values[train], train_archs)
                    scores = prediction_metrics(
                        values[test],
                        few.predict_features(z[test], test_archs),
                        *few.interval_features(z[test], test_archs),
                    )
                    baseline = GradientBoostingPredictor(space, "alone", n_estimators=n_estimators, seed=seed)
                    baseline.fit(train_archs, values[train])
                    alone = prediction_metrics(values[test], baseline.predict(test_archs))
                    records.append(
                        FewShotRecord(
                            space_name,
                            metric,
                            device,
                            k,
                            seed,
                            n_source,
                            len(test),
                            tuple(f"{m}:{d}" for m, d in names),
                            float(scores["spearman"]),
                            float(scores["within_10pct"]),
                            float(scores["coverage"]),
                            float(alone["spearman"]),
                        )
                    )
                    log(
                        f"  {device:16s} k={k:3d} spearman={scores['spearman']:.3f} "
                        f"within10={scores['within_10pct']:.3f} cover={scores['coverage']:.2f} "
                        f"alone={alone['spearman']:.3f}"
                    )
    return records


def summary_markdown(records: Sequence[FewShotRecord]) -> str:
    """Mean over seeds per device, and mean over devices per task and k."""
    lines = []
    groups = sorted({(r.space, r.metric, r.k) for r in records})
    for space, metric, k in groups:
        mine = [r for r in records if (r.space, r.metric, r.k) == (space, metric, k)]
        devices = sorted({r.device for r in mine})
        rows = []
        for device in devices:
            rs = [r for r in mine if r.device == device]
            rows.append(
                (
                    device,
                    *(
                        statistics.mean(getattr(r, f) for r in rs)
                        for f in ("spearman", "within_10pct", "coverage", "baseline_spearman")
                    ),
                )
            )
        means = [statistics.mean(row[i] for row in rows) for i in range(1, 5)]
        seeds = sorted({r.seed for r in mine})
        lines += [
            f"### {space} {metric}, k={k}, n_source={mine[0].n_source}, seeds {seeds}",
            "",
            f"**mean over {len(devices)} devices: Spearman {means[0]:.3f}**, within_10pct {means[1]:.3f}, "
            f"90% interval coverage {means[2]:.2f}, gbdt on the k points alone {means[3]:.3f}",
            "",
            "| device | spearman | within_10pct | coverage | gbdt alone |",
            "|---|---|---|---|---|",
            *(f"| {d} | {s:.3f} | {w:.3f} | {c:.2f} | {b:.3f} |" for d, s, w, c, b in rows),
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), help="space:metric, e.g. nb201:energy_mj")
    parser.add_argument("--devices", nargs="+", default=None, help="target devices (default: all)")
    parser.add_argument("--ks", nargs="+", type=int, default=[10, 20, 50])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--n-source", type=int, default=900)
    parser.add_argument("--n-estimators", type=int, default=300, help="gbdt sources' rounds")
    parser.add_argument("--source-family", default="layer_sum", choices=list(SOURCE_FAMILIES))
    parser.add_argument("--blend", default="linear", choices=["linear", "log"])
    parser.add_argument("--no-analytic", action="store_true", help="no FLOPs/params/traffic sources in the blend")
    parser.add_argument("--own-layer-sum", action="store_true", help="stack the target's own layer sum")
    parser.add_argument("--out", type=Path, default=REPO / "bench_out" / "few_shot")
    args = parser.parse_args()
    records = few_shot_benchmark(
        args.data_dir,
        args.tasks,
        args.ks,
        args.seeds,
        args.devices,
        args.n_source,
        args.n_estimators,
        print,
        args.source_family,
        args.blend,
        not args.no_analytic,
        args.own_layer_sum,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "few_shot.json").write_text(json.dumps([asdict(r) for r in records], indent=1))
    markdown = summary_markdown(records)
    (args.out / "few_shot.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
