"""hwnas-export: deployable ONNX models of a finished search's architectures, each checked and
saying what it is.

    hwnas-export run_dir=outputs/2026-12-05/10-00-00_nb201_raspi4            # the whole front
    hwnas-export run_dir=<run> select=top_k k=3 by=accuracy int8=true fp16=true
    hwnas-export run_dir=<run> select=archs 'archs=[<arch string>]'       # or select=trials 'trials=[3,17]'
    hwnas-export run_dir=<run> checkpoint=<hwnas-train-supernet run> data=digits   # trained weights

Read top to bottom: the search's own saved config (``<run_dir>/.hydra/config.yaml``) gives the
space; the rows come from its pareto.csv or trials.csv; each architecture is built (the space's
seeded initial weights, untrained, said plainly; or its subnet of a trained supernet, BN
recalibrated), exported with an explicit opset and a dynamic batch axis, checked by
``onnx.checker`` and against PyTorch in onnxruntime at each batch of ``batches`` (a file above
tolerance is kept, marked failed, and the command exits non-zero), timed in onnxruntime on this
machine beside the value the search estimated, optionally quantised to int8 and converted to
fp16, and described in its ``manifest.json`` and in the file's own ``metadata_props``.
``export.csv`` lists every model.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import onnxruntime as ort
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from latency_predictors.measure import (
    cpu_model_name,
    measure_latency_ms,
    quantize_int8,
)
from nas import Architecture, DeployedSpace, SearchSpace
from nas.cli import CONFIG_DIR
from nas.cli._deployed import agreement_shortfall, deployment_latency, how_to_run, write_int8
from nas.cli._explain import explained
from nas.cli._onnx import SEEDED_WEIGHTS, finite_or_none, onnx_facts
from nas.cli._options import EXPORT, OptionError, check_options
from nas.cli._space import search_space
from nas.cli.search import library_versions
from nas.errors import MissingFileError
from nas.export import INPUT_NAME, OUTPUT_NAME, ParityReport, export_deployable, write_metadata
from nas.proxies import ProxyData
from nas.results import write_json

log = logging.getLogger("hwnas.export")
SELECTIONS = ("front", "top_k", "archs", "trials")
MANIFEST_VERSION = 1


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="export")
@explained
def main(cfg: DictConfig) -> None:
    check_options(cfg, EXPORT)
    out = Path(HydraConfig.get().runtime.output_dir)
    rows = export_run(cfg, out)
    failed = [r for r in rows if r["error"]]
    log.info("%d models exported to %s (%d failed)", len(rows) - len(failed), out, len(failed))
    if failed:
        for row in failed:
            log.error("%s: %s", row["arch"], row["error"])
        sys.exit(1)


def export_run(cfg: DictConfig, out: Path) -> list[dict[str, Any]]:
    """Every selected architecture of the search at ``cfg.run_dir`` into ``out``; the rows of
    export.csv."""
    search_dir = Path(cfg.run_dir).expanduser()
    search_cfg = search_config(search_dir)
    space = search_space(search_cfg)
    # A deployment search's candidates are exported as deployed, runtimes described as it ran them.
    deployed = Deployed(cfg, search_cfg) if isinstance(space, DeployedSpace) else None
    summary = json.loads((search_dir / "summary.json").read_text()) if (search_dir / "summary.json").is_file() else {}
    objectives: dict[str, str] = summary.get("objectives", {})
    rows = select_rows(cfg, search_dir, space, objectives)
    weights = Weights(cfg, space)
    facts = {
        "hwnas.search_run": str(search_dir.resolve()),
        "hwnas.device": str(search_cfg.device.name),
        "hwnas.study": str(summary.get("study_name", "")),
    }
    exported = []
    for rank, row in enumerate(tqdm(rows, desc="export", unit="model", disable=not cfg.progress)):
        arch = space.parse(row["arch"])
        directory = out / f"{rank:03d}_{arch.id}"
        record = export_one(cfg, space, arch, weights, directory, facts, {n: _number(row.get(n)) for n in objectives})
        if deployed is not None:
            assert isinstance(space, DeployedSpace)
            row_of_deployment = deployed.export(space, arch, weights.model(arch), directory)
            problem = row_of_deployment.pop("deployed_error", None)
            record |= row_of_deployment
            record["error"] = "; ".join(e for e in (record["error"], problem) if e)
        exported.append({"rank": rank, "arch": arch.string, "trial": row.get("number"), **record})
    columns = list(dict.fromkeys(k for r in exported for k in r))
    with (out / "export.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(exported)
    return exported


def search_config(search_dir: Path) -> DictConfig:
    """The search's composed config as it ran (a multi-device run's device directory reads its
    run's, with this device)."""
    for config in (search_dir / ".hydra" / "config.yaml", search_dir.parent.parent / ".hydra" / "config.yaml"):
        if config.is_file():
            cfg = OmegaConf.load(config)
            if config.parent.parent != search_dir:  # devices/<name>: the run's config, this device
                cfg.device.name = search_dir.name
            return cfg
    raise MissingFileError(
        f"run_dir={search_dir} holds no .hydra/config.yaml: give an hwnas-search run directory "
        "(for several devices, its devices/<name>)"
    )


