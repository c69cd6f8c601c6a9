"""The ONNX files of a search's front: one deployable, checked, self-describing file per Pareto
architecture, and the pareto.csv columns that say how each went (:func:`nas.export.export_deployable`
does the exporting; hwnas-export uses the same facts)."""

from __future__ import annotations

import logging
import math
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from tqdm.auto import tqdm

from nas import SearchSpace
from nas.export import DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, export_deployable

log = logging.getLogger("hwnas.search")


#: pareto.csv's columns for the ONNX file of each row (empty ``onnx`` and a reason in
#: ``onnx_error`` where the export or its parity check failed).
ONNX_COLUMNS = ("onnx", "onnx_max_abs_diff", "onnx_max_rel_diff", "onnx_max_scaled_diff", "onnx_error")
ONNX_DESCRIPTIONS = {
    "onnx": "the architecture as an ONNX file (relative to the run directory; opset and a dynamic batch axis, "
    "what it is in its metadata_props), with the space's seeded initial weights, untrained: for deployment "
    "tooling and latency, train it before use (hwnas-export takes a trained supernet); empty if onnx_error",
    "onnx_max_abs_diff": "largest |onnxruntime - PyTorch| over the logits, at the batch (1 or 8) and on the "
    "input (the space's example, or zeros) closer to failing",
    "onnx_max_rel_diff": "largest elementwise |onnxruntime - PyTorch| / |PyTorch| (large where a logit is near 0)",
    "onnx_max_scaled_diff": "onnx_max_abs_diff / largest |PyTorch logit|: parity passes when it is within "
    "export.parity_rtol (plus export.parity_atol)",
    "onnx_error": "why no file is offered: the export or its parity check failed",
}


def export_front(
    space: SearchSpace,
    front: list[dict[str, Any]],
    directory: Path,
    cfg: DictConfig,
    progress: bool = False,
    facts: dict[str, str] | None = None,
    objectives: tuple[str, ...] = (),
) -> int:
    """One ONNX file per Pareto architecture (:func:`nas.export.export_deployable`: explicit opset,
    dynamic batch axis, ``metadata_props``, onnx.checker, parity against PyTorch at batch 1 and
    8); returns how many failed. A failure is recorded on its row and the rest go on: a finished
    search's results must not be lost to one export. The weights are the space's seeded
    initialisation, untrained: the files carry the architecture, for deployment and latency, not a
    trained model (hwnas-export gives a trained supernet's). ``facts`` (the search's device, study)
    and each row's ``objectives`` go into every file's metadata."""
    directory.mkdir(parents=True, exist_ok=True)
    failed = 0
    written = set()
    for rank, row in enumerate(tqdm(front, desc="onnx export", unit="model", disable=not progress)):
        row.update(dict.fromkeys(ONNX_COLUMNS))
        arch = space.parse(row["arch"])
        path = directory / f"{rank:03d}_{arch.id}.onnx"
        written.add(path)
        metadata = onnx_facts(space, arch, SEEDED_WEIGHTS) | (facts or {})
        metadata |= {f"hwnas.objective.{name}": repr(row[name]) for name in objectives if name in row}
        try:
            model = space.build(arch).eval()
            examples = {b: space.example_input(b, arch=arch) for b in (1, 8)}
            reports = export_deployable(
                model,
                examples,
                path,
                opset=cfg.get("opset", DEFAULT_OPSET),
                metadata=metadata,
                rtol=cfg.parity_rtol,
                atol=cfg.parity_atol,
                dynamo=cfg.dynamo,
            )
        except Exception as error:  # noqa: BLE001 - one architecture's export must not lose the front
            row["onnx_error"] = f"{type(error).__name__}: {error}"[:2000]
            log.warning("ONNX export of Pareto row %d (%s) failed: %s", rank, arch.string, row["onnx_error"])
            failed += 1
            continue
        batch, report = max(reports.items(), key=lambda item: (not item[1].passed, item[1].max_scaled_diff))
        row.update(  # JSON has no inf/NaN (shapes that differ, a non-finite output): null, and onnx_error says why
            onnx_max_abs_diff=finite_or_none(report.max_abs_diff),
            onnx_max_rel_diff=finite_or_none(report.max_rel_diff),
            onnx_max_scaled_diff=finite_or_none(report.max_scaled_diff),
        )
        if report.passed:
            row["onnx"] = str(path.relative_to(directory.parent))
        else:
            # Keep the file for inspection, but do not offer it as this architecture's model.
            row["onnx_error"] = (
                f"parity at batch {batch}: max abs diff {report.max_abs_diff:.3g} > atol {report.atol:g} + rtol "
                f"{report.rtol:g} x output scale {report.output_scale:.3g} on the {report.input} input "
                f"({path.name} kept)"
            )
            log.warning("ONNX file %s does not match PyTorch: %s", path, row["onnx_error"])
            failed += 1
    # A resumed search's front changes: files of architectures no longer on it would pass for its members.
    for stale in sorted(set(directory.glob("[0-9][0-9][0-9]_*.onnx")) - written):
        stale.unlink()
        log.info("removed %s: its architecture is no longer on the front", stale)
    return failed


SEEDED_WEIGHTS = (
    "the space's seeded initial weights (seed 0), untrained: for deployment tooling and latency; train before use"
)


def onnx_facts(space: SearchSpace, arch: Any, weights: str) -> dict[str, str]:
    """What a deployable ONNX file says about itself in its ``metadata_props``."""
    channels, *size = space.input_shape_of(arch)
    return {
        "hwnas.arch": arch.string,
        "hwnas.space": space.name,
        "hwnas.space_settings": repr(space),
        "hwnas.weights": weights,
        "hwnas.input": f"{INPUT_NAME}: float32 [batch, {channels}, {', '.join(map(str, size))}]",
        "hwnas.output": f"{OUTPUT_NAME}: float32 [batch, classes]",
        "hwnas.version": _hwnas_version(),
    }


def finite_or_none(value: float) -> float | None:
    """``value``, or None where JSON cannot hold it (inf, NaN)."""
    return value if math.isfinite(value) else None


def _hwnas_version() -> str:
    try:
        return metadata.version("hwnas")
    except metadata.PackageNotFoundError:
        return "not installed"
