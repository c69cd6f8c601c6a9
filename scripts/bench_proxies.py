"""Zero-cost proxies against published accuracies: NAS-Bench-201's tables, OFA's predictor.

    python scripts/bench_proxies.py                                  # 1,000 random cells, every proxy
    python scripts/bench_proxies.py --n-archs 15625 --selection all --proxies naswot meco
    python scripts/bench_proxies.py --seed 1                         # a fresh sample: the confirmation
    python scripts/bench_proxies.py --space ofa --truth ofa_accuracy_latency --n-archs 200  # OFA's predictor

Scores come from ``hwnas-score`` itself: its config (configs/score.yaml) is composed with
``space=<space> selection=<selection> n_archs=<n> seed=<seed> data=<data> proxy=[<proxy>]`` and
run by ``nas.cli.score.score_run``, the function behind the command, one run per proxy into
--out-dir/<sample>/<proxy> (resumable: a rerun, or a new proxy, scores only what is missing).
Then, against each accuracy column of the space's table (NB201's archs.csv: CIFAR-10, CIFAR-100,
ImageNet16-120 test accuracy) or, where the table has none, the accuracy objective of --truth
(OFA: ``ofa_accuracy_latency``, its published predictor, subnets at resolutions 160..239 only);
a space with neither (FBNet) is refused before scoring, saying so:

- each proxy's Spearman and Kendall over the sample; an architecture a proxy refuses (the
  disconnected NB201 cells, whose output ignores the input) is ranked below every scored one;
- ensembles over --ensemble members: rank vote, AZ-NAS's non-linear rank aggregation
  (``nas.proxies``), and the learned combination fitted on k labelled cells (k in --ks, seeds in
  --label-seeds) and scored on the others;
- cost: seconds per architecture per proxy, as scores were computed (seconds.csv);
- agreement with NASLib's published scores (zero_cost_naslib_subset.json, 725 cells): every proxy
  NASLib has, scored by hwnas-score on those cells (selection=list) and compared by Spearman.

Writes --out-json and a Markdown summary to --out-md.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from scipy.stats import kendalltau, spearmanr

from latency_predictors.predictors import ProxyBoostingPredictor
from nas import Candidate, Objective, ObjectiveError, SearchSpace
from nas.cli import CONFIG_DIR, config_options, data_dir
from nas.cli.score import proxies_of, score_run
from nas.proxies import LearnedCombination, ProxyScores, nonlinear_rank, rank_vote
from nas.tables import BenchmarkTable
from search_spaces import NB201Space
from search_spaces.nb201 import naslib_architecture

#: hwnas proxy name -> NASLib's name in zero_cost_naslib_subset.json.
NASLIB_NAMES = {
    "synflow": "synflow",
    "naswot": "nwot",
    "jacob_cov": "jacov",
    "snip": "snip",
    "grasp": "grasp",
    "fisher": "fisher",
    "grad_norm": "grad_norm",
    "flops": "flops",
    "params": "params",
}


@dataclass(frozen=True)
class Scored:
    """hwnas-score's rows of the sample, one run per proxy (out_dir/<proxy>)."""

    space: SearchSpace
    archs: list[str]
    values: np.ndarray  # (n, p), NaN where a proxy refused
    seconds: np.ndarray  # (n, p)
    members: dict[str, Objective]  # each proxy as configured
    dirs: dict[str, Path]  # each proxy's hwnas-score directory


def score(args: argparse.Namespace, overrides: list[str], out_dir: Path) -> Scored:
    """Score the sample, one hwnas-score run per proxy (so adding a proxy scores only it)."""
    archs: list[str] | None = None
    values, seconds, members = [], [], {}
    for proxy in args.proxies:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(
                config_name="score",
                overrides=[
                    f"space={args.space}",
                    f"data={args.data}",
                    f"proxy=[{proxy}]",
                    f"data_dir={args.data_dir}",
                    f"progress={str(args.progress).lower()}",
                    *overrides,
                ],
            )
        space, rows = score_run(cfg, out_dir / proxy)
        members.update(proxies_of(cfg))
        if archs is None:
            archs = [r.arch for r in rows]
        assert archs == [r.arch for r in rows], "every proxy scores the same architectures"
        values.append([np.nan if r.values[proxy] is None else r.values[proxy] for r in rows])
        seconds.append([r.seconds[proxy] for r in rows])
    dirs = {p: out_dir / p for p in args.proxies}
    return Scored(space, archs or [], np.array(values).T, np.array(seconds).T, members, dirs)


