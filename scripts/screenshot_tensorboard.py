"""Screenshots of what a researcher sees in TensorBoard for a search run, taken in headless Chromium.

    python scripts/screenshot_tensorboard.py outputs/2026-12-05/10-00-00_nb201_raspi4
    python scripts/screenshot_tensorboard.py <multi-device run> --out shots/

Run by hand, not in CI. Needs a Chromium (Debian: ``apt-get install chromium``) and Playwright's
Python driver (``pip install 'hwnas[screenshots]'``); Playwright's own browser download is not
used, ``--chromium`` names the browser (default ``/usr/bin/chromium``).

Starts TensorBoard on the run's ``tensorboard/`` and ``hparams/`` (as
``scripts/check_tensorboard.py`` does) and writes into ``--out`` (default ``<run>/screenshots``):

- ``timeseries.png``, ``scalars.png``: every device's per-trial curves, one run per device;
- ``images.png``: each device's Pareto scatter (trials, infeasible ones, bounds, the table's true
  front) and, for several devices, the ``overlay`` of their fronts on normalised axes;
- per device, ``hparams_<device>_table.png`` and ``hparams_<device>_scatter.png``: the HParams
  dashboard filtered to that device (its checkbox alone ticked under ``device``), showing only the
  run's settings and that device's metrics (``on_front`` among them).

Checks, from the page itself, that every device's run is listed, that the Images page shows a card
per device and the overlay, and that the filtered HParams table shows that device's trials and no
other's; exits 1 on the first difference. The pixels are for a person to look at.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from check_tensorboard import served

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # a closed network refuses Chromium's background connections; these keep it from trying
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SETTLE_MS = 5000  # TensorBoard's first load of the event files and its charts' animation


def _devices(run: Path) -> list[str]:
    if (run / "devices").is_dir():
        return sorted(p.name for p in (run / "devices").iterdir())
    return [json.loads((run / "summary.json").read_text())["device"]]


def _checkbox(page, label: str):  # noqa: ANN001, ANN202 - Playwright's Page and Locator
    return page.locator("paper-checkbox").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))


def _set(page, label: str, on: bool) -> None:  # noqa: ANN001
    box = _checkbox(page, label).first
    if (box.get_attribute("aria-checked") == "true") != on:
        box.click()


def _tensorboard_pages(page, run: Path, devices: list[str], out: Path) -> list[str]:  # noqa: ANN001
    seen = []
    with served(run / "tensorboard") as base:
        runs = [*devices, *(["overlay"] if len(devices) > 1 else [])]
        for tab in ("timeseries", "scalars", "images"):
            page.goto(f"{base}/#{tab}")
            page.wait_for_timeout(SETTLE_MS)
            page.screenshot(path=str(out / f"{tab}.png"), full_page=True)
            missing = [r for r in runs if not page.get_by_text(r, exact=True).count()]
            assert not missing, f"{tab}: runs {missing} not on the page"
            if tab == "images":
                cards = page.locator("tf-image-loader").count()
                assert cards >= len(runs), f"images: {cards} image cards for runs {runs}"
                seen.append(f"images.png: {cards} Pareto image cards for {runs}")
            else:
                seen.append(f"{tab}.png: runs {runs} listed")
    return seen


def _hparams_pages(page, run: Path, devices: list[str], out: Path) -> list[str]:  # noqa: ANN001
    seen = []
    with served(run / "hparams") as base:
        page.goto(f"{base}/#hparams")
        page.wait_for_timeout(SETTLE_MS)
        labels = [t.strip() for t in page.locator("paper-checkbox").all_inner_texts()]
        genes = [label for label in labels if label.startswith("gene/")] + ["arch", "trial"]
        for label in genes:
            _set(page, label, on=False)  # the settings and the metrics fit on one screen
        for label in ("device", "space", "sampler", "seed", "on_front"):
            _set(page, label, on=True)
        for device in devices:
            for other in devices:
                _set(page, other, on=other == device)
            for label in labels:
                if "@" in label:
                    _set(page, label, on=label.endswith(f"@{device}"))
            page.get_by_text("TABLE VIEW").click()
            page.wait_for_timeout(SETTLE_MS // 2)
            cells = [t.strip() for t in page.locator("vaadin-grid-cell-content").all_inner_texts()]
            shown = {c for c in cells if c in devices}
            assert shown == {device}, f"HParams filtered to {device} shows rows of {sorted(shown)}"
            rows = sum(c == device for c in cells)
            page.screenshot(path=str(out / f"hparams_{device}_table.png"))
            page.get_by_text("SCATTER PLOT MATRIX VIEW").click()
            page.wait_for_timeout(SETTLE_MS // 2)
            page.screenshot(path=str(out / f"hparams_{device}_scatter.png"))
            seen.append(f"hparams_{device}_*.png: filtered to {device}, {rows} rows rendered, all {device}")
    return seen


def screenshots(run: Path, out: Path, chromium: Path) -> list[str]:
    """Take the screenshots of ``run`` into ``out``; what was checked, one line per page."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    devices = _devices(run)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            return _tensorboard_pages(page, run, devices, out) + _hparams_pages(page, run, devices, out)
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="an hwnas-search run directory (tensorboard/ and hparams/ inside)")
    parser.add_argument("--out", type=Path, help="where the PNGs go (default <run>/screenshots)")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"), help="the browser")
    args = parser.parse_args()
    if not args.chromium.exists():
        sys.exit(f"no browser at {args.chromium}: install Debian's chromium or pass --chromium <path>")
    for line in screenshots(args.run, args.out or args.run / "screenshots", args.chromium):
        print(line)
    print("ok")


if __name__ == "__main__":
    main()
