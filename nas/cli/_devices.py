"""``hwnas-search devices=[raspi4,pixel3,fpga]``: one study and one Pareto set per device, one run.

Each device runs exactly what ``hwnas-search device=<name>`` (with the same other overrides)
would: its config is composed from the command line with ``device=<name>`` (an entry
``{option:fitted,name:pixel3,n_train:50}`` adds its ``device.*`` settings). The studies share the
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
import sys
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from optuna.trial import TrialState

from nas import Candidate, Direction, Objective
from nas.cli._explain import INTERRUPTED_EXIT
from nas.cli._watch import hparams_log
from nas.cli.search import RUN_FILE, build_search, search_run
from nas.cross_device import on_several_fronts, robust_front
from nas.objective_cache import CachedObjective
from nas.report import write_devices_report
from nas.results import write_csv, write_json
from nas.search import ARCH_KEY, Search, SearchSetupError
from nas.tensorboard import write_overlay
from nas.truth import cost_objective

log = logging.getLogger("hwnas.search")

DEVICES_FILE = "devices.json"


def search_devices(cfg: DictConfig, run_dir: Path) -> dict[str, float | None]:
    """Search every device of ``cfg.devices`` into ``run_dir``; returns each one's hypervolume."""
    entries = [DeviceEntry.read(e) for e in cfg.devices]
    records = [e.record() for e in entries]
    repeated = [r for k, r in enumerate(records) if r in records[:k]]
    if repeated:
        raise SearchSetupError(f"devices={records} names {repeated} more than once; list each device once")
    # Composed before the claim: a misspelt list must not bind the run directory to itself.
    composed = [(e, compose_device(e)) for e in entries]
    configs = {e.label(c): c for e, c in composed}
    names = list(configs)
    if len(names) < len(entries):
        labels = [e.label(c) for e, c in composed]
        raise SearchSetupError(
            f"devices={records} gives device names {labels}: each device's front is kept under its "
            "name, so list each device once"
        )
    claim_devices(run_dir, records)
    storage = instantiate(cfg.storage)
    searches = share_device_independent({n: build_search(c, storage=storage) for n, c in configs.items()}, storage)
    hparams = (
        hparams_log(run_dir / "hparams", list(configs.values()), list(searches.values())) if cfg.tensorboard else None
    )
    summaries = {}
    for k, name in enumerate(names, 1):
        log.info("device %d of %d: %s", k, len(names), name)
        summaries[name] = search_run(
            configs[name], run_dir / "devices" / name, searches[name], board_root=run_dir, hparams=hparams
        )
        if summaries[name].get("interrupted"):
            log.warning("interrupted on device %s: devices after it were not searched; rerun to resume", name)
            sys.exit(INTERRUPTED_EXIT)
    cross = cross_device(searches, run_dir)
    fronts = overlay(searches, run_dir)
    if cfg.tensorboard and fronts is not None:
        write_overlay(run_dir / "tensorboard" / "overlay", **fronts)
    if cfg.get("report", True):
        write_devices_report(run_dir, summaries, fronts)
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
                name: {"evaluated_in_this_run": m.evaluations, "architectures_cached": m.cached}
                for name, m in shared.items()
            },
            "cross_device": {k: v for k, v in cross.items() if k != "robust_front"}
            | {"robust_front_size": len(cross["robust_front"])},
        },
    )
    log.info("%d devices searched; cross-device summary in %s", len(names), run_dir / "cross_device.json")
    return {name: s["hypervolume"] for name, s in summaries.items()}


def claim_devices(run_dir: Path, records: list[str | dict[str, Any]]) -> None:
    """Record the run's device list, or refuse a resume with another one (a single-device run's
    directory included: the devices' summary.json would overwrite its own)."""
    path = run_dir / DEVICES_FILE
    single = next((run_dir / f for f in (RUN_FILE, "summary.json") if (run_dir / f).is_file()), None)
    if single is not None and not path.is_file():
        held = json.loads(single.read_text())
        raise SearchSetupError(
            f"run directory {run_dir} holds the single-device search of device {held.get('device')!r} "
            f"(study {held.get('study_name')!r}); devices={records} would overwrite its results. "
            "Choose another hydra.run.dir"
        )
    if path.is_file():
        held = json.loads(path.read_text())["devices"]
        if held != records:
            raise SearchSetupError(
                f"run directory {run_dir} holds the searches of devices={held}; this run asks for "
                f"devices={records}. Give the same list to resume it, or another hydra.run.dir"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, {"devices": records})


