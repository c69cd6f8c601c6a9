"""Every option of every config group composes and instantiates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from latency_predictors import Bench, Runtime
from nas import Architecture, Candidate, Constraint, DeployedSpace, Objective, Predictor, SearchSpace
from nas.cli import CONFIG_DIR
from nas.cli._space import search_space
from nas.tables import BenchmarkTable
from nas.training import ImageDataset, SamplingStrategy

NB201_CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|none~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
]

#: Every entry point's primary config; each group is composed through the first one that uses it.
PRIMARIES = ("search", "fit", "profile", "train_supernet", "pipeline", "score")


def groups_of(primary: str) -> list[str]:
    """The config groups a primary config's defaults list composes (``override hydra/...``
    entries pick Hydra's own groups, tested by test_help.py)."""
    return [
        next(iter(entry))
        for entry in OmegaConf.load(Path(CONFIG_DIR) / f"{primary}.yaml").defaults
        if isinstance(entry, DictConfig) and not next(iter(entry)).startswith("override ")
    ]


PRIMARY_OF: dict[str, str] = {}
for _primary in PRIMARIES:
    for _group in groups_of(_primary):
        PRIMARY_OF.setdefault(_group, _primary)
# The predictor group is hwnas-fit's (few_shot reads fit's few_shot group); hwnas-search composes
# it too, for the single-device families a device=fitted search fits.
PRIMARY_OF["predictor"] = "fit"
GROUPS = sorted(PRIMARY_OF)
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((Path(CONFIG_DIR) / g).glob("*.yaml"))]
# Options that need a value only the user can give.
REQUIRED = {
    ("device", "table"): ["device.name=raspi4"],
    ("device", "fitted"): ["device.name=raspi4", "device.n_train=20"],
    ("storage", "url"): ["storage.url=sqlite://"],
    ("device", "note10"): ["space=ofa"],
    ("objectives", "ofa_accuracy_latency"): ["space=ofa"],
    ("data", "imagefolder"): ["data.root=/nonexistent/images"],
    # Throughput and p95 are read from a deployment search's device.
    ("objectives", "accuracy_throughput"): ["deployment=cpu_stack"],
    ("metrics", "deployed"): ["deployment=cpu_stack"],
    # It runs the deployment config's runtimes.
    ("device", "cpu_stack"): ["deployment=cpu_stack"],
    # It predicts deployed candidates.
    ("predictor", "per_deployment"): ["deployment=cpu_stack"],
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


def digits_checkpoint(run_dir: Path) -> Path:
    """A supernet checkpoint trained one epoch on configs/data/digits.yaml's data (a tiny NB201)."""
    from nas.training import SklearnDigits, SupernetTrainer, UniformSampling
    from tests.nas.training.helpers import tiny_space

    SupernetTrainer(
        tiny_space().supernet(), SklearnDigits(), UniformSampling(), epochs=1, checkpoint_dir=run_dir, progress=False
    ).fit()
    return run_dir


def deployed_fitted_run(run_dir: Path, data_dir: Path) -> Path:
    """An hwnas-fit run (gbdt, in-process) on a deployed table of 40 NB201 networks under two
    deployments, whose latencies are raspi4's and pixel3's published ones."""
    from nas.cli.fit import compose_fit, write_run
    from nas.fitting import ParsedTable, fit_column
    from nas.tables import BenchmarkTable, cached_table

    published = cached_table(data_dir / "nb201")
    table = run_dir.parent / "deployed_table"
    table.mkdir(parents=True)
    deployments = {
        "runtime=torch_eager,threads=1,batch_size=1": "raspi4",
        "runtime=torch_eager,threads=2,batch_size=1": "pixel3",
    }
    rows = [
        (f"{published.archs[i]}@{d}", published.column("latency_ms", device)[i])
        for d, device in deployments.items()
        for i in range(40)
    ]
    (table / "archs.csv").write_text("index,arch\n" + "".join(f'{i},"{arch}"\n' for i, (arch, _) in enumerate(rows)))
    (table / "latency_ms.csv").write_text("index,cpu_stack\n" + "".join(f"{i},{v}\n" for i, (_, v) in enumerate(rows)))
    cfg = compose_fit("deployment=cpu_stack", "predictor=gbdt", f"data_dir={data_dir}", f"table_dir={table}")
    data = ParsedTable.parse(search_space(cfg), BenchmarkTable.load(table))
    run_dir.mkdir(parents=True)
    write_run(run_dir, fit_column(data, "latency_ms", "cpu_stack", instantiate(cfg.predictor), 60, 0), data)
    return run_dir


def fitted_run(run_dir: Path, data_dir: Path) -> Path:
    """An hwnas-fit run directory (nb201 raspi4 latency, a layer sum on 20 rows), written in-process."""
    from nas.cli.fit import compose_fit, write_run
    from nas.fitting import ParsedTable, fit_column
    from nas.tables import BenchmarkTable

    cfg = compose_fit("predictor=layer_sum", f"data_dir={data_dir}")
    data = ParsedTable.parse(instantiate(cfg.space.instance), BenchmarkTable.load(cfg.table_dir))
    run_dir.mkdir(parents=True)
    write_run(run_dir, fit_column(data, "latency_ms", "raspi4", instantiate(cfg.predictor), 20, 0), data)
    return run_dir


def compose_with(overrides: list[str], tmp_path: Path, primary: str = "search"):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(primary, overrides=overrides, return_hydra_config=True)
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
    if (group, option) == ("objectives", "inherited_latency"):
        overrides += ["data=digits", f"objectives.accuracy.checkpoint={digits_checkpoint(tmp_path / 'supernet')}"]
    if (group, option) == ("objectives", "deployed_accuracy_latency"):
        checkpoint = digits_checkpoint(tmp_path / "supernet")
        overrides += ["data=digits", "deployment=cpu_stack", f"objectives.accuracy.accuracy.checkpoint={checkpoint}"]
    if (group, option) == ("objectives", "few_label_latency"):
        overrides.append("objectives.accuracy.n_labels=10")  # its default proxies, fewer to score
    if (group, option) == ("device", "predicted"):
        overrides.append(f"device.latency={fitted_run(tmp_path / 'fit', data_dir)}")
    if (group, option) == ("deployment", "profiled"):
        overrides.append(f"device.latency={deployed_fitted_run(tmp_path / 'fit', data_dir)}")
    if (group, option) == ("selection", "list"):
        listed = tmp_path / "archs.txt"
        listed.write_text("\n".join(NB201_CELLS) + "\n")
        overrides.append(f"selection.path={listed}")
    cfg = compose_with(overrides, tmp_path, PRIMARY_OF[group])
    node = cfg[group]
    if group == "space":
        assert isinstance(instantiate(node.instance), SearchSpace)
    elif group in ("objectives", "metrics", "proxy"):
        for name, sub in node.items():
            assert isinstance(instantiate(sub, name=name), Objective)
    elif group == "device" and option == "cuda" and not torch.cuda.is_available():
        with pytest.raises(InstantiationException, match=r"torch.cuda.is_available\(\) is False"):
            instantiate(node.latency_ms, name="latency_ms")
    elif group == "device":
        assert instantiate(node.latency_ms, name="latency_ms").name == "latency_ms"
        if "bench" in node:  # what hwnas-pipeline measures through: the same device, by name
            bench = instantiate(node.bench)
            assert isinstance(bench, Bench) and bench.device().name == node.name
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
    elif group == "predictor":
        space = search_space(cfg)
        predictor = instantiate(node)(space=space, device_fingerprint="compose-check")
        assert isinstance(predictor, Predictor) and predictor.space == space.name
    elif group == "few_shot":
        space = instantiate(cfg.space.instance)
        source = instantiate(node.source)(space=space, device_fingerprint="compose-check")
        assert isinstance(source, Predictor) and isinstance(node.own_layer_sum, bool)
    elif group == "runtime" and option == "torch_cuda" and not torch.cuda.is_available():
        with pytest.raises(InstantiationException, match=r"torch.cuda.is_available\(\) is False"):
            instantiate(node.instance)
    elif group == "runtime":
        assert isinstance(instantiate(node.instance), Runtime)
        for meter in node.energy_meters:
            assert callable(instantiate(meter))
    elif group == "selection":
        space = instantiate(cfg.space.instance)
        picked = instantiate(node)(space, 3, np.random.default_rng(0))
        assert len(picked) == 3 and all(isinstance(arch, Architecture) for arch in picked)
    elif group == "data":
        assert isinstance(instantiate(node), ImageDataset)
    elif group == "strategy":
        assert isinstance(instantiate(node), SamplingStrategy)
    elif group == "deployment" and node is None:
        assert option == "none"
    elif group == "deployment":  # the space it wraps, and runtimes for every runtime it offers
        space = instantiate(node)(space=instantiate(cfg.space.instance))
        assert isinstance(space, DeployedSpace) and repr(space) == repr(search_space(cfg))
        runtimes = {str(d.settings[0][1]) for d in space.deployment.every()}
        assert runtimes <= set(instantiate(cfg.deployment_runtimes))
        latency = instantiate(cfg.device.latency_ms, name="latency_ms")
        if option == "profiled":  # the deployments of the table its predictor was fitted on
            table = Path(json.loads((Path(cfg.device.latency) / "metrics.json").read_text())["table_dir"])
            listed = {arch.partition("@")[2] for arch in BenchmarkTable.load(table).archs}
            assert {d.string for d in space.deployment.every()} == listed
            assert latency(Candidate(space.sample(np.random.default_rng(1)), space)) > 0
        else:
            assert sorted(latency.runtimes) == sorted(runtimes)
        arch = space.sample(np.random.default_rng(0))
        assert space.parse(arch.string) == arch
    else:
        pytest.fail(f"config group {group!r} has no composition test: add a branch here")


@pytest.mark.parametrize(
    ("overrides", "sampler"),
    [
        ([], "NSGAIISampler"),
        (["objectives=accuracy_latency"], "SurrogateSampler"),
        (["objectives=accuracy_energy", "device=fpga"], "SurrogateSampler"),
        (["objectives=accuracy_latency", "sampler=tpe"], "TPESampler"),
        (["sampler=tpe", "objectives=accuracy_latency"], "TPESampler"),
    ],
)
@pytest.mark.parametrize("primary", ["search", "pipeline"])
def test_an_objectives_option_picks_its_measured_sampler_and_sampler_wins(
    primary: str, overrides: list[str], sampler: str
) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(primary, overrides=["device=raspi4", *overrides])
    assert cfg.sampler._target_.rsplit(".", 1)[1] == sampler