def correlations(values: np.ndarray, accuracy: np.ndarray) -> dict[str, float]:
    filled = np.where(np.isnan(values), -np.inf, values)
    return {"spearman": float(spearmanr(filled, accuracy)[0]), "kendall": float(kendalltau(filled, accuracy)[0])}


def single_proxies(args: argparse.Namespace, values: np.ndarray, seconds: np.ndarray, acc: dict) -> dict:
    out = {}
    for j, proxy in enumerate(args.proxies):
        scored = ~np.isnan(values[:, j])
        out[proxy] = {
            "unscored": int((~scored).sum()),
            "seconds_mean": float(seconds[scored, j].mean()) if scored.any() else None,
            "seconds_p95": float(np.percentile(seconds[scored, j], 95)) if scored.any() else None,
            **{column: correlations(values[:, j], acc[column]) for column in acc},
        }
    return out


def ensembles(args: argparse.Namespace, values: np.ndarray, seconds: np.ndarray, acc: dict) -> dict:
    members = [p for p in (args.ensemble or args.proxies) if p in args.proxies]
    columns = [args.proxies.index(p) for p in members]
    chosen, cost = values[:, columns], float(np.nansum(np.nanmean(seconds[:, columns], axis=0)))
    out: dict[str, object] = {"members": members, "seconds_mean": cost}
    for name, rule in (("rank_vote", rank_vote), ("nonlinear_rank", nonlinear_rank)):
        combined = rule(chosen)
        out[name] = {column: correlations(combined, acc[column]) for column in acc}

    def learned(column: str, labelled: np.ndarray, rest: np.ndarray, seed: int) -> np.ndarray:
        return LearnedCombination.fit(chosen, labelled, acc[column][labelled]).predict(chosen)[rest]

    out["learned"] = label_draws(args, len(values), acc, learned)
    return out


def label_draws(
    args: argparse.Namespace, n: int, acc: dict, rank: Callable[[str, np.ndarray, np.ndarray, int], np.ndarray]
) -> dict[str, dict]:
    """For each accuracy column and k in --ks (below n), ``rank(column, labelled, rest, seed)``'s
    Spearman and Kendall on the rest, mean over --label-seeds (k rows drawn by [seed, k])."""
    out: dict[str, dict] = {}
    for column in acc:
        for k in args.ks:
            if k >= n:
                continue
            runs = []
            for seed in args.label_seeds:
                labelled = np.random.default_rng([seed, k]).choice(n, size=k, replace=False)
                rest = np.setdiff1d(np.arange(n), labelled)
                runs.append(correlations(rank(column, labelled, rest, seed), acc[column][rest]))
            out.setdefault(column, {})[str(k)] = {
                stat: float(np.mean([r[stat] for r in runs])) for stat in ("spearman", "kendall")
            }
    return out


def few_label(args: argparse.Namespace, scored: Scored, keep: np.ndarray, acc: dict) -> dict:
    """The few-label accuracy predictor (ProxyBoostingPredictor on the --ensemble members, their
    scores read from the sample's hwnas-score directories, percentiles among the whole sample's
    scores as the learned combination takes them, or with --reference labelled among the labelled
    cells' only) fitted on k labelled architectures per label
    seed, Spearman and Kendall of its ranking of the others; mean over label seeds."""
    members = [p for p in (args.ensemble or args.proxies) if p in args.proxies]
    space = scored.space
    scores = ProxyScores({p: scored.members[p] for p in members}, space, [scored.dirs[p] for p in members])
    archs = [space.parse(a) for a, k in zip(scored.archs, keep, strict=True) if k]

    def predicted(column: str, labelled: np.ndarray, rest: np.ndarray, seed: int) -> np.ndarray:
        reference = archs if args.reference == "sample" else ()
        model = ProxyBoostingPredictor(space, column, scores, reference=reference, seed=seed)
        model.fit([archs[i] for i in labelled], acc[column][labelled])
        return model.predict_rank([archs[i] for i in rest])

    out = label_draws(args, len(archs), acc, predicted)
    assert scores.evaluations == 0, "every score comes from the sample's hwnas-score directories"
    return {"members": members, "predictor": ProxyBoostingPredictor.kind, **out}


