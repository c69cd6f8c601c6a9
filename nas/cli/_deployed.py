"""A deployment search's front as deployed: per Pareto candidate, the file its runtime runs (the
int8 file for an int8 deployment, calibrated on real images and checked against fp32) and a
manifest of how to run it (runtime, session settings, threads, batch).

The fp32 network file of every row is :mod:`nas.cli._onnx`'s; this adds what the deployment
changes. An int8 file is offered only when its top-1 agreement with the fp32 network on the
proxies' real images is at least ``export.int8_min_agreement`` (with trained weights, the int8
model's top-1 accuracy then differs from the fp32 model's by at most ``1 - agreement``).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from latency_predictors.measure import (
    DeployedLatency,
    Int8Fidelity,
    OnnxRuntimeCPU,
    compare_int8,
    quantize_on_images,
)
from nas import Architecture, DeployedSpace, Objective
from nas.cli._onnx import SEEDED_WEIGHTS, finite_or_none, onnx_facts
from nas.export import write_metadata
from nas.results import FORMAT_VERSION

log = logging.getLogger("hwnas.search")

#: pareto.csv's columns for each row's deployment (empty ``deployed_onnx`` and a reason in
#: ``deployed_error`` where the deployed file could not be written or failed its check).
DEPLOYED_COLUMNS = ("deployed_onnx", "deployment_manifest", "int8_top1_agreement", "int8_sqnr_db", "deployed_error")
DEPLOYED_DESCRIPTIONS = {
    "deployed_onnx": "the file the candidate's deployment runs (relative to the run directory): its int8 file for "
    "an int8 deployment, else the network's ONNX file (column onnx); how to run it is in deployment_manifest",
    "deployment_manifest": "JSON: the candidate, its network and deployment, the runtime and its settings (threads, "
    "graph optimisation, precision, execution provider), the batch, the file, the measured objectives",
    "int8_top1_agreement": "int8 deployments: share of the proxies' real images whose top-1 class the int8 file gives "
    "as the fp32 network does (the file is offered from export.int8_min_agreement on)",
    "int8_sqnr_db": "int8 deployments: signal-to-quantisation-noise ratio of the int8 logits against fp32, dB",
    "deployed_error": "why no deployed file is offered",
}


def export_deployed(
    space: DeployedSpace,
    front: list[dict[str, Any]],
    directory: Path,
    latency: DeployedLatency,
    images_of: Callable[[Architecture], torch.Tensor],
    min_agreement: float,
    objectives: tuple[str, ...] = (),
) -> int:
    """Each row's deployed file and manifest into ``directory`` (files of candidates no longer on
    the front removed); returns how many failed (recorded on their rows; the rest go on).
    ``images_of`` gives the real images an int8 file is calibrated and checked on."""
    directory.mkdir(parents=True, exist_ok=True)
    failed = 0
    written: set[Path] = set()
    for rank, row in enumerate(front):
        row.update(dict.fromkeys(DEPLOYED_COLUMNS))
        arch = space.parse(row["arch"])
        deployment = space.deployment_of(arch)
        stem = f"{rank:03d}_{arch.id}"
        manifest = {
            "format_version": FORMAT_VERSION,
            **how_to_run(space, arch, latency),
            "objectives": {name: row.get(name) for name in objectives},
        }
        try:
            if deployment.get("precision") == "int8":
                file = directory / f"{stem}.int8.onnx"
                written.add(file)
                images = images_of(arch)
                facts = onnx_facts(space, arch, SEEDED_WEIGHTS) | {"hwnas.precision": INT8_FACT}
                fidelity = write_int8(space.build(arch).eval(), images, images, file, facts)
                row.update(int8_top1_agreement=fidelity.top1_agreement, int8_sqnr_db=finite_or_none(fidelity.sqnr_db))
                manifest["int8"] = {
                    "file": str(file.relative_to(directory.parent)),
                    "top1_agreement": fidelity.top1_agreement,
                    "sqnr_db": finite_or_none(fidelity.sqnr_db),
                    "images": fidelity.images,
                }
                shortfall = agreement_shortfall(fidelity, min_agreement, "export.int8_min_agreement")
                if shortfall:
                    raise ValueError(f"{shortfall} ({file.name} kept)")
                row["deployed_onnx"] = str(file.relative_to(directory.parent))
            elif row.get("onnx"):
                row["deployed_onnx"] = row["onnx"]
            else:
                raise ValueError(
                    f"the network's ONNX file was not written: {row.get('onnx_error') or 'export.onnx=false'}"
                )
        except Exception as error:  # noqa: BLE001 - one candidate's file must not lose the front
            row["deployed_error"] = f"{type(error).__name__}: {error}"[:2000]
            log.warning("deployed file of Pareto row %d (%s): %s", rank, arch.string, row["deployed_error"])
            failed += 1
        manifest["file"] = row["deployed_onnx"]
        path = directory / f"{stem}.deployment.json"
        path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        written.add(path)
        row["deployment_manifest"] = str(path.relative_to(directory.parent))
    # A resumed search's front changes: files of candidates no longer on it would pass for members.
    for stale in sorted(set(directory.glob("[0-9][0-9][0-9]_*")) - written):
        stale.unlink()
    return failed


#: What an int8 file's metadata says of its precision.
INT8_FACT = "int8 (static QDQ, calibrated on images)"


def deployment_latency(cfg: DictConfig, measures: Sequence[Objective] = ()) -> DeployedLatency | None:
    """What says how a deployed candidate runs (its runtime and batch): the measure of ``measures``
    that times deployments live, else one over the deployment config's ``deployment_runtimes``
    (a search on predictors, which times nothing); None with neither."""
    latency = next((m for m in measures if isinstance(m, DeployedLatency)), None)
    if latency is None and cfg.get("deployment_runtimes") is not None:
        latency = DeployedLatency(runtimes=instantiate(cfg.deployment_runtimes))
    return latency


def how_to_run(space: DeployedSpace, arch: Architecture, latency: DeployedLatency) -> dict[str, Any]:
    """What a deployed candidate's manifest says about running it: the candidate, its network and
    deployment, the runtime that measured it (with onnxruntime's session options) and the batch."""
    deployment = space.deployment_of(arch)
    measured = latency.measurement(deployment)
    runtime = measured.runtime
    return {
        "candidate": arch.string,
        "network": space.network_of(arch).string,
        "deployment": deployment.params,
        "runtime": runtime.describe(),
        "session_options": runtime.session_settings() if isinstance(runtime, OnnxRuntimeCPU) else None,
        "batch_size": measured.batch_size,
    }


def write_int8(
    model: torch.nn.Module,
    calibration: torch.Tensor,
    check: torch.Tensor,
    path: Path,
    metadata: dict[str, str] | None = None,
) -> Int8Fidelity:
    """``model``'s int8 file at ``path``, calibrated on the images ``calibration``, with
    ``metadata`` in its ``metadata_props``; how it compares with fp32 on the images ``check``."""
    with tempfile.TemporaryDirectory(prefix="hwnas-deploy-") as scratch:
        _, int8 = quantize_on_images(model, calibration, Path(scratch))
        if metadata:
            write_metadata(int8, metadata)
        shutil.move(int8, path)
    return compare_int8(model, path, check)


def agreement_shortfall(fidelity: Int8Fidelity, minimum: float, setting: str) -> str | None:
    """Why an int8 file is not offered (its agreement with fp32 below ``minimum``, the value of
    ``setting``), or None when it is."""
    if fidelity.top1_agreement >= minimum:
        return None
    return (
        f"int8 agrees with fp32 on {fidelity.top1_agreement:.3f} of {fidelity.images} images, below "
        f"{setting}={minimum:g}"
    )