def select_rows(
    cfg: DictConfig, search_dir: Path, space: SearchSpace, objectives: dict[str, str]
) -> list[dict[str, Any]]:
    """The search's rows the selection names (pareto.csv for the front, trials.csv otherwise)."""
    if cfg.select not in SELECTIONS:
        raise ValueError(f"select={cfg.select!r}; choose one of {', '.join(SELECTIONS)}")
    if cfg.select == "front":
        return _read_csv(search_dir / "pareto.csv")
    trials = _read_csv(search_dir / "trials.csv")
    evaluated = [r for r in trials if r["state"] == "COMPLETE" and not r.get("reused_from_trial")]
    if cfg.select == "top_k":
        by = cfg.by or next((n for n, d in objectives.items() if d == "maximize"), None)
        if by not in objectives:
            raise ValueError(f"by={by!r} is not an objective of this search; choose one of {sorted(objectives)}")
        feasible = [r for r in evaluated if r.get("feasible") == "True"]
        feasible.sort(key=lambda r: float(r[by]), reverse=objectives[by] == "maximize")
        return feasible[: int(cfg.k)]
    if cfg.select == "trials":
        by_number = {int(r["number"]): r for r in trials}
        missing = [n for n in cfg.trials if int(n) not in by_number]
        if missing or not cfg.trials:
            raise ValueError(f"trials={list(cfg.trials)}: no trial numbered {missing} in {search_dir / 'trials.csv'}")
        return [by_number[int(n)] for n in cfg.trials]
    if not cfg.archs:
        raise ValueError("select=archs needs 'archs=[<architecture string>, ...]'")
    known = {r["arch"]: r for r in evaluated}
    # Parsing names a malformed string and what the space expects; its canonical form finds its trial.
    return [known.get(space.parse(str(a)).string, {"arch": space.parse(str(a)).string}) for a in cfg.archs]