def naslib_agreement(args: argparse.Namespace) -> dict:
    """Spearman of hwnas's scores with NASLib's published ones, per proxy NASLib has."""
    table = json.loads((Path(args.data_dir) / "nb201" / "zero_cost_naslib_subset.json").read_text())["cifar10"]
    known = [p for p in args.proxies if p in NASLIB_NAMES]
    if not known:
        return {}
    space = NB201Space()
    strings = {}
    for key in table:
        strings[key] = naslib_architecture(space, key).string
    list_file = args.out_dir / "naslib_cells.txt"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    list_file.write_text("\n".join(strings.values()) + "\n")
    sub = argparse.Namespace(**{**vars(args), "proxies": known})
    scored = score(
        sub,
        ["selection=list", f"selection.path={list_file}", f"n_archs={len(strings)}", f"seed={args.seed}"],
        args.out_dir / f"naslib_{args.data}_seed{args.seed}",
    )
    by_arch = dict(zip(scored.archs, scored.values, strict=True))
    out = {}
    for j, proxy in enumerate(known):
        ours, theirs = [], []
        for key, string in strings.items():
            row = table[key].get(NASLIB_NAMES[proxy])
            if row is None or string not in by_arch or np.isnan(by_arch[string][j]):
                continue
            ours.append(by_arch[string][j])
            theirs.append(row["score"])
        out[proxy] = {"cells": len(ours), "spearman": float(spearmanr(ours, theirs)[0])}
    return out


