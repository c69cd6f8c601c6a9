"""``hwnas-search devices=[raspi4,pixel3,fpga]``: one study and one Pareto set per device, one run.

Each device runs exactly what ``hwnas-search device=<name>`` (with the same other overrides)
would: its config is composed from the command line with ``device=<name>``. The studies share the
run's storage; objectives that do not depend on the device (same name and source on every device:
an accuracy, a proxy) are evaluated once per architecture for all of them
(:class:`nas.objective_cache.CachedObjective`, kept in that storage, so a resume recomputes
nothing). Each device writes the files of a single run into ``devices/<name>/``; the run directory
gets ``cross_device.json`` / ``cross_device.csv`` (architectures on several fronts, a robust
front) and a ``summary.json`` over the devices.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig
from optuna.trial import TrialState

from nas import Candidate, Direction, Objective
from nas.cli.search import build_search, search_run
from nas.cross_device import on_several_fronts, robust_front
from nas.objective_cache import CachedObjective
from nas.results import write_csv, write_json
from nas.search import ARCH_KEY, Search, SearchSetupError

log = logging.getLogger("hwnas.search")

DEVICES_FILE = "devices.json"


def search_devices(cfg: DictConfig, run_dir: Path) -> dict[str, float | None]:
    """Search every device of ``cfg.devices`` into ``run_dir``; returns each one's hypervolume."""
    names = [str(n) for n in cfg.devices]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SearchSetupError(f"devices={names} names {repeated} more than once; list each device once")
    # Composed before the claim: a misspelt list must not bind the run directory to itself.
    configs = {name: compose_device(name) for name in names}
    claim_devices(run_dir, names)
    storage = instantiate(cfg.storage)
    searches = share_device_independent({n: build_search(c, storage=storage) for n, c in configs.items()}, storage)
    summaries = {}
    for k, name in enumerate(names, 1):
        log.info("device %d of %d: %s", k, len(names), name)
        summaries[name] = search_run(configs[name], run_dir / "devices" / name, searches[name])
    cross = cross_device(searches, run_dir)
    shared = {m.name: m for s in searches.values() for m in s.measures if isinstance(m, CachedObjective)}
    write_json(
        run_dir / "summary.json",
        {
            "devices": {
                name: {
                    "run_dir": str(run_dir / "devices" / name),
                    "pareto_size": s["pareto_size"],
                    "hypervolume": s["hypervolume"],
                    "mean_regret": (s["regret"] or {}).get("mean"),
                }
                for name, s in summaries.items()
            },
            "shared_objectives": {
                name: {"evaluated_in_this_run": m.evaluations, "architectures_cached": len(m._values)}
                for name, m in shared.items()
            },
            "cross_device": {k: v for k, v in cross.items() if k != "robust_front"}
            | {"robust_front_size": len(cross["robust_front"])},
        },
    )
    log.info("%d devices searched; cross-device summary in %s", len(names), run_dir / "cross_device.json")
    return {name: s["hypervolume"] for name, s in summaries.items()}


def claim_devices(run_dir: Path, names: list[str]) -> None:
    """Record the run's device list, or refuse a resume with another one."""
    path = run_dir / DEVICES_FILE
    if path.is_file():
        held = json.loads(path.read_text())["devices"]
        if held != names:
            raise SearchSetupError(
                f"run directory {run_dir} holds the searches of devices={held}; this run asks for "
                f"devices={names}. Give the same list to resume it, or another hydra.run.dir"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, {"devices": names})


def compose_device(name: str) -> DictConfig:
    """The search config ``hwnas-search device=<name>`` with this run's other overrides gives."""
    parser = OverridesParser.create()
    task = [
        o.input_line
        for o in parser.parse_overrides(list(HydraConfig.get().overrides.task))
        if o.key_or_group.lstrip("+~") not in ("devices", "device")
    ]
    try:
        return compose(config_name="search", overrides=[*task, f"device={name}"])
    except HydraException as error:
        raise SearchSetupError(f"devices: {name!r} is not a device this hwnas can compose: {error}") from None


def share_device_independent(searches: dict[str, Search], storage: Any) -> dict[str, Search]:
    """Each objective or metric with one name and one source on every device becomes one
    :class:`CachedObjective` shared by all the searches (evaluated once per architecture)."""
    first = next(iter(searches.values()))
    shared: dict[str, Objective] = {}
    for measure in first.measures:
        same = [next((m for m in s.measures if m.name == measure.name), None) for s in searches.values()]
        if all(m is not None and m.source() == measure.source() for m in same):
            shared[measure.name] = CachedObjective(measure, storage, first.space.name)
    if shared:
        log.info("evaluated once per architecture for every device: %s", sorted(shared))

    def swap(measures: Any) -> list[Objective]:
        return [shared.get(m.name, m) for m in measures]

    return {
        name: dataclasses.replace(s, objectives=swap(s.objectives), metrics=swap(s.metrics))
        for name, s in searches.items()
    }


def cross_device(searches: dict[str, Search], run_dir: Path) -> dict[str, Any]:
    """cross_device.json and cross_device.csv: the architectures on several devices' fronts, and
    the robust front over the union of the fronts (score vs worst normalised cost)."""
    fronts = {
        name: [a["arch"] for a in json.loads((run_dir / "devices" / name / "pareto.json").read_text())["architectures"]]
        for name in searches
    }
    union = sorted({a for archs in fronts.values() for a in archs})
    first = next(iter(searches.values()))
    score = next((o for o in first.objectives if o.direction == Direction.MAXIMIZE), None)
    result: dict[str, Any] = {"devices": list(searches), "on_several_fronts": on_several_fronts(fronts)}
    if score is None or not isinstance(score, CachedObjective):
        result["robust_front"] = []
        result["robust_front_skipped"] = "no maximised objective shared by every device (an accuracy or proxy)"
    else:
        costs, scale, names = {}, {}, {}
        for name, search in searches.items():
            cost = _cost(search)
            names[name] = cost.name
            known = _complete_values(search, cost)
            scale[name] = statistics.median(known.values())
            missing = [a for a in union if a not in known]
            if missing:
                log.info("%s: %s of %d architectures from other fronts", name, cost.name, len(missing))
            for arch in missing:
                known[arch] = cost.evaluate(Candidate(search.space.parse(arch), search.space))
            costs[name] = {a: known[a] for a in union}
        scores = {a: score.evaluate(Candidate(first.space.parse(a), first.space)) for a in union}
        result["robust_front"] = robust_front(scores, costs, scale)
        result["normalisation"] = {
            name: {"cost": names[name], "median_over_completed_architectures": scale[name]} for name in searches
        }
        result["robust_rule"] = (
            f"non-dominated on ({score.name}, max over devices of cost / the device's median cost over the "
            "distinct architectures its study completed), over the union of the devices' fronts"
        )
    write_json(run_dir / "cross_device.json", result)
    rows = result["robust_front"]
    write_csv(run_dir / "cross_device.csv", list(rows[0]) if rows else ["arch"], rows)
    return result


def _cost(search: Search) -> Objective:
    minimised = [o for o in search.objectives if o.direction == Direction.MINIMIZE]
    if not minimised:
        raise SearchSetupError("a cross-device summary needs a minimised objective (a latency) on every device")
    return next((o for o in minimised if o.name.startswith("latency")), minimised[0])


def _complete_values(search: Search, objective: Objective) -> dict[str, float]:
    index = [o.name for o in search.objectives].index(objective.name)
    return {
        t.user_attrs[ARCH_KEY]: t.values[index]
        for t in search.study().get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if ARCH_KEY in t.user_attrs
    }
