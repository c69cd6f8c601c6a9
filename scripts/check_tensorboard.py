"""What a researcher sees in TensorBoard for a search run, checked through TensorBoard's own server.

    python scripts/check_tensorboard.py outputs/2026-12-05/10-00-00_nb201_raspi4
    python scripts/check_tensorboard.py <multi-device run>        # several devices: the overlay too

Starts ``tensorboard`` on the run's ``tensorboard/`` and ``hparams/`` (the two commands the README
gives), then asks its HTTP API what its pages show:

- Scalars: the runs (one per device, plus ``overlay`` for several devices; at most 40, or
  TensorBoard switches them all off), each device's per-trial tags with a step per trial of its
  trials.csv;
- Images: each device's Pareto images;
- HParams: the experiment's device domain, and, filtered to each device, one session per complete
  trial of that device with its objectives as metrics.

Prints what it saw; exits 1 on the first difference. A check of the served data, not of pixels:
no browser is needed (this machine has none), so it runs anywhere TensorBoard does.
"""

from __future__ import annotations

import argparse
import csv
import json
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(logdir: Path):  # noqa: ANN201 - yields the base URL
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/data/runs", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"tensorboard on {logdir} did not start") from None
                time.sleep(0.5)
        time.sleep(3)  # the first load of the event files
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _get(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def _trials(run: Path, device: str, several: bool) -> list[dict[str, str]]:
    path = run / "devices" / device / "trials.csv" if several else run / "trials.csv"
    with path.open() as f:
        return list(csv.DictReader(f))


def check(run: Path) -> list[str]:
    """What TensorBoard serves for ``run``; raises AssertionError at the first difference."""
    several = (run / "devices").is_dir()
    devices = (
        sorted(p.name for p in (run / "devices").iterdir())
        if several
        else [json.loads((run / "summary.json").read_text())["device"]]
    )
    seen = []
    with served(run / "tensorboard") as base:
        runs = _get(f"{base}/data/runs")
        expected = sorted([*devices, *(["overlay"] if several else [])])
        assert sorted(runs) == expected and len(runs) <= 40, f"Scalars runs {runs}, expected {expected}"
        seen.append(f"Scalars: runs {sorted(runs)} (all shown: at most 40)")
        tags = _get(f"{base}/data/plugin/scalars/tags")
        images = _get(f"{base}/data/plugin/images/tags")
        for device in devices:
            trials = _trials(run, device, several)
            steps = [
                p[1]
                for p in _get(f"{base}/data/plugin/scalars/scalars?run={device}&tag=search/evaluations&format=json")
            ]
            assert steps == [int(t["number"]) for t in trials], f"{device}: steps {steps[:5]}... != its trials"
            assert {"search/front_size", "search/feasible_share", "search/failed"} <= set(tags[device]), tags[device]
            pareto = [t for t in images.get(device, {}) if t.startswith("pareto/")]
            assert pareto, f"{device}: no Pareto image"
            seen.append(f"Scalars/Images {device}: {len(steps)} trial steps, {len(tags[device])} tags, images {pareto}")
        if several:
            assert [t for t in images.get("overlay", {}) if t.startswith("pareto/")], "no overlay image"
            seen.append(f"Images overlay: {list(images['overlay'])}")
    with served(run / "hparams") as base:
        experiment = _get(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
        device_info = next(h for h in experiment["hparamInfos"] if h["name"] == "device")
        assert sorted(device_info["domainDiscrete"]) == devices, device_info
        metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
        seen.append(f"HParams: device domain {device_info['domainDiscrete']}, metrics {metrics}")
        for device in devices:
            complete = [t for t in _trials(run, device, several) if t["state"] == "COMPLETE"]
            groups = _get(
                f"{base}/data/plugin/hparams/session_groups",
                {
                    "experimentName": "",
                    "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                    "colParams": [{"hparam": "device", "filterDiscrete": [device]}],
                    "startIndex": 0,
                    "sliceSize": 100_000,
                },
            )["sessionGroups"]
            assert len(groups) == len(complete), (
                f"HParams {device}: {len(groups)} rows, {len(complete)} complete trials"
            )
            assert all(g["hparams"]["device"] == device for g in groups)
            seen.append(f"HParams filtered to {device}: {len(groups)} rows = its complete trials")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="an hwnas-search run directory (tensorboard/ and hparams/ inside)")
    args = parser.parse_args()
    for line in check(args.run):
        print(line)
    print("ok")


if __name__ == "__main__":
    main()
