"""Feed hwnas's commands bad input and classify what each does.

    python scripts/probe_bad_inputs.py              # every case, a line each, then the counts
    python scripts/probe_bad_inputs.py --only table  # cases whose name contains "table"

Each case is one command line a user could type (``hwnas-search``, ``hwnas-fit``, ...; run as
``python -m nas.cli.<command>``), some against files made bad on purpose in a scratch folder:
copies of the shared NB201 table with one thing broken, predictor files edited after
``hwnas-fit`` wrote them, list files in another encoding. Every run directory is a scratch folder. An outcome is

- **refused**: exit status 2, a message on stderr naming the bad value, no traceback: what every
  bad input should get;
- **warned**: exit status 0 with a warning naming the bad value, for input hwnas reads around
  (an infinite accuracy is read as missing);
- **hydra**: Hydra's own refusal (exit 1, its message, no traceback) of what its grammar or its
  config groups cannot read, before hwnas runs;
- **unclean**: anything else: a traceback, a crash, another status, a silent success.

Exits 1 if any case is unclean or did not name the value it was given.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from nas.cli import data_dir as default_data_dir  # noqa: E402

QUICK = ["budget.n_trials=3", "export.onnx=false", "report=false", "tensorboard=false", "progress=false"]


@dataclass(frozen=True)
class Case:
    name: str
    command: str
    overrides: tuple[str, ...]
    expect: str  # refused, warned or hydra
    names: str  # text the message must contain: it names the bad value
    prepare: Callable[[Path, Path], None] | None = None  # (scratch, data) -> None


def _table_copy(scratch: Path, data: Path, edit: Callable[[list[str], list[str]], None]) -> None:
    """scratch/nb201: archs.csv and latency_ms.csv of the shared table, ``edit``ed as line lists."""
    folder = scratch / "nb201"
    folder.mkdir()
    archs = (data / "nb201" / "archs.csv").read_text().splitlines()
    latency = (data / "nb201" / "latency_ms.csv").read_text().splitlines()
    edit(archs, latency)
    (folder / "archs.csv").write_text("\n".join(archs) + "\n")
    (folder / "latency_ms.csv").write_text("\n".join(latency) + "\n")


def _cell(lines: list[str], row: int, column: int, value: str) -> None:
    cells = lines[row].split(",")
    cells[column] = value
    lines[row] = ",".join(cells)


def table(edit: Callable[[list[str], list[str]], None]) -> Callable[[Path, Path], None]:
    return lambda scratch, data: _table_copy(scratch, data, edit)


def _fitted(scratch: Path, data: Path) -> Path:
    run = scratch / "fit"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "nas.cli.fit",
            "device=raspi4",
            "n_train=50",
            f"data_dir={data}",
            f"hydra.run.dir={run}",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return run / "predictor.npz"


def predictor(edit: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    def prepare(scratch: Path, data: Path) -> None:
        edit(_fitted(scratch, data))

    return prepare


def _flip_array_byte(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {i.filename: archive.read(i) for i in archive.infolist()}
    name = next(n for n in members if n.endswith(".npy"))
    data = bytearray(members[name])
    data[-3] ^= 0x01
    members[name] = bytes(data)
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)


def _bomb(path: Path) -> None:
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("filler.npy", b"\0" * (300 * 2**20))


def _list_file(content: bytes) -> Callable[[Path, Path], None]:
    return lambda scratch, data: (scratch / "archs.txt").write_bytes(content)


T = "{scratch}"  # replaced by the scratch folder


def table_case(name: str, expect: str, names: str, edit: Callable[[list[str], list[str]], None]) -> Case:
    """A search on raspi4's column of a copy of NB201's table, ``edit``ed (archs, latency lines)."""
    overrides = ("device=raspi4", "objectives=accuracy_latency", f"data_dir={T}")
    return Case(name, "search", overrides, expect, names, table(edit))


def predictor_case(name: str, names: str, edit: Callable[[Path], None]) -> Case:
    """A device=predicted search on a predictor hwnas-fit wrote, ``edit``ed after."""
    overrides = ("device=predicted", f"device.latency={T}/fit/predictor.npz")
    return Case(name, "search", overrides, "refused", names, predictor(edit))


CASES = [
    # hwnas-search options
    Case("search n_trials negative", "search", ("budget.n_trials=-5",), "refused", "budget.n_trials=-5"),
    Case("search n_trials fraction", "search", ("budget.n_trials=2.5",), "refused", "budget.n_trials=2.5"),
    Case("search n_trials text", "search", ("budget.n_trials=abc",), "refused", "budget.n_trials='abc'"),
    Case("search n_trials zero", "search", ("budget.n_trials=0",), "refused", "budget.n_trials=0"),
    Case("search timeout negative", "search", ("budget.timeout_s=-1",), "refused", "budget.timeout_s=-1"),
    Case("search seed negative", "search", ("seed=-1",), "refused", "seed=-1"),
    Case("search worker negative", "search", ("worker=-1",), "refused", "worker=-1"),
    Case("search reference nan", "search", ("reference_point=[nan,100]",), "refused", "reference_point=[nan, 100]"),
    Case("search reference scalar", "search", ("reference_point=5",), "refused", "reference_point=5"),
    Case("search regret budget negative", "search", ("regret_budgets=[-1]",), "refused", "regret_budgets=[-1]"),
    Case(
        "search constraint lower above upper",
        "search",
        ("+constraints.latency_ms.lower=5", "+constraints.latency_ms.upper=1"),
        "refused",
        "lower=5 is above upper=1",
    ),
    Case("search constraint nan", "search", ("+constraints.latency_ms.upper=nan",), "refused", "upper=nan"),
    Case("search constraint unknown metric", "search", ("+constraints.speed.upper=1",), "refused", "'speed'"),
    Case("search constraint not a mapping", "search", ("+constraints.latency_ms=3",), "refused", "latency_ms=3"),
    Case("search device name escapes", "search", ("device=table", "device.name=../../x"), "refused", "../../x"),
    Case("search space name escapes", "search", ("space.name=../../X",), "refused", "../../X"),
    Case("search unknown table device", "search", ("device=table", "device.name=raspi5"), "refused", "raspi5"),
    Case("search sampled table", "search", ("space=fbnet", "device=pixel3"), "refused", "5,000 of the"),
    Case("search energy without meter", "search", ("objectives=synflow_latency_energy",), "refused", "energy_mj"),
    Case("search unknown device group", "search", ("device=raspi5",), "hydra", "raspi5"),
    Case("search opset too old", "search", ("export.opset=3",), "refused", "export.opset=3"),
    # deployment searches (deployment=cpu_stack): genes and runtimes that do not fit together
    Case(
        "search deployment runtime nothing runs",
        "search",
        (
            "deployment=cpu_stack",
            "deployment.deployment.genes.runtime=[onnxruntime,tensorrt]",
            "~deployment.deployment.takes.torch_eager",
            "~deployment.deployment.takes.torch_compile",
        ),
        "refused",
        "['tensorrt']",
    ),
    Case(
        "search deployment takes unknown gene",
        "search",
        ("deployment=cpu_stack", "deployment.deployment.takes.torch_eager=[cores]"),
        "refused",
        "['cores']",
    ),
    Case(
        "search deployment name escapes", "search", ("deployment=cpu_stack", "deployment.name=../x"), "refused", "../x"
    ),
    Case(
        "search int8 agreement above one",
        "search",
        ("deployment=cpu_stack", "export.int8_min_agreement=-0.5"),
        "refused",
        "export.int8_min_agreement=-0.5",
    ),
    # tables (a copy of NB201's, one thing broken), searched on raspi4's column
    table_case("table text cell", "refused", "'fast'", lambda a, lat: _cell(lat, 5, 10, "fast")),
    table_case(
        "table repeated column",
        "refused",
        "raspi4",
        lambda a, lat: lat.__setitem__(0, lat[0].replace("fpga", "raspi4")),
    ),
    table_case(
        "table repeated architecture",
        "refused",
        "both hold",
        lambda a, lat: a.__setitem__(3, a[3].split(",")[0] + "," + ",".join(a[2].split(",")[1:])),
    ),
    table_case("table index out of order", "refused", "index", lambda a, lat: _cell(lat, 7, 0, "70")),
    table_case("table rows missing", "refused", "rows", lambda a, lat: lat.__delitem__(slice(100, 200))),
    table_case("table infinite accuracy", "warned", "infinite", lambda a, lat: _cell(a, 2, 2, "inf")),
    table_case("table negative latency", "warned", "<= 0 or infinite", lambda a, lat: _cell(lat, 2, 10, "-3")),
    # hwnas-fit
    Case("fit n_train zero", "fit", ("device=raspi4", "n_train=0"), "refused", "n_train=0"),
    Case("fit unknown device", "fit", ("device=table", "device.name=nope"), "refused", "nope"),
    Case("fit unknown metric", "fit", ("device=raspi4", "metric=power"), "refused", "metric='power'"),
    Case(
        "fit one source device not in a list",
        "fit",
        ("device=raspi4", "predictor=few_shot", "n_train=10", "source_devices=pixel3"),
        "refused",
        "source_devices='pixel3'",
    ),
    # predictor files edited after hwnas-fit wrote them, searched with device=predicted
    Case(
        "predictor missing",
        "search",
        ("device=predicted", f"device.latency={T}/absent.npz"),
        "refused",
        "absent.npz",
    ),
    predictor_case(
        "predictor truncated", "predictor.npz", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    ),
    predictor_case("predictor array edited", "sha256", _flip_array_byte),
    predictor_case("predictor inflates", "predictor.npz", _bomb),
    # hwnas-profile, hwnas-score, hwnas-train-supernet, hwnas-pipeline, hwnas-export
    Case(
        "profile list not utf-8",
        "profile",
        ("selection=list", f"selection.path={T}/archs.txt"),
        "refused",
        "not UTF-8",
        _list_file(b"|nor_conv_3x3~0|+\xff\n"),
    ),
    Case(
        "profile list bad line",
        "profile",
        ("selection=list", f"selection.path={T}/archs.txt"),
        "refused",
        "line 2",
        _list_file(b"# a list\nnot an architecture\n"),
    ),
    Case("profile device name escapes", "profile", ("device_name=../x",), "refused", "../x"),
    Case(
        "profile deployment the genes cannot make",
        "profile",
        ("deployment=cpu_stack", 'deployments=["runtime=tensorrt"]', "n_archs=1"),
        "refused",
        "'tensorrt'",
    ),
    Case("search predicted without a predictor", "search", ("device=predicted",), "refused", "device.latency"),
    Case("fit per_deployment without deployments", "fit", ("predictor=per_deployment",), "refused", "no deployments"),
    Case(
        "search profiled deployments of a network table",
        "search",
        ("deployment=profiled", f"device.latency={T}/fit/predictor.npz"),
        "refused",
        "holds networks, not deployed candidates",
        predictor(lambda path: None),
    ),
    Case("score n_archs zero", "score", ("n_archs=0",), "refused", "n_archs=0"),
    Case("train epochs zero", "train_supernet", ("epochs=0",), "refused", "epochs=0"),
    Case("train lr negative", "train_supernet", ("optimizer.lr=-1",), "refused", "optimizer.lr=-1"),
    Case("pipeline n_profile one", "pipeline", ("n_profile=1",), "refused", "n_profile=1"),
    Case("export run missing", "export", (f"run_dir={T}/nothing",), "refused", "nothing"),
]


def run_case(case: Case, data: Path) -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        if case.prepare is not None:
            case.prepare(scratch, data)
        overrides = [o.replace(T, str(scratch)) for o in case.overrides]
        if not any(o.startswith("data_dir=") for o in overrides) and case.command != "export":
            overrides.append(f"data_dir={data}")
        given = {o.split("=", 1)[0] for o in overrides}
        extra = [q for q in QUICK if q.split("=", 1)[0] not in given] if case.command == "search" else []
        result = subprocess.run(
            [sys.executable, "-m", f"nas.cli.{case.command}", *overrides, *extra, f"hydra.run.dir={scratch / 'run'}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=900,
        )
    said = (result.stdout + result.stderr).strip().splitlines()
    message = next((line for line in reversed(said) if case.names in line), said[-1] if said else "")
    traceback = "Traceback" in result.stderr
    if traceback or result.returncode not in (0, 1, 2):
        outcome = "unclean"
    else:
        outcome = {0: "warned", 1: "hydra", 2: "refused"}[result.returncode]
    if outcome != "unclean" and (outcome != case.expect or case.names not in result.stderr + result.stdout):
        outcome = "unclean"
    if outcome == "unclean":
        message = f"exit {result.returncode}: {result.stderr.strip()[-300:]}"
    return outcome, message[:300]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="run the cases whose name contains this")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data = args.data_dir or Path(default_data_dir())
    counts: Counter[str] = Counter()
    started = time.monotonic()
    for case in CASES:
        if args.only not in case.name:
            continue
        outcome, message = run_case(case, data)
        counts[outcome] += 1
        print(f"{outcome:8s} {case.name}: {message}", flush=True)
    print(f"{sum(counts.values())} bad inputs in {time.monotonic() - started:.0f} s: {dict(counts)}")
    sys.exit(1 if counts["unclean"] else 0)


if __name__ == "__main__":
    main()
