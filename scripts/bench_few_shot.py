"""Few-shot benchmark: leave one device out, pretrain on the others, adapt from k measurements.

    python scripts/bench_few_shot.py --ks 5 10 --seeds 0 1 2 --baseline boosted_layer_sum
    python scripts/bench_few_shot.py --ks 20 50 900 --seeds 0 1 2
    python scripts/bench_few_shot.py --tasks nb201:latency_ms --devices raspi4 --ks 10 20 50
    python scripts/bench_few_shot.py --profiles profiles/nb201/<run> ... --ks 5 10 20 50

Every cell is fitted exactly as ``hwnas-fit space=<space> metric=<metric> device=<target>
predictor=few_shot n_train=<k> seed=<seed> source_devices=all`` (for an energy task with
``source_metric=[energy_mj,latency_ms]``) fits it: hwnas-fit's own configuration composed with
those overrides (configs/fit.yaml, the space's configs/few_shot/) and the same library calls
(``nas.fitting.fit_sources``, ``nas.fitting.fit_column``). For each task (space and metric) and
seed: a pretraining pool of ``n_source`` rows is drawn with ``numpy.random.default_rng([seed,
1])`` and one source predictor (the space's few_shot.source, boosted_layer_sum for nb201 and
fbnet; ``--source-family`` names another configs/predictor option) is fitted per device column
on that column's pool rows only. For each device as target: its sources are every other column
(for an energy task also the latency columns, except the target device's own); the candidate
rows are the target's rows whose architecture, and the one its value was measured on
(``nas.fit_data.measured_rows``), none of its sources was fitted on; ``k`` of them are drawn as
hwnas-fit draws (``default_rng(seed).permutation``, the first k) and every other candidate is
tested, so no source measurement of a test architecture is ever used. Scores: Spearman,
within_10pct and interval coverage on the test rows; also a no-transfer baseline trained on the
same k target rows alone: ``--baseline`` (a configs/predictor option; gbdt by default, with
``--n-estimators`` rounds; boosted_layer_sum, hwnas-fit's default, is the fairer one). ``--blend``,
``--no-analytic``, ``--own-layer-sum`` / ``--no-own-layer-sum`` and ``--set <override>...``
override configs/predictor/few_shot.yaml and the space's few-shot settings.

``--profiles``: a new device measured here. Every column of each hwnas-profile table is a target
and every published column of ``--space`` a source (:func:`new_device_benchmark`); each cell is
``hwnas-fit device=table device.name=<column> table_dir=<profile> predictor=few_shot n_train=<k>
seed=<seed> source_table_dir=<published table> source_devices=all``.

The same cell from hwnas-fit gives the same scores to the last digit, e.g. (nb201 latency,
target raspi4, k=10, seed 0; the sources are every other latency column, in table order)::

    hwnas-fit predictor=few_shot device=raspi4 n_train=10 seed=0 source_devices=all
    hwnas-fit predictor=few_shot metric=energy_mj device=pi5_onnx n_train=10 seed=0 \\
        source_devices=all 'source_metric=[energy_mj,latency_ms]'

(tests/nas/cli/test_fit_few_shot.py checks both.)

:func:`few_shot_benchmark` is the importable entry point (scripts/bench_predictors.py can call it).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate

from nas.cli import config_options
from nas.cli.fit import compose_fit
from nas.fitting import FewShotSources, ParsedTable, PredictorFactory, fit_column, fit_sources, fit_split
from nas.tables import BenchmarkTable

REPO = Path(__file__).resolve().parents[1]
TASKS = ("nb201:latency_ms", "fbnet:latency_ms", "nb201:energy_mj", "fbnet:energy_mj")


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
    #: The no-transfer baseline (a configs/predictor option) fitted on the same k rows alone.
    baseline: str
    baseline_spearman: float
    #: The adapted predictor's shares of its inputs (FewShotPredictor.leaned_on), largest first.
    leaned_on: dict[str, float]


def few_shot_overrides(source_family: str | None, blend: str, analytic: bool, own_layer_sum: bool | None) -> list[str]:
    """hwnas-fit overrides for the few-shot settings (None: the space's own choice)."""
    overrides = ["predictor=few_shot", f"predictor.blend={blend}", f"predictor.analytic={analytic}"]
    if source_family is not None:
        overrides.append(f"predictor@few_shot.source={source_family}")
    if own_layer_sum is not None:
        overrides.append(f"few_shot.own_layer_sum={own_layer_sum}")
    return overrides


def few_shot_benchmark(
    data_dir: Path,
    tasks: Sequence[str] = TASKS,
    ks: Sequence[int] = (10, 20, 50),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    devices: Sequence[str] | None = None,
    n_source: int = 900,
    n_estimators: int = 300,
    log: Callable[[str], None] = print,
    source_family: str | None = None,
    blend: str = "linear",
    analytic: bool = True,
    own_layer_sum: bool | None = None,
    baseline: str = "gbdt",
    overrides: Sequence[str] = (),
) -> list[FewShotRecord]:
    """Every record of the leave-one-device-out protocol above (``devices`` narrows the targets;
    ``overrides`` are more hwnas-fit overrides of the few-shot fit, e.g. ``predictor.ridge=0.1``)."""
    records = []
    parsed: dict[str, ParsedTable] = {}  # each space's table, parsed once
    for task in tasks:
        space_name, metric = task.split(":")
        base = [f"space={space_name}", f"data_dir={data_dir}"]
        if space_name not in parsed:
            cfg = compose_fit(*base)
            parsed[space_name] = ParsedTable.parse(instantiate(cfg.space.instance), BenchmarkTable.load(cfg.table_dir))
        data = parsed[space_name]
        # every column that may serve as a source: the task's metric, and latency for energy
        columns = [(metric, d) for d in data.table.devices(metric)]
        if metric != "latency_ms":
            columns += [("latency_ms", d) for d in data.table.devices("latency_ms")]
        for seed in seeds:
            settings = few_shot_overrides(source_family, blend, analytic, own_layer_sum)
            cfg = compose_fit(*base, f"seed={seed}", *settings, *overrides)
            if "n_estimators" in cfg.few_shot.source:  # --n-estimators sets a gbdt source's rounds
                cfg.few_shot.source.n_estimators = n_estimators
            alone = compose_fit(*base, f"seed={seed}", f"predictor={baseline}")
            if "n_estimators" in alone.predictor:
                alone.predictor.n_estimators = n_estimators
            sources = fit_sources(
                data, {f"{m}:{d}": (m, d) for m, d in columns}, instantiate(cfg.few_shot.source), n_source, seed
            )
            log(f"{task} seed {seed}: {len(columns)} source predictors fitted")
            few_shot, plain = instantiate(cfg.predictor), instantiate(alone.predictor)
            for device in data.table.devices(metric):
                if devices and device not in devices:
                    continue
                mine = sources.without_device(device)  # never the target device's own columns
                for k in ks:
                    records.append(_cell(data, metric, device, k, seed, mine, few_shot, (baseline, plain), log))
    return records


def new_device_benchmark(
    data_dir: Path,
    profiles: Sequence[Path],
    space_name: str = "nb201",
    metric: str = "latency_ms",
    ks: Sequence[int] = (5, 10, 20, 50),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    n_source: int = 900,
    baseline: str = "boosted_layer_sum",
    log: Callable[[str], None] = print,
    overrides: Sequence[str] = (),
) -> list[FewShotRecord]:
    """A device measured here (each column of each ``profiles`` table, hwnas-profile's output) as
    the target, every ``metric`` column of the space's published table as a source: each cell is
    ``hwnas-fit device=table device.name=<column> table_dir=<profile> predictor=few_shot
    n_train=<k> seed=<seed> source_table_dir=<published table> source_devices=all``, and
    ``baseline`` (hwnas-fit's default) is fitted on the same k rows of the profile alone."""
    base = [f"space={space_name}", f"data_dir={data_dir}"]
    cfg = compose_fit(*base)
    space = instantiate(cfg.space.instance)
    shared = ParsedTable.parse(space, BenchmarkTable.load(cfg.table_dir))
    targets = [ParsedTable.parse(space, BenchmarkTable.load(profile)) for profile in profiles]
    columns = {device: (metric, device) for device in shared.table.devices(metric)}
    records = []
    for seed in seeds:
        cfg = compose_fit(*base, f"seed={seed}", "predictor=few_shot", *overrides)
        alone = compose_fit(*base, f"seed={seed}", f"predictor={baseline}")
        sources = fit_sources(shared, columns, instantiate(cfg.few_shot.source), n_source, seed)
        log(f"{space_name}:{metric} seed {seed}: {len(columns)} source predictors fitted on {cfg.table_dir}")
        few_shot, plain = instantiate(cfg.predictor), instantiate(alone.predictor)
        for target in targets:
            for device in target.table.devices(metric):
                for k in ks:
                    records.append(_cell(target, metric, device, k, seed, sources, few_shot, (baseline, plain), log))
    return records


def _cell(
    data: ParsedTable,
    metric: str,
    device: str,
    k: int,
    seed: int,
    sources: FewShotSources,
    few_shot: PredictorFactory,
    baseline: tuple[str, PredictorFactory],
    log: Callable[[str], None],
) -> FewShotRecord:
    """One cell, logged: the few-shot fit on k drawn rows, and ``baseline`` (its configs/predictor
    option and factory) fitted on the same k rows alone and scored on the same test rows."""
    result = fit_column(data, metric, device, few_shot, k, seed, sources)
    alone = fit_split(data, metric, device, baseline[1], result.split, seed)
    scores = result.metrics
    record = FewShotRecord(
        result.space,
        result.metric,
        result.device,
        k,
        result.seed,
        len(sources.pool.rows),
        len(result.split.test),
        tuple(sources.predictors),
        _number(scores["spearman"]),
        _number(scores["within_10pct"]),
        _number(scores["coverage"]),
        baseline[0],
        _number(alone.metrics["spearman"]),
        {name: round(share, 4) for name, share in result.predictor.leaned_on().items()},
    )
    log(
        f"  {record.device:16s} k={k:3d} spearman={record.spearman:.3f} "
        f"within10={record.within_10pct:.3f} cover={record.coverage:.2f} "
        f"{baseline[0]} alone={record.baseline_spearman:.3f} leaned on {_top(record.leaned_on)}"
    )
    return record


def _number(value: float | None) -> float:
    """A score, NaN where there is none (a gbdt on 5 points predicts one value: no ranking)."""
    return float("nan") if value is None else float(value)


def _top(shares: dict[str, float], n: int = 3) -> str:
    return ", ".join(f"{name} {share:.2f}" for name, share in list(shares.items())[:n])


def mean_shares(records: Sequence[FewShotRecord]) -> dict[str, float]:
    """Each input's share averaged over ``records`` (0 where a record did not use it)."""
    names = {name for r in records for name in r.leaned_on}
    shares = {name: statistics.mean(r.leaned_on.get(name, 0.0) for r in records) for name in names}
    return dict(sorted(shares.items(), key=lambda item: -item[1]))


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
        baseline = mine[0].baseline
        lines += [
            f"### {space} {metric}, k={k}, n_source={mine[0].n_source}, seeds {seeds}",
            "",
            f"**mean over {len(devices)} devices: Spearman {means[0]:.3f}**, within_10pct {means[1]:.3f}, "
            f"90% interval coverage {means[2]:.2f}, {baseline} on the k points alone {means[3]:.3f}",
            "",
            f"| device | spearman | within_10pct | coverage | {baseline} alone | leaned on (mean share) |",
            "|---|---|---|---|---|---|",
            *(
                f"| {d} | {s:.3f} | {w:.3f} | {c:.2f} | {b:.3f} | "
                f"{_top(mean_shares([r for r in mine if r.device == d]))} |"
                for d, s, w, c, b in rows
            ),
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
    parser.add_argument(
        "--n-estimators",
        type=int,
        default=300,
        help="gbdt rounds: the no-transfer baseline's, and the sources' when they are gbdt",
    )
    parser.add_argument(
        "--source-family",
        default=None,
        choices=config_options("predictor"),
        help="the sources' configs/predictor option (default: the space's own, configs/few_shot/)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        choices=config_options("predictor"),
        help="the no-transfer baseline fitted on the k rows alone (default: gbdt; with --profiles, and "
        "worth giving at k = 900, boosted_layer_sum, hwnas-fit's default)",
    )
    parser.add_argument("--blend", default="linear", choices=["linear", "log"])
    parser.add_argument("--no-analytic", action="store_true", help="no FLOPs/params/traffic sources in the blend")
    parser.add_argument(
        "--own-layer-sum",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stack the target's own layer sum (default: the space's choice, configs/few_shot/)",
    )
    parser.add_argument(
        "--profiles",
        nargs="+",
        type=Path,
        default=None,
        help="hwnas-profile tables of this machine: their columns are the targets, every published "
        "column of --space the sources (a new device; --tasks and --devices are then unused)",
    )
    parser.add_argument("--space", default="nb201", help="with --profiles: the profiles' space")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="OVERRIDE",
        help="more hwnas-fit overrides of the few-shot fit, e.g. predictor.ridge=0.1",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench_out" / "few_shot")
    args = parser.parse_args()
    torch.set_num_threads(compose_fit().torch_threads)  # as hwnas-fit runs (fit.yaml: 1)
    if args.profiles:
        records = new_device_benchmark(
            args.data_dir,
            args.profiles,
            args.space,
            "latency_ms",
            args.ks,
            args.seeds,
            args.n_source,
            args.baseline or "boosted_layer_sum",
            print,
            args.set,
        )
    else:
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
            args.baseline or "gbdt",
            args.set,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "few_shot.json").write_text(json.dumps([asdict(r) for r in records], indent=1))
    markdown = summary_markdown(records)
    (args.out / "few_shot.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
