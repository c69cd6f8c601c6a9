"""ONNX export of a built network, and a parity check of the exported file against PyTorch.

Every runtime that executes ONNX starts from :func:`export_onnx`, so the graph a latency was
measured on is the graph :func:`check_parity` showed to compute the same function.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: The opset deployable files are written with (hwnas-export, a search's front): supported by the
#: onnxruntime and onnx releases hwnas pins, and by the TorchScript exporter.
DEFAULT_OPSET = 18
_BATCH_AXIS = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}


class ParityError(AssertionError):
    """An ONNX file does not compute what its PyTorch module computes, within tolerance."""


@dataclass(frozen=True)
class ParityReport:
    """How far an ONNX file's output is from the PyTorch output on one input.

    ``max_abs_diff`` is the largest elementwise difference, ``max_rel_diff`` the largest
    elementwise difference over that element's magnitude (large for an element near zero even when
    the file is right), ``output_scale`` the largest magnitude of the PyTorch output and
    ``max_scaled_diff`` = ``max_abs_diff / output_scale``: the figure ``passed`` is judged on.
    """

    max_abs_diff: float
    max_rel_diff: float
    passed: bool
    rtol: float
    atol: float
    output_scale: float
    max_scaled_diff: float
    input: str  # which input these figures are from ("example" or "zeros")


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    dynamo: bool = False,
    opset: int | None = None,
    dynamic_batch: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model`` (in eval mode) as one self-contained, checked ONNX file at ``path``.

    ``dynamo=False`` uses the TorchScript exporter: about 20x faster than the dynamo exporter for
    small CNNs, which matters when every trial of a search exports once. Torch 2.9+ deprecates it
    and warns on each call; those warnings are silenced here only, not process-wide.
    ``dynamic_batch`` names the batch axis ``batch`` instead of fixing it at the example's size
    (for deployment; latency measurements keep the fixed shape they were measured with).
    ``metadata`` goes into the file's ``metadata_props``, so a model found on disk says what it is.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            if dynamo:
                if dynamic_batch and example.shape[0] == 1:
                    example = torch.cat([example, example])  # torch.export fixes a batch of 1 as a constant
                # The dynamo exporter prints progress lines to stdout; a search loop must not.
                with contextlib.redirect_stdout(io.StringIO()):
                    program = torch.onnx.export(
                        model,
                        (example,),
                        dynamo=True,
                        input_names=[INPUT_NAME],
                        output_names=[OUTPUT_NAME],
                        opset_version=opset,
                        dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic_batch else None,
                        verbose=False,
                    )
                # Weights inline (not a side .data file), so the file can be moved and deleted alone.
                program.save(str(path), external_data=False)
            else:
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    opset_version=opset,
                    dynamic_axes=_BATCH_AXIS if dynamic_batch else None,
                )
    finally:
        model.train(was_training)
    import onnx  # here, not at the top: onnx costs half a second of every command's start-up

    if metadata:
        proto = onnx.load(str(path))
        onnx.helper.set_model_props(proto, {str(k): str(v) for k, v in metadata.items()})
        onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)
    return path


def _onnx_outputs(path: Path, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; parity is judged on numbers, not warnings
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().cpu().numpy()})[0]) for x in inputs]


def _compare(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float, name: str) -> ParityReport:
    if actual.shape != expected.shape:
        inf = float("inf")
        return ParityReport(inf, inf, False, rtol, atol, output_scale=inf, max_scaled_diff=inf, input=name)
    abs_diff = np.abs(actual - expected)
    tiny = np.finfo(np.float32).tiny
    scale = float(np.abs(expected).max(initial=0.0))
    max_abs = float(abs_diff.max(initial=0.0))
    finite = bool(np.all(np.isfinite(actual)) and np.all(np.isfinite(expected)))
    return ParityReport(
        max_abs_diff=max_abs,
        max_rel_diff=float((abs_diff / np.maximum(np.abs(expected), tiny)).max(initial=0.0)),
        passed=finite and max_abs <= atol + rtol * scale,
        rtol=rtol,
        atol=atol,
        output_scale=scale,
        max_scaled_diff=max_abs / max(scale, tiny),
        input=name,
    )


def check_parity(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> ParityReport:
    """Compare the ONNX file at ``path`` (onnxruntime, CPU) with ``model`` (eval mode) on ``example``
    and on an all-zero input of its shape; the report is the input that came closer to failing.

    Passing means, on each input, every element satisfies ``|onnx - torch| <= atol + rtol *
    max|torch|``: the tolerance scales with the output as a whole, not with each element. Why:
    float32 rounding in the layers before the output is proportional to the activations'
    magnitude, so a logit near zero beside logits near 1e5 (an untrained, pool-heavy NB201 cell)
    carries an absolute error of ~1e5 x eps like its neighbours; an elementwise relative rule
    (numpy's ``allclose``) rejected such correct files. Why the zero input: beside logits near 1e5
    the tolerance is ~10, which a wrong bias would hide under; from zeros the output is what the
    biases and normalisation shifts alone make, small, and the same rule is strict there. Shapes
    that differ fail with infinite diffs, a non-finite output fails.
    """
    inputs = {"example": example, "zeros": torch.zeros_like(example)}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            expected = [model(x).detach().cpu().numpy().astype(np.float64) for x in inputs.values()]
    finally:
        model.train(was_training)
    actual = _onnx_outputs(Path(path), tuple(inputs.values()))
    reports = [_compare(a.astype(np.float64), e, rtol, atol, name) for a, e, name in zip(actual, expected, inputs)]
    return max(reports, key=lambda r: (not r.passed, _share_of_tolerance(r)))


def _share_of_tolerance(report: ParityReport) -> float:
    """How much of its tolerance a report's largest difference used (inf past a zero tolerance)."""
    tolerance = report.atol + report.rtol * report.output_scale
    if tolerance > 0:
        return report.max_abs_diff / tolerance
    return 0.0 if report.max_abs_diff == 0 else float("inf")


def assert_parity(
    model: nn.Module,
    example: torch.Tensor,
    path: Path,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> ParityReport:
    """:func:`check_parity`, raising :class:`ParityError` naming the file and diffs on failure."""
    report = check_parity(model, example, path, rtol=rtol, atol=atol)
    if not report.passed:
        hint = "; infinite diffs mean the output shapes differ" if report.max_abs_diff == float("inf") else ""
        raise ParityError(
            f"ONNX file {path} does not match its PyTorch module: max abs diff "
            f"{report.max_abs_diff:.3g} > atol {atol:g} + rtol {rtol:g} x output scale "
            f"{report.output_scale:.3g} on the {report.input} input (scaled diff "
            f"{report.max_scaled_diff:.3g}; largest elementwise relative diff {report.max_rel_diff:.3g}){hint}"
        )
    return report


def write_metadata(path: Path, facts: Mapping[str, str]) -> None:
    """Set ``facts`` in the ONNX file's ``metadata_props`` (others kept), checked again."""
    import onnx

    proto = onnx.load(str(path))
    kept = {p.key: p.value for p in proto.metadata_props}
    onnx.helper.set_model_props(proto, kept | {str(k): str(v) for k, v in facts.items()})
    onnx.save(proto, str(path))
    onnx.checker.check_model(str(path), full_check=True)


def export_deployable(
    model: nn.Module,
    examples: Mapping[int, torch.Tensor],
    path: Path,
    *,
    opset: int = DEFAULT_OPSET,
    metadata: Mapping[str, str] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    dynamo: bool = False,
) -> dict[int, ParityReport]:
    """A file to deploy: ``model`` exported with ``opset`` and a dynamic batch axis, its
    ``metadata``, ``onnx.checker``, and parity against PyTorch at each batch size of ``examples``
    (``{1: x1, 8: x8}``); returns each batch's report (``passed`` says whether it is within
    tolerance). The first example is the one traced."""
    first = next(iter(examples.values()))
    export_onnx(model, first, path, dynamo=dynamo, opset=opset, dynamic_batch=True, metadata=metadata)
    return {batch: check_parity(model, x, path, rtol=rtol, atol=atol) for batch, x in examples.items()}
