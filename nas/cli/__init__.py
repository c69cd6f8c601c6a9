"""Entry points: the only code that sees Hydra's DictConfig.

Importing this package finds the configs and registers the resolvers the configs use, so every
entry point (and every test that composes a config) sees the same paths:

- ``${hwnas.root:}``: the source checkout that holds the running ``nas`` package when there is
  one (an editable install, or ``python -m`` from the checkout), else the working directory.
  Outputs go under it, so where they land does not depend on where the command was started.
- ``${hwnas.data:}``: ``HWNAS_DATA`` when set, else ``<root>/../shared/data``.
- ``${hwnas.sweep_subdir:}``: a multirun job's folder name, from the values it sweeps.
- ``${hwnas.predicted_device:<path>}``: the device an hwnas-fit predictor file models.
- ``${hwnas.predicted_deployments:<path>}``: the deployments of the profile it was fitted on.
- ``${hwnas.study_name:}``: a search's default study name, from everything a sweep varies.
- ``${hwnas.worker_seed:<seed>,<worker>}``: the sampler seed of one worker of a shared study.
- ``${hwnas.safe_name:<value>}``: a name made safe as a folder name (the command refuses unsafe ones).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import textwrap
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from nas.cli import _lock

# configs/storage turns on Optuna's heartbeat on purpose; its "experimental" notice would open
# every run's console output.
warnings.filterwarnings(
    "ignore", message=r"(RetryHeartbeatStaleTrialCallback is experimental|Argument ``heartbeat_interval`` is)"
)

_SOURCE_ROOT = Path(__file__).resolve().parents[2]
_SOURCE_CONFIGS = _SOURCE_ROOT / "configs"
# The distribution installs configs/ as this package (pyproject.toml's package-dir).
CONFIG_PACKAGE = "hwnas_configs"


def _is_checkout() -> bool:
    return (_SOURCE_CONFIGS / "search.yaml").is_file()


def _config_dir() -> str:
    """configs/ from the same tree as the running code: the checkout's, else the installed package's."""
    if _is_checkout():
        return str(_SOURCE_CONFIGS)
    try:
        installed = Path(str(resources.files(CONFIG_PACKAGE)))
    except ModuleNotFoundError:
        installed = None
    if installed is None or not (installed / "search.yaml").is_file():
        raise RuntimeError(
            f"hwnas's configs are missing: neither {_SOURCE_CONFIGS} nor an installed {CONFIG_PACKAGE} "
            "package holds search.yaml; reinstall hwnas (pip install <checkout> or pip install -e <checkout>)"
        )
    return str(installed)


CONFIG_DIR = _config_dir()


def project_root() -> Path:
    """The source checkout holding the running code, else the working directory."""
    return _SOURCE_ROOT if _is_checkout() else Path.cwd().resolve()


def data_dir() -> Path:
    """HWNAS_DATA (relative to the working directory) when set, else <project root>/../shared/data."""
    setting = os.environ.get("HWNAS_DATA")
    if setting:
        return Path(setting).expanduser().resolve()
    return (project_root().parent / "shared" / "data").resolve()


# Longest folder name kept whole; file systems refuse names above 255 bytes.
_MAX_DIRNAME_BYTES = 150


def sweep_subdir(*, _root_: DictConfig) -> str:
    """A multirun job's folder name: ``<n>_<its swept overrides>``, e.g. ``0_sampler=tpe,seed=1``.

    The swept keys come from the multirun.yaml Hydra's sweeper saves in the sweep folder before
    the first job (without one, every override of the job is named); hydra.job.config.
    override_dirname's exclude_keys, kv_sep and item_sep apply. Anything but letters, digits and
    ``.,=+-`` becomes ``_`` (a value holding ``/`` would otherwise open sub-folders), and a long
    name is cut, with a hash of the whole so names stay distinct.
    """
    hydra_cfg = _root_.hydra
    settings = hydra_cfg.job.config.override_dirname
    parser = OverridesParser.create()
    swept = _swept_keys(Path(hydra_cfg.sweep.dir) / "multirun.yaml", parser)
    lines = sorted(
        o.input_line
        for o in parser.parse_overrides(list(hydra_cfg.overrides.task))
        if o.key_or_group not in settings.exclude_keys and (swept is None or o.key_or_group in swept)
    )
    name = settings.item_sep.join(lines).replace("=", settings.kv_sep)
    name = re.sub(r"[^\w.,=+\-]+", "_", name).strip("_")
    if len(name.encode()) > _MAX_DIRNAME_BYTES:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name.encode()[: _MAX_DIRNAME_BYTES - 9].decode(errors="ignore") + "_" + digest
    return f"{hydra_cfg.job.num}_{name}" if name else str(hydra_cfg.job.num)


def _swept_keys(multirun_yaml: Path, parser: OverridesParser) -> set[str] | None:
    if not multirun_yaml.is_file():
        return None
    sweep = parser.parse_overrides(list(OmegaConf.load(multirun_yaml).hydra.overrides.task))
    return {o.key_or_group for o in sweep if o.is_sweep_override()}


def config_options(group: str) -> list[str]:
    """The options of a config group (its YAML files' stems), sorted."""
    return sorted(p.stem for p in (Path(CONFIG_DIR) / group).glob("*.yaml"))


def config_groups(choices: DictConfig) -> str:
    """Help text: each config group this command composed, its options, the chosen one marked. A
    group placed elsewhere by a config (``predictor@few_shot.source``) is listed under the name
    an override gives it."""
    lines = []
    for group in sorted(str(g) for g in choices if g != "hydra" and not str(g).startswith("hydra/")):
        options = config_options(group.partition("@")[0])
        chosen = choices[group]
        # A group that selects several options ('proxy=[a,b]') marks each of them.
        picked = set(chosen) if OmegaConf.is_list(chosen) else {chosen}
        listed = ", ".join(f"[{o}]" if o in picked else o for o in options)
        lines.append(textwrap.fill(listed, width=100, initial_indent=f"  {group}: ", subsequent_indent="      "))
    return "\n".join(lines)


def study_name(*, _root_: DictConfig) -> str:
    """``<space>-<device>-<objectives>-<sampler>-s<seed>``, e.g. ``nb201-raspi4-accuracy+latency_ms-
    nsgaii-s0``: everything a sweep varies that a study's stored identity does not check
    (``nas.search.Search.identity`` checks space, objectives and their sources), so a multirun
    over samplers or seeds on one database keeps one study per job instead of merging them. The
    worker number is left out: workers share their study."""
    sampler = str(_root_.sampler.get("_target_", "sampler")).rsplit(".", 1)[-1]
    sampler = sampler.removesuffix("Sampler").lower() or "sampler"
    objectives = "+".join(str(name) for name in _root_.objectives)
    return f"{_root_.space.name}-{_root_.device.name}-{objectives}-{sampler}-s{_root_.seed}"


def worker_seed(seed: int, worker: int) -> int:
    """The sampler seed of worker ``worker`` of a run seeded ``seed``: the run's seed for worker 0
    (a single process searches as it always did), an independent stream for each other worker
    (numpy's SeedSequence of both), so workers sharing a study do not propose in lockstep."""
    if int(worker) == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(worker)]).generate_state(1)[0] % 2**31)