def _read_csv(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise MissingFileError(f"{path} is missing: the search has not written its outputs (resume it first)")
    with path.open() as f:
        return list(csv.DictReader(f))


class Weights:
    """Where a model's weights come from: a trained supernet (its subnet, BN recalibrated) or the
    space's seeded initialisation."""

    def __init__(self, cfg: DictConfig, space: SearchSpace) -> None:
        self.inherited = None
        self.description = SEEDED_WEIGHTS.replace("seed 0", f"seed {cfg.seed}")
        self.seed = int(cfg.seed)
        if cfg.checkpoint:
            from nas.training import InheritedAccuracy

            data = instantiate(cfg.data)
            self.inherited = InheritedAccuracy(cfg.checkpoint, data, bn_batches=cfg.bn_batches)
            self.description = (
                f"trained: the subnet of the supernet {self.inherited.path}, BN statistics recomputed on "
                f"{cfg.bn_batches} batches of {data!r}"
            )
        self.space = space

    def model(self, arch: Architecture) -> torch.nn.Module:
        if self.inherited is not None:  # the supernet holds networks: a deployed candidate's is its network
            return self.inherited.subnet(self.space.networks, self.space.network_of(arch))
        return self.space.build(arch, seed=self.seed).eval()


class Deployed:
    """A deployment search's candidate as deployed: the file its runtime runs (an int8 candidate's
    int8 file, calibrated on 64 of ``data``'s training images and checked against fp32 on 256
    drawn with the next seed, which may share a few) and how to run it, in ``manifest.json``'s
    ``deployment``. An int8 file whose top-1 agreement with fp32 is
    below ``int8_min_agreement`` is kept but marked failed: the int8 model's top-1 accuracy may
    then differ from the fp32 model's by more than ``1 - int8_min_agreement`` (it differs by at
    most the share of images whose class changed)."""

    def __init__(self, cfg: DictConfig, search_cfg: DictConfig) -> None:
        latency = deployment_latency(search_cfg)
        if latency is None:  # a run from before deployment_runtimes: its live device's runtimes
            latency = deployment_latency(search_cfg, [instantiate(search_cfg.device.latency_ms, name="latency_ms")])
        if latency is None:
            raise OptionError(
                f"{search_cfg.deployment.name}: the run's config says neither how its deployments are run "
                "(deployment_runtimes) nor measures them live (device.latency_ms); export with the deployment "
                "config it was searched with"
            )
        self.latency = latency
        dataset = instantiate(cfg.data)
        self.calibration = ProxyData(dataset, batch_size=64, seed=int(cfg.seed))
        self.check = ProxyData(dataset, batch_size=256, seed=int(cfg.seed) + 1)
        self.min_agreement = float(cfg.int8_min_agreement)

    def export(
        self, space: DeployedSpace, arch: Architecture, model: torch.nn.Module, directory: Path
    ) -> dict[str, Any]:
        """Write the deployed file and the manifest's ``deployment``; the export.csv columns."""
        record = how_to_run(space, arch, self.latency) | {"file": "model.onnx"}
        row: dict[str, Any] = {"deployed_file": "model.onnx", "int8_top1_agreement": None}
        if space.deployment_of(arch).get("precision") == "int8":
            shape, classes = space.input_shape_of(arch), space.num_classes
            fidelity = write_int8(
                model,
                self.calibration.batch(shape, classes).images,
                self.check.batch(shape, classes).images,
                directory / "model.deployed.int8.onnx",
            )
            record["file"] = row["deployed_file"] = "model.deployed.int8.onnx"
            record["int8"] = {
                "calibrated_on": self.calibration.describe(),
                "checked_on": self.check.describe(),
                "top1_agreement": fidelity.top1_agreement,
                "sqnr_db": finite_or_none(fidelity.sqnr_db),
                "max_top1_accuracy_change": 1 - fidelity.top1_agreement,
                "min_agreement": self.min_agreement,
            }
            row["int8_top1_agreement"] = fidelity.top1_agreement
            shortfall = agreement_shortfall(fidelity, self.min_agreement, "int8_min_agreement")
            if shortfall:
                row["deployed_error"] = shortfall
        manifest_path = directory / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        write_json(manifest_path, manifest | {"deployment": record})
        return row


def export_one(
    cfg: DictConfig,
    space: SearchSpace,
    arch: Architecture,
    weights: Weights,
    directory: Path,
    facts: dict[str, str],
    objectives: dict[str, float | None],
) -> dict[str, Any]:
    """One model: model.onnx (and model.int8.onnx, model.fp16.onnx) and manifest.json; returns
    its export.csv row (``error`` empty when parity held)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "model.onnx"
    model = weights.model(arch)
    examples = {int(b): space.example_input(int(b), arch=arch) for b in cfg.batches}
    metadata = onnx_facts(space, arch, weights.description) | facts
    metadata |= {f"hwnas.objective.{n}": repr(v) for n, v in objectives.items() if v is not None}
    reports = export_deployable(
        model,
        examples,
        path,
        opset=cfg.opset,
        metadata=metadata,
        rtol=cfg.parity_rtol,
        atol=cfg.parity_atol,
        dynamo=cfg.dynamo,
    )
    failed = {b: r for b, r in reports.items() if not r.passed}
    latency = onnxruntime_latency(path, examples[min(examples)], cfg.measure)
    estimated = objectives.get("latency_ms")
    measured_facts = {
        "hwnas.latency_ms.onnxruntime": f"{latency['median_ms']:.4f}",
        "hwnas.measured_on": latency["cpu"],
    }
    write_metadata(path, measured_facts)
    files = {"fp32": _file(path, directory)}
    if cfg.int8:
        files["int8"] = _variant(
            quantize_int8(path, examples[min(examples)], directory / "model.int8.onnx"), model, examples, cfg, directory
        )
    if cfg.fp16:
        files["fp16"] = _variant(to_fp16(path, directory / "model.fp16.onnx"), model, examples, cfg, directory)
    manifest = {
        "format_version": MANIFEST_VERSION,
        "arch": arch.string,
        "arch_id": arch.id,
        "space": space.name,
        "space_settings": repr(space),
        "weights": weights.description,
        "search": {k.removeprefix("hwnas."): v for k, v in facts.items()},
        "objectives_in_search": objectives,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["batch", *space.input_shape_of(arch)]},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["batch", "classes"]},
        "opset": int(cfg.opset),
        "parity": {str(b): _parity(r) for b, r in reports.items()},
        "latency_ms": {"estimated_by_search": estimated, "onnxruntime_here": latency},
        "files": files,
        "versions": library_versions(),
    }
    write_json(directory / "manifest.json", manifest)
    error = "; ".join(
        f"parity at batch {b}: max abs diff {r.max_abs_diff:.3g} > atol {r.atol:g} + rtol {r.rtol:g} x output "
        f"scale {r.output_scale:.3g}"
        for b, r in failed.items()
    )
    return {
        "directory": directory.name,
        "onnx": str(path.relative_to(directory.parent)),
        "max_abs_diff": max(r.max_abs_diff for r in reports.values()),
        "latency_ms_estimated": estimated,
        "latency_ms_onnxruntime": latency["median_ms"],
        "sha256": files["fp32"]["sha256"],
        "error": error,
    }


def onnxruntime_latency(path: Path, example: torch.Tensor, settings: DictConfig) -> dict[str, Any]:
    """Median latency (ms) of the file in onnxruntime on this machine's CPU, warm-up and repeats."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(settings.threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {INPUT_NAME: example.numpy()}
    stats = measure_latency_ms(
        lambda: session.run([OUTPUT_NAME], feed), warmup=settings.warmup, repeats=settings.repeats
    )
    return {
        "median_ms": stats.median_ms,
        "iqr_ms": stats.iqr_ms,
        "repeats": stats.repeats,
        "batch": int(example.shape[0]),
        "threads": int(settings.threads),
        "cpu": cpu_model_name(),
    }


def to_fp16(path: Path, out: Path) -> Path:
    """A float16 copy whose inputs and outputs stay float32 (onnxruntime's converter)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    _sort_nodes(model.graph)
    onnx.save(model, str(out))
    onnx.checker.check_model(str(out), full_check=True)
    return out


def _sort_nodes(graph: Any) -> None:
    """Put the graph's nodes in an order where each follows what it reads (the converter appends
    its input casts after the nodes that use them, which onnx.checker refuses)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        runnable = [n for n in pending if all(i in ready for i in n.input)]
        if not runnable:
            raise ValueError("the float16 graph has a cycle or reads a value nothing writes")
        for node in runnable:
            ready.update(node.output)
            ordered.append(node)
        pending = [n for n in pending if all(n is not r for r in runnable)]
    del graph.node[:]
    graph.node.extend(ordered)


def _variant(
    path: Path, model: torch.nn.Module, examples: dict[int, torch.Tensor], cfg: DictConfig, directory: Path
) -> dict[str, Any]:
    """A lower-precision copy: its distance from PyTorch at the largest batch (reported, not judged:
    it is not meant to match float32) and its latency here."""
    batch = max(examples)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: examples[batch].numpy()})[0]
    with torch.inference_mode():
        expected = model(examples[batch]).numpy()
    return _file(path, directory) | {
        "max_abs_diff": float(np.abs(got - expected).max()),
        "top1_agreement": float((got.argmax(1) == expected.argmax(1)).mean()),
        "batch": batch,
        "latency_ms_onnxruntime": onnxruntime_latency(path, examples[min(examples)], cfg.measure)["median_ms"],
    }


def _file(path: Path, directory: Path) -> dict[str, Any]:
    return {"path": str(path.relative_to(directory)), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _parity(report: ParityReport) -> dict[str, Any]:
    return {
        "passed": report.passed,
        "max_abs_diff": report.max_abs_diff,
        "max_scaled_diff": report.max_scaled_diff,
        "input": report.input,
        "rtol": report.rtol,
        "atol": report.atol,
    }


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


if __name__ == "__main__":
    main()