def refuse_devices_run_dir(run_dir: Path) -> None:
    """A single-device search may not run in a ``devices=[...]`` run's directory."""
    path = run_dir / DEVICES_FILE
    if path.is_file():
        held = json.loads(path.read_text())["devices"]
        raise SearchSetupError(
            f"run directory {run_dir} holds the searches of devices={held}; a single-device search "
            f"would overwrite their summary. Resume it with devices={held}, or choose another "
            "hydra.run.dir"
        )


@dataclasses.dataclass(frozen=True)
class DeviceEntry:
    """One entry of ``devices=[...]``: an option of the device group (``raspi4``), or a mapping
    naming the option and settings of it, for options that need them
    (``{option:fitted,name:pixel3,n_train:50}`` is ``device=fitted device.name=pixel3
    device.n_train=50``)."""

    option: str
    settings: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def read(cls, entry: Any) -> DeviceEntry:
        if not isinstance(entry, DictConfig):
            return cls(str(entry))
        settings = {str(k): v for k, v in OmegaConf.to_container(entry, resolve=True).items()}
        option = settings.pop("option", None)
        if option is None:
            raise SearchSetupError(
                f"devices: the entry {settings} names no option of the device group; write e.g. "
                "{option:fitted,name:pixel3,n_train:50}"
            )
        return cls(str(option), tuple(settings.items()))

    def record(self) -> str | dict[str, Any]:
        return {"option": self.option, **dict(self.settings)} if self.settings else self.option

    def overrides(self) -> list[str]:
        return [f"device={self.option}", *(f"device.{k}={_override_value(v)}" for k, v in self.settings)]

    def label(self, cfg: DictConfig) -> str:
        """The device's name in the run: the option, or for an entry with settings the device's
        own name (``fitted`` of ``name:pixel3`` is pixel3)."""
        return str(cfg.device.name) if self.settings else self.option


def _override_value(value: Any) -> str:
    """``value`` as Hydra's override grammar reads it back (strings quoted, so paths stay whole)."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    return str(value)


def compose_device(entry: DeviceEntry) -> DictConfig:
    """The search config ``hwnas-search device=<option> [device.<key>=<value>...]`` with this run's
    other overrides gives."""
    parser = OverridesParser.create()
    task = [
        o.input_line
        for o in parser.parse_overrides(list(HydraConfig.get().overrides.task))
        if o.key_or_group.lstrip("+~") not in ("devices", "device")
    ]
    try:
        cfg = compose(config_name="search", overrides=[*task, *entry.overrides()])
    except HydraException as error:
        raise SearchSetupError(f"devices: {entry.record()!r} is not a device this hwnas can compose: {error}") from None
    try:
        str(cfg.device.name)
    except OmegaConfBaseException as error:
        raise SearchSetupError(
            f"devices: {entry.record()!r} needs settings ({error.msg.splitlines()[0]}): give it as a "
            f"mapping of the option and its device.* settings, e.g. {{option:{entry.option},name:pixel3}}"
        ) from None
    return cfg


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


def overlay(searches: dict[str, Search], run_dir: Path) -> dict[str, Any] | None:
    """Every device's front as (cost, score) rows, for the overlay of fronts (TensorBoard's
    ``overlay`` run, the report's figure); None without a maximised score and a cost."""
    first = next(iter(searches.values()))
    score = next((o for o in first.objectives if o.direction == Direction.MAXIMIZE), None)
    cost = cost_objective(first.objectives)
    if score is None or cost is None:
        return None
    fronts = {}
    for name in searches:
        rows = json.loads((run_dir / "devices" / name / "pareto.json").read_text())["architectures"]
        fronts[name] = [[r[cost.name], r[score.name]] for r in rows]
    return {"fronts": fronts, "names": (cost.name, score.name), "directions": ("minimize", "maximize")}


def _cost(search: Search) -> Objective:
    cost = cost_objective(search.objectives)
    if cost is None:
        raise SearchSetupError("a cross-device summary needs a minimised objective (a latency) on every device")
    return cost


def _complete_values(search: Search, objective: Objective) -> dict[str, float]:
    index = [o.name for o in search.objectives].index(objective.name)
    return {
        t.user_attrs[ARCH_KEY]: t.values[index]
        for t in search.study().get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if ARCH_KEY in t.user_attrs
    }