OmegaConf.register_new_resolver("hwnas.root", lambda: str(project_root()), replace=True)
OmegaConf.register_new_resolver("hwnas.study_name", study_name, replace=True)
OmegaConf.register_new_resolver("hwnas.worker_seed", worker_seed, replace=True)
OmegaConf.register_new_resolver("hwnas.data", lambda: str(data_dir()), replace=True)
OmegaConf.register_new_resolver("hwnas.sweep_subdir", sweep_subdir, replace=True)
OmegaConf.register_new_resolver("hwnas.groups", config_groups, replace=True)
OmegaConf.register_new_resolver(
    "hwnas.options",
    lambda group, chosen=(): ", ".join(f"[{o}]" if o in chosen else o for o in config_options(group)),
    replace=True,
)


def _predicted_device(path: str) -> str:
    """``${hwnas.predicted_device:<path>}``: the device an hwnas-fit predictor models (configs/device/predicted)."""
    from latency_predictors.predictors import predicted_device_name  # torch and LightGBM: only when used

    return predicted_device_name(path)


OmegaConf.register_new_resolver("hwnas.predicted_device", _predicted_device, replace=True)


def _predicted_deployments(path: str) -> Any:
    """``${hwnas.predicted_deployments:<path>}``: the deployments of the deployed profile an
    hwnas-fit predictor was fitted on (configs/deployment/profiled)."""
    from latency_predictors.predictors import predicted_deployments

    # A ListConfig: instantiate copies the node it resolves into, which a plain list cannot join.
    return OmegaConf.create(predicted_deployments(path))


OmegaConf.register_new_resolver("hwnas.predicted_deployments", _predicted_deployments, replace=True)


def _safe_name(value: Any) -> str:
    """``${hwnas.safe_name:<value>}``: ``value`` as a folder name that stays where it is put.
    Run directories are named by space and device before the command starts; an unsafe name
    (``../../x``) is made harmless here, and the command itself then refuses it with a message
    (its run directory holding that message's log)."""
    from nas.cli._options import SAFE_CHARACTERS

    return re.sub(rf"[^{SAFE_CHARACTERS}]", "_", str(value)).replace("..", "__") or "_"


OmegaConf.register_new_resolver("hwnas.safe_name", _safe_name, replace=True)


class LogRunDir(Callback):
    """Holds the run directory for this process (``nas.cli._lock``: a second process with the same
    ``worker`` is refused); logs each job's absolute run directory first, so a user always learns
    where outputs went; and takes every password in a URL (a database's, given as
    ``storage.url=``) out of the configs Hydra saved there (.hydra/, and a multirun's
    multirun.yaml) before the job runs."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Before Hydra writes .hydra/ into the directory: a refused second process changes nothing.
        _lock.claim(Path(config.hydra.run.dir).absolute(), _worker(config), config.hydra.job.name)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        _lock.release(Path(config.hydra.runtime.output_dir), _worker(config))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode is not None and config.hydra.mode.name == "MULTIRUN":
            _lock.claim(Path(config.hydra.runtime.output_dir), _worker(config), config.hydra.job.name)
        logging.getLogger(f"hwnas.{config.hydra.job.name}").info("run directory: %s", config.hydra.runtime.output_dir)
        saved = []
        if config.hydra.output_subdir is not None:
            saved += sorted((Path(config.hydra.runtime.output_dir) / config.hydra.output_subdir).glob("*.yaml"))
        if config.hydra.mode is not None and config.hydra.mode.name == "MULTIRUN":
            saved.append(Path(config.hydra.sweep.dir) / "multirun.yaml")
        for path in saved:
            if path.is_file():
                text = path.read_text()
                hidden = redact_passwords(text)
                if hidden != text:
                    path.write_text(hidden)


def _worker(config: DictConfig) -> int:
    worker = config.get("worker", 0)
    return worker if isinstance(worker, int) else 0  # a bad index is refused by the command's options


_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s'\"]+:)[^@\s'\"]+@")


def redact_passwords(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL replaced by ***."""
    return _URL_PASSWORD.sub(r"\1***@", text)
