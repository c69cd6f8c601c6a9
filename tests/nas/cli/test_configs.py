"""Every option of every config group composes and instantiates."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from nas import Constraint, Objective, SearchSpace
from nas.cli import CONFIG_DIR

# The groups search.yaml composes (other entry points' groups are tested with them); its
# `override hydra/help: search` picks Hydra's own group, tested by test_help.py.
GROUPS = sorted(
    next(iter(entry))
    for entry in OmegaConf.load(Path(CONFIG_DIR) / "search.yaml").defaults
    if isinstance(entry, DictConfig) and not next(iter(entry)).startswith("override ")
)
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((Path(CONFIG_DIR) / g).glob("*.yaml"))]
# Options that need a value only the user can give.
REQUIRED = {
    ("device", "table"): ["device.name=raspi4"],
    ("storage", "url"): ["storage.url=sqlite://"],
    ("device", "note10"): ["space=ofa"],
    ("objectives", "ofa_accuracy_latency"): ["space=ofa"],
}
# Objectives that need energy read from a device that has it.
ENERGY = {"synflow_latency_energy", "accuracy_latency_energy", "accuracy_energy"}
SPACES = [p.stem for p in sorted((Path(CONFIG_DIR) / "space").glob("*.yaml"))]


def space_with_device(device: str, data_dir: Path) -> str:
    """A space whose table measures ``device`` (table devices exist only for their tables)."""
    for space in SPACES:
        header = (data_dir / space / "latency_ms.csv").read_text().partition("\n")[0].split(",")
        if device in header:
            return space
    raise AssertionError(f"configs/device/{device}.yaml names a device no table in {data_dir} has")


def compose_with(overrides: list[str], tmp_path: Path):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("search", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_instantiates(group: str, option: str, tmp_path: Path, data_dir: Path) -> None:
    overrides = [f"{group}={option}", f"data_dir={data_dir}", *REQUIRED.get((group, option), [])]
    if group == "objectives" and option in ENERGY:
        overrides.append("device=pi5_onnx")
    if group == "device" and (Path(CONFIG_DIR) / "device" / f"{option}.yaml").read_text().startswith(
        "defaults: [table]"
    ):
        overrides.append(f"space={space_with_device(option, data_dir)}")
    cfg = compose_with(overrides, tmp_path)
    node = cfg[group]
    if group == "space":
        assert isinstance(instantiate(node.instance), SearchSpace)
    elif group in ("objectives", "metrics"):
        for name, sub in node.items():
            assert isinstance(instantiate(sub, name=name), Objective)
    elif group == "device" and option == "cuda" and not torch.cuda.is_available():
        with pytest.raises(InstantiationException, match=r"torch.cuda.is_available\(\) is False"):
            instantiate(node.latency_ms, name="latency_ms")
    elif group == "device":
        assert instantiate(node.latency_ms, name="latency_ms").name == "latency_ms"
    elif group == "sampler":
        assert isinstance(instantiate(node), optuna.samplers.BaseSampler)
    elif group == "storage":
        storage = instantiate(node)
        assert isinstance(storage, optuna.storages.BaseStorage)
        optuna.create_study(storage=storage, study_name="compose-check")
    elif group == "budget":
        assert node.n_trials > 0
    elif group == "constraints":
        for name, bounds in node.items():
            assert Constraint(metric=name, **bounds).metric == name  # what the CLI builds
    else:
        pytest.fail(f"config group {group!r} has no composition test: add a branch here")
