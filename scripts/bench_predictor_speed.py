"""Prediction speed: architectures per second in batches, and the latency of one prediction.

    python scripts/bench_predictor_speed.py                          # every space and family
    python scripts/bench_predictor_speed.py --spaces nb201 --families gbdt --batch 100000

The issue's target: >= 100,000 architectures per second in batches on this CPU, and a single
prediction in under 1 ms. For each space (nb201, fbnet, ofa) and family (configs/predictor
options), fit as hwnas-fit fits it (its configuration, composed with ``space=<space>
predictor=<family> n_train=<--n-train> seed=0``, and its library call ``nas.fitting.fit_column``)
on one device column of the shared table (the first column, unless ``--device``), then:

* batch: ``predict`` on ``--batch`` architectures sampled from the space (``Architecture``
  values made beforehand, so parsing is not counted; everything ``predict`` does is: features,
  FLOPs, graphs, the model), best of ``--repeats`` timings;
* single: ``predict([arch])`` on ``--singles`` newly sampled architectures one at a time; median
  and 99th percentile.

Threads: the process is pinned to ``--threads`` (torch, and the OMP/BLAS pools read at start-up).
Writes a JSON of every record to ``--out`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _pin_threads(n: int) -> None:
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", nargs="+", default=["nb201", "fbnet", "ofa"])
    parser.add_argument(
        "--families", nargs="+", default=["layer_sum", "gbdt", "boosted_layer_sum", "mlp", "gnn", "flops"]
    )
    parser.add_argument("--device", default=None, help="device column (default: the table's first)")
    parser.add_argument("--n-train", type=int, default=900)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("HWNAS_DATA", REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--out", type=Path, default=Path("bench_predictor_speed.json"))
    args = parser.parse_args()
    _pin_threads(args.threads)
    records = run(args)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(markdown(records))


def run(args: argparse.Namespace) -> list[dict[str, object]]:
    import numpy as np
    import torch
    from hydra.utils import instantiate  # after _pin_threads: these import torch and BLAS

    from latency_predictors.predictors import UnseenLayerError
    from nas.cli.fit import compose_fit
    from nas.fitting import ParsedTable, fit_column
    from nas.tables import BenchmarkTable

    torch.set_num_threads(args.threads)
    records = []
    for space_name in args.spaces:
        base = (f"space={space_name}", f"data_dir={args.data_dir}", "seed=0")
        cfg = compose_fit(*base)
        space = instantiate(cfg.space.instance)
        data = ParsedTable.parse(space, BenchmarkTable.load(cfg.table_dir))
        device = args.device or data.table.devices("latency_ms")[0]
        rng = np.random.default_rng(1)
        batch = [space.sample(rng) for _ in range(args.batch)]
        for family in args.families:
            factory = instantiate(compose_fit(*base, f"predictor={family}").predictor)
            try:  # fitted as hwnas-fit fits it: n_train rows drawn with seed 0
                predictor = fit_column(data, "latency_ms", device, factory, args.n_train, 0).predictor
                predictor.predict(batch[:1000])  # warm caches (class tables, lazy imports)
            except UnseenLayerError as error:  # OFA: 900 networks leave most layer keys unseen
                print(f"{space_name} {family}: skipped, {str(error)[:120]}...", flush=True)
                continue
            seconds = min(_timed(lambda: predictor.predict(batch)) for _ in range(args.repeats))
            # architectures this predictor has not seen, so no per-string cache answers
            fresh = np.random.default_rng([2, len(records)])
            singles = np.array(
                [_timed(lambda a=a: predictor.predict([a])) for a in (space.sample(fresh) for _ in range(args.singles))]
            )
            record = {
                "space": space_name,
                "family": family,
                "device": device,
                "threads": args.threads,
                "batch": args.batch,
                "batch_seconds": seconds,
                "archs_per_second": args.batch / seconds,
                "single_ms_median": 1e3 * float(np.median(singles)),
                "single_ms_p99": 1e3 * float(np.quantile(singles, 0.99)),
            }
            records.append(record)
            print(json.dumps(record), flush=True)
    return records


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def markdown(records: list[dict[str, object]]) -> str:
    lines = ["| space | family | archs/s (batch) | single, median | single, p99 |", "|---|---|---|---|---|"]
    for r in records:
        lines.append(
            f"| {r['space']} | {r['family']} | {r['archs_per_second']:,.0f} | "
            f"{r['single_ms_median']:.3f} ms | {r['single_ms_p99']:.3f} ms |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