def markdown(result: dict) -> str:
    columns = result["accuracy"]
    short = {"cifar10_test_acc": "C-10", "cifar100_test_acc": "C-100", "imagenet16_120_test_acc": "IN16"}
    heads = [short.get(c, c) for c in columns]
    lines = [
        f"Sample: {result['n_archs']} {result['space']} architectures ({result['selection']}, seed "
        f"{result['seed']}), data {result['data']}. Spearman / Kendall against each accuracy.",
        "",
        "| proxy | " + " | ".join(heads) + " | s/arch (mean, p95) | unscored | NASLib agreement |",
        "|---|" + "---|" * (len(columns) + 3),
    ]

    def pair(r: dict) -> str:
        return f"{r['spearman']:.3f} / {r['kendall']:.3f}"

    for proxy, r in result["proxies"].items():
        agree = result["naslib"].get(proxy, {}).get("spearman")
        cost = "" if r["seconds_mean"] is None else f"{r['seconds_mean']:.3f}, {r['seconds_p95']:.3f}"
        lines.append(
            f"| {proxy} | "
            + " | ".join(pair(r[c]) for c in columns)
            + f" | {cost} | {r['unscored']} | "
            + ("" if agree is None else f"{agree:.3f}")
            + " |"
        )
    e = result["ensembles"]
    lines += ["", f"Ensembles of {', '.join(e['members'])} ({e['seconds_mean']:.3f} s/arch together):", ""]
    lines += ["| ensemble | " + " | ".join(heads) + " |", "|---|" + "---|" * len(columns)]
    for name in ("rank_vote", "nonlinear_rank"):
        lines.append(f"| {name} | " + " | ".join(pair(e[name][c]) for c in columns) + " |")
    for k in result["ks"]:
        cells = [e["learned"].get(c, {}).get(str(k)) for c in columns]
        if all(cells):
            lines.append(f"| learned, k={k} (on the rest) | " + " | ".join(pair(c) for c in cells) + " |")
    f = result["few_label"]
    lines += ["", f"Few-label predictor {f['predictor']} on {', '.join(f['members'])} (on the rest):", ""]
    lines += ["| k | " + " | ".join(heads) + " |", "|---|" + "---|" * len(columns)]
    for k in result["ks"]:
        cells = [f.get(c, {}).get(str(k)) for c in columns]
        if all(cells):
            lines.append(f"| {k} | " + " | ".join(pair(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def ground_truth(args: argparse.Namespace) -> tuple[BenchmarkTable, Objective | None]:
    """What the proxies are ranked against, found before anything is scored: the space's table
    (configs/space) when it has accuracy columns (NB201's three test accuracies), else the
    ``accuracy`` objective of the objectives option --truth (OFA: ``ofa_accuracy_latency``, its
    published predictor); a space with neither (FBNet) is refused, saying so."""
    overrides = [
        f"space={args.space}",
        f"data_dir={args.data_dir}",
        *([f"objectives={args.truth}"] if args.truth else []),
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="search", overrides=overrides)
    table = BenchmarkTable.load(cfg.space.table_dir)
    if table.accuracy_columns:
        return table, None
    if args.truth is None:
        raise SystemExit(
            f"{args.space}'s table ({table.directory}) has no accuracy column, so nothing ranks proxies "
            "there unless --truth names an objectives option with an accuracy (OFA: ofa_accuracy_latency, "
            "its published accuracy predictor); FBNet's published tables hold hardware metrics only"
        )
    return table, instantiate(cfg.objectives.accuracy, name="accuracy")


def accuracies(args: argparse.Namespace, scored: Scored, table: BenchmarkTable, truth: Objective | None) -> dict:
    """Each ground-truth column over the sample (see :func:`ground_truth`); NaN where the truth
    cannot answer (OFA's predictor outside its resolutions): those rows are left out."""
    if truth is None:
        rows = np.array([table.lookup(a) for a in scored.archs])
        return {column: table.accuracy(column)[rows] for column in table.accuracy_columns}
    values = []
    for string in scored.archs:
        try:
            values.append(truth.evaluate(Candidate(scored.space.parse(string), scored.space)))
        except ObjectiveError:
            values.append(np.nan)
    return {f"{args.truth}.accuracy": np.array(values)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--proxies", nargs="+", default=config_options("proxy"), choices=config_options("proxy"))
    parser.add_argument("--ensemble", nargs="*", default=None, help="members of the ensembles (default: every proxy)")
    parser.add_argument("--space", default="nb201", choices=config_options("space"))
    parser.add_argument(
        "--truth",
        default=None,
        choices=config_options("objectives"),
        help="where the space's table has no accuracy column: the objectives option whose accuracy "
        "ranks the proxies (OFA: ofa_accuracy_latency, its published predictor)",
    )
    parser.add_argument("--n-archs", type=int, default=1000)
    parser.add_argument("--selection", default="uniform", choices=["uniform", "all"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data",
        default=None,
        choices=config_options("data"),
        help="the images proxies see (default: cifar10 when <data-dir>/cifar/cifar-10-batches-py exists, else packaged)",
    )
    parser.add_argument(
        "--ks",
        type=int,
        nargs="*",
        default=[10, 50, 100, 500, 1000],
        help="label counts (those not below the sample size are skipped)",
    )
    parser.add_argument("--label-seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--reference",
        default="sample",
        choices=["sample", "labelled"],
        help="the few-label predictor's percentiles among the whole sample (default) or the labelled "
        "cells only (as objectives=few_label_latency, which has no unlabelled sample)",
    )
    parser.add_argument("--no-naslib", action="store_true", help="skip the agreement with NASLib's scores")
    parser.add_argument("--data-dir", default=str(data_dir()))
    parser.add_argument("--out-dir", type=Path, default=Path("bench_proxies"))
    parser.add_argument("--out-json", type=Path, default=Path("bench_proxies.json"))
    parser.add_argument("--out-md", type=Path, default=Path("bench_proxies.md"))
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    if args.data is None:
        args.data = "cifar10" if (Path(args.data_dir) / "cifar" / "cifar-10-batches-py").is_dir() else "packaged"

    sample_dir = args.out_dir / f"{args.space}_{args.selection}{args.n_archs}_{args.data}_seed{args.seed}"
    overrides = [f"selection={args.selection}", f"n_archs={args.n_archs}", f"seed={args.seed}"]
    table, truth = ground_truth(args)
    scored = score(args, overrides, sample_dir)
    acc = accuracies(args, scored, table, truth)
    known = np.all([np.isfinite(a) for a in acc.values()], axis=0)
    archs, values, seconds = [a for a, k in zip(scored.archs, known) if k], scored.values[known], scored.seconds[known]
    acc = {column: a[known] for column, a in acc.items()}
    result = {
        "space": args.space,
        "n_archs": len(archs),
        "selection": args.selection,
        "seed": args.seed,
        "data": args.data,
        "ks": args.ks,
        "accuracy": list(acc),
        "proxies": single_proxies(args, values, seconds, acc),
        "ensembles": ensembles(args, values, seconds, acc),
        "few_label": few_label(args, scored, known, acc),
        "naslib": {} if args.no_naslib or args.space != "nb201" else naslib_agreement(args),
    }
    args.out_json.write_text(json.dumps(result, indent=1) + "\n")
    args.out_md.write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
