"""SIGKILL hwnas's commands at random moments, rerun them, and check that nothing was lost.

    python scripts/inject_faults.py                                  # every command, 3 kills each
    python scripts/inject_faults.py --commands search profile --kills 5 --seed 1

For each command: one uninterrupted run (the reference, also timing it), then a run in a fresh
directory that is SIGKILLed at a random moment (drawn from the command's own duration), ``--kills``
times, each kill followed by a look at what it had completed; then the same command reruns to the
end. Checked after the rerun, per command:

- ``search`` (table device, seeded): every trial complete before a kill is there after, with the
  same values; the budget counts exactly the evaluations (``summary.json``), none RUNNING or
  WAITING; ``trials.csv`` lists every trial.
- ``profile`` (tiny NB201 networks, live): rows measured before a kill stay as measured, in
  front; the rows number 0..n-1, each architecture once; the same architectures as the reference.
- ``score`` (zero-cost proxies): each architecture once, the reference's architectures, and the
  reference's scores (the proxies are seeded).
- ``fit``: ``metrics.json`` equal to the reference's (timings aside).
- ``train_supernet``: the losses of every epoch equal to the reference's: a resume from a
  checkpoint continues exactly.
- ``pipeline`` (a table column as the device): rows measured before a kill stay, in front,
  numbered 0..n-1; every round runs; each device answer is counted once. (A kill inside a round's
  search restarts its sampler, so the rounds after it may differ from the reference's.)

Prints one line per kill and per check; exits 1 if any check failed. The kills land anywhere:
inside ``study.ask``, between a row's files, while outputs are written.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _completed_trials(run: Path) -> dict[int, tuple[str, tuple[float, ...]]]:
    import optuna

    database = run / "study.db"
    if not database.is_file():
        return {}
    try:
        (summary,) = optuna.get_all_study_summaries(f"sqlite:///{database}")
        study = optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{database}")
    except (ValueError, KeyError, RuntimeError):  # killed before the study existed
        return {}
    return {
        t.number: (t.params.__repr__(), tuple(t.values))
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE"
    }


def _check_search(run: Path, before: list[Any], reference: Path, n_trials: int) -> list[str]:
    import optuna

    from nas.search import evaluations

    database = f"sqlite:///{run / 'study.db'}"
    (summary,) = optuna.get_all_study_summaries(database)
    study = optuna.load_study(study_name=summary.study_name, storage=database)
    trials = study.get_trials(deepcopy=False)
    after = _completed_trials(run)
    problems = [
        f"trial {n} was complete before a kill, now {after.get(n)}" for s in before for n in s if after.get(n) != s[n]
    ]
    if evaluations(study) != n_trials:
        problems.append(f"{evaluations(study)} evaluations for a budget of {n_trials}")
    stuck = [t.number for t in trials if t.state.name in ("RUNNING", "WAITING")]
    if stuck:
        problems.append(f"trials {stuck} left RUNNING or WAITING")
    if json.loads((run / "summary.json").read_text())["trials"]["evaluated"] != n_trials:
        problems.append("summary.json does not count the budget")
    if len(_rows(run / "trials.csv")) != len(trials):
        problems.append(f"trials.csv lists {len(_rows(run / 'trials.csv'))} of {len(trials)} trials")
    return problems


def _profile_rows(run: Path) -> list[tuple[str, str, str]]:
    archs, latency = _rows(run / "archs.csv"), _rows(run / "latency_ms.csv")
    columns = [c for c in (latency[0] if latency else {}) if c != "index"]
    return [(a["index"], a["arch"], latency[i][columns[0]]) for i, a in enumerate(archs) if i < len(latency)]


def _check_profile(run: Path, before: list[Any], reference: Path, n: int) -> list[str]:
    rows = _profile_rows(run)
    problems = [f"{len(b)} rows before a kill are not the first rows after" for b in before if rows[: len(b)] != b]
    if [r[0] for r in rows] != [str(i) for i in range(n)]:
        problems.append(f"indices {[r[0] for r in rows][:10]}... are not 0..{n - 1}")
    if sorted(r[1] for r in rows) != sorted(r[1] for r in _profile_rows(reference)):
        problems.append("not the reference's architectures (or one twice)")
    return problems


def _scores(run: Path) -> list[dict[str, str]]:
    return _rows(run / "scores.csv")


def _check_score(run: Path, before: list[Any], reference: Path, n: int) -> list[str]:
    rows, expected = _scores(run), {r["arch"]: r for r in _scores(reference)}
    archs = [r["arch"] for r in rows]
    problems = [] if len(set(archs)) == len(archs) == n else [f"{len(archs)} rows, {len(set(archs))} distinct, of {n}"]
    if set(archs) != set(expected):
        problems.append("not the reference's architectures")
    for row in rows:
        other = expected.get(row["arch"], {})
        differ = [k for k in row if k not in ("seconds",) and not k.endswith("_s") and row[k] != other.get(k)]
        if differ:
            problems.append(f"{row['arch'][:40]}: {differ} differ from the reference")
            break
    return problems


def _check_fit(run: Path, before: list[Any], reference: Path, n: int) -> list[str]:
    def metrics(directory: Path) -> dict[str, Any]:
        values = json.loads((directory / "metrics.json").read_text())
        return {k: v for k, v in values.items() if "seconds" not in k}

    return [] if metrics(run) == metrics(reference) else ["metrics.json differs from the reference's"]


def _check_training(run: Path, before: list[Any], reference: Path, n: int) -> list[str]:
    def losses(directory: Path) -> list[float]:
        return json.loads((directory / "summary.json").read_text())["training"]["losses"]

    return [] if losses(run) == losses(reference) else [f"losses {losses(run)} != {losses(reference)}"]


def _pipeline_rows(run: Path) -> list[tuple[str, str]]:
    return [(r["index"], r["arch"]) for r in _rows(run / "profile" / "archs.csv")]


def _check_pipeline(run: Path, before: list[Any], reference: Path, rounds: int) -> list[str]:
    rows, summary = _pipeline_rows(run), json.loads((run / "summary.json").read_text())
    problems = [
        f"{len(b)} measured rows before a kill are not the first rows after" for b in before if rows[: len(b)] != b
    ]
    if [r[0] for r in rows] != [str(i) for i in range(len(rows))]:
        problems.append("the profile's indices are not 0..n-1")
    if summary["rounds_run"] != rounds:
        problems.append(f"{summary['rounds_run']} rounds run of {rounds}")
    if summary["device_answers"] != len(rows):
        problems.append(f"{summary['device_answers']} device answers counted for {len(rows)} measured rows")
    return problems


@dataclass(frozen=True)
class Case:
    command: str
    overrides: tuple[str, ...]
    size: int  # the budget, rows or epochs the run must end with
    snapshot: Callable[[Path], Any]
    check: Callable[[Path, list[Any], Path, int], list[str]]


def cases(data_dir: Path) -> dict[str, Case]:
    tiny = ("+space.instance.channels=4", "+space.instance.cells_per_stage=1")
    quiet = ("progress=false",)
    return {
        "search": Case(
            "search",
            (
                "device=raspi4",
                "objectives=accuracy_latency",
                "sampler=random",
                "budget.n_trials=40",
                "export.onnx=false",
                "tensorboard=false",
                "report=false",
                # the killed trial's heartbeat goes stale in 3 s, not configs/storage's 30: the
                # rerun fails and retries it by the same check, without waiting half a minute
                "storage.heartbeat_interval=1",
                "storage.grace_period=3",
                f"data_dir={data_dir}",
                *quiet,
            ),
            40,
            _completed_trials,
            _check_search,
        ),  # fmt: skip
        "profile": Case(
            "profile",
            (*tiny, "warmup=1", "repeats=3", "max_repeats=3", "selection.pool=60", "n_archs=30", *quiet),
            30,
            _profile_rows,
            _check_profile,
        ),  # fmt: skip
        "score": Case(
            "score",
            ("n_archs=30", "proxy=[synflow,naswot]", f"data_dir={data_dir}", *quiet),
            30,
            _scores,
            _check_score,
        ),  # fmt: skip
        "fit": Case(
            "fit",
            ("device=raspi4", "predictor=layer_sum", "n_train=200", f"data_dir={data_dir}"),
            0,
            lambda run: None,
            _check_fit,
        ),  # fmt: skip
        "pipeline": Case(
            "pipeline",
            (
                "device=raspi4",
                "objectives=accuracy_latency",
                "n_profile=16",
                "budget.n_trials=20",
                "sampler=nsga2",
                "sampler.population_size=8",
                "predictor=layer_sum",
                "max_rounds=2",
                "hv_tolerance=0",
                f"data_dir={data_dir}",
                *quiet,
            ),
            2,
            _pipeline_rows,
            _check_pipeline,
        ),  # fmt: skip
        "train_supernet": Case(
            "train_supernet",
            (
                "++space.instance.channels=4",
                "++space.instance.cells_per_stage=1",
                "epochs=4",
                "evaluation.archs=2",
                "evaluation.bn_batches=1",
                f"data_dir={data_dir}",
                *quiet,
            ),
            4,
            lambda run: None,
            _check_training,
        ),  # fmt: skip
    }


def _command(case: Case, run: Path) -> list[str]:
    return [sys.executable, "-m", f"nas.cli.{case.command}", *case.overrides, f"hydra.run.dir={run}"]


def _run(case: Case, run: Path) -> float:
    started = time.monotonic()
    result = subprocess.run(_command(case, run), cwd=REPO, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{case.command} failed ({result.returncode}): {result.stderr[-2000:]}")
    return time.monotonic() - started


def inject(case: Case, workdir: Path, kills: int, rng: np.random.Generator, log: Callable[[str], None]) -> list[str]:
    """The reference run, ``kills`` SIGKILLs of a second run at random moments, its rerun; the
    problems found (empty: nothing lost)."""
    reference, run = workdir / f"{case.command}_reference", workdir / f"{case.command}_killed"
    seconds = _run(case, reference)
    before = []
    for kill in range(kills):
        delay = float(rng.uniform(0.4 * seconds, 0.95 * seconds))  # the first ~third is Python starting
        process = subprocess.Popen(_command(case, run), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        before.append(case.snapshot(run))
        held = "" if before[-1] is None else f", {len(before[-1])} complete then"
        log(f"{case.command}: kill {kill + 1} at {delay:.1f} s of a {seconds:.1f} s run{held}")
    _run(case, run)
    return case.check(run, [b for b in before if b], reference, case.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--commands", nargs="+", default=["search", "profile", "score", "fit", "train_supernet", "pipeline"]
    )
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="the tables (default: HWNAS_DATA or ../shared/data)"
    )
    parser.add_argument("--workdir", type=Path, default=Path("fault_runs"))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from nas.cli import data_dir

    available = cases(args.data_dir or data_dir())
    rng = np.random.default_rng(args.seed)
    failed = False
    for name in args.commands:
        problems = inject(available[name], args.workdir / f"seed{args.seed}", args.kills, rng, print)
        print(f"{name}: {'ok' if not problems else 'FAILED: ' + '; '.join(problems)}")
        failed |= bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
