"""How faithfully an int8 deployment computes its network: int8 against fp32 on real images.

A quantised network's accuracy needs trained weights and labelled data; what every deployment
search has is the network as built and a batch of real images (the proxies' batch). So the
fidelity measure is the int8 file's agreement with the fp32 network on those images: the share
of images whose top-1 class is the same (:attr:`Int8Fidelity.top1_agreement`) and the
signal-to-quantisation-noise ratio of the logits in dB (:attr:`Int8Fidelity.sqnr_db`). With
trained weights (hwnas-export from a trained supernet) agreement bounds the accuracy change: the
int8 model's top-1 accuracy differs from the fp32 model's by at most ``1 - top1_agreement``.
"""

from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from latency_predictors.measure._runtimes import quantize_int8, torch_threads
from nas import Candidate, Cost, Direction, Objective, ObjectiveError, deployed
from nas.export import INPUT_NAME, export_onnx
from nas.proxies import ProxyData

if TYPE_CHECKING:
    from nas.training import InheritedAccuracy

#: The deployment gene and value that mean "run the int8 file".
PRECISION_GENE, INT8 = "precision", "int8"


@dataclass(frozen=True)
class Int8Fidelity:
    """An int8 file against its fp32 network on ``images`` images."""

    top1_agreement: float
    sqnr_db: float
    images: int


def calibration_of(images: torch.Tensor, batches: int = 8) -> list[np.ndarray]:
    """``images`` split into at most ``batches`` calibration batches."""
    return [chunk.numpy() for chunk in torch.tensor_split(images.detach().cpu(), min(batches, len(images)))]


#: A BN channel whose running variance is below this computes a constant on the data its
#: statistics came from (a dead channel: its input is constant, e.g. all zero after a ReLU).
DEAD_VARIANCE = 1e-3
#: The variance such a channel is given before quantising: its scale 1/sqrt(var + eps) drops from
#: about 316 (var 0, eps 1e-5) to 1e-6, so it outputs its shift as fp32 does.
SILENCED_VARIANCE = 1e12


def without_dead_channels(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose dead BN channels (running variance below :data:`DEAD_VARIANCE`)
    output their shift whatever reaches them. In fp32 they do already, their input being constant;
    in int8 their scale of about 316 would amplify the quantisation noise of that input into the
    next layers. Measured on a supernet trained on digits (scripts/bench_int8_accuracy.py, 40 NB201
    networks, BN recalibrated): 6 had dead channels, which lost 55.8 points of top-1 accuracy in
    int8 on average against 0.96 for the others; silenced, see the README."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_var is not None:
                dead = module.running_var < DEAD_VARIANCE
                module.running_var[dead] = SILENCED_VARIANCE
    return model


def quantize_on_images(model: nn.Module, images: torch.Tensor, directory: Path) -> tuple[Path, Path]:
    """``model`` exported (dynamic batch) to ``directory/model.onnx`` and statically quantised to
    ``directory/model.int8.onnx``, its ranges calibrated on ``images``; both paths. The int8 file
    is quantised from the model with its dead BN channels silenced (:func:`without_dead_channels`)."""
    with torch_threads(1):
        fp32 = export_onnx(model.eval(), images[:1], directory / "model.onnx", dynamic_batch=True)
        silenced = export_onnx(
            without_dead_channels(model).eval(), images[:1], directory / "silenced.onnx", dynamic_batch=True
        )
    int8 = quantize_int8(silenced, images[:1], directory / "model.int8.onnx", calibration=calibration_of(images))
    return fp32, int8


def compare_int8(model: nn.Module, int8_path: Path, images: torch.Tensor) -> Int8Fidelity:
    """The int8 file at ``int8_path`` against ``model`` (fp32, PyTorch) on ``images``."""
    session = _session(int8_path)
    quantised = session.run(None, {INPUT_NAME: images.detach().cpu().numpy()})[0].astype(np.float64)
    with torch.no_grad():
        reference = model.eval()(images).detach().cpu().numpy().astype(np.float64)
    noise = float(np.sum((reference - quantised) ** 2))
    signal = float(np.sum(reference**2))
    sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    agreement = float(np.mean(reference.argmax(axis=1) == quantised.argmax(axis=1)))
    return Int8Fidelity(agreement, sqnr, len(images))


def int8_fidelity(model: nn.Module, images: torch.Tensor) -> Int8Fidelity:
    """Quantise ``model`` calibrated on ``images`` and compare the int8 file with it there."""
    with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as scratch:
        _, int8 = quantize_on_images(model, images, Path(scratch))
        return compare_int8(model, int8, images)


class Int8Agreement(Objective):
    """Top-1 agreement of a deployed candidate's int8 file with its fp32 network on real images
    (1.0 for a deployment that does not quantise); the SQNR of its logits is kept beside it.

    ``data`` is a :class:`nas.proxies.ProxyData` (the proxies' batch of real images), which
    calibrates the quantisation and is compared on: the network as built (the space's seeded
    weights in a search), quantised as a deployed file would be.
    """

    direction = Direction.MAXIMIZE
    cost = Cost.PROXY

    def __init__(self, name: str = "int8_agreement", data: ProxyData | None = None) -> None:
        super().__init__(name)
        if not isinstance(data, ProxyData):
            raise ValueError(
                f"Int8Agreement needs data: a nas.proxies.ProxyData (the images to compare on), got {data!r}"
            )
        self.data = data
        self._last: dict[str, Int8Fidelity] = {}

    def __call__(self, candidate: Candidate) -> float:
        space, deployment = deployed(candidate, self.name)
        if deployment.get(PRECISION_GENE) != INT8:
            return 1.0
        images = self.data.batch(space.input_shape_of(candidate.arch), space.num_classes).images
        try:
            fidelity = int8_fidelity(candidate.model, images)
        except Exception as error:  # an export or quantisation failure is this candidate's
            raise ObjectiveError(f"could not quantise {candidate.arch.string}: {error}") from error
        self._last[candidate.arch.string] = fidelity
        return fidelity.top1_agreement

    def details(self, candidate: Candidate) -> dict[str, float | int | bool]:
        fidelity = self._last.get(candidate.arch.string)
        if fidelity is None or not math.isfinite(fidelity.sqnr_db):
            return {}
        return {"sqnr_db": fidelity.sqnr_db, "images": fidelity.images}

    def describe(self) -> str:
        return (
            "share of real images whose top-1 class the candidate's int8 file gives as its fp32 network does "
            "(1 for a deployment that does not quantise)"
        )

    def describe_details(self) -> dict[str, str]:
        return {
            "sqnr_db": "signal-to-quantisation-noise ratio of the int8 logits against the fp32 ones, dB",
            "images": "images compared (the proxies' batch, which also calibrated the quantisation)",
        }

    def source(self) -> str:
        return f"int8 agreement on {self.data.describe()}"


class DeployedAccuracy(Objective):
    """Top-1 accuracy (percent) of a candidate as deployed, where its weights are trained.

    ``accuracy`` is an :class:`nas.training.InheritedAccuracy` (a supernet trained by
    hwnas-train-supernet): a deployment that does not quantise scores its network's inherited
    accuracy; an int8 deployment scores its int8 file (the subnet with the trained weights, BN
    recalibrated, exported and statically quantised with its ranges calibrated on the same training
    images BN was) on the same validation images through onnxruntime. The fp32 accuracy and the
    drop are kept beside it (``accuracy.fp32``, ``accuracy.int8_drop``).
    """

    direction = Direction.MAXIMIZE
    cost = Cost.PROXY

    def __init__(self, accuracy: InheritedAccuracy, name: str = "accuracy") -> None:
        super().__init__(name)
        self.accuracy = accuracy
        self._last: dict[str, tuple[float, float]] = {}

    def __call__(self, candidate: Candidate) -> float:
        space, deployment = deployed(candidate, self.name)
        networks, network = space.networks, candidate.network
        fp32 = self.accuracy(Candidate(network, networks))
        deployed_accuracy = fp32
        if deployment.get(PRECISION_GENE) == INT8:
            subnet = self.accuracy.subnet(networks, network)  # type: ignore[arg-type]
            images = self.accuracy.calibration_images(networks, network)  # type: ignore[arg-type]
            with tempfile.TemporaryDirectory(prefix="hwnas-int8-") as scratch:
                try:
                    _, int8 = quantize_on_images(subnet, images, Path(scratch))
                    session = _session(int8)
                except Exception as error:  # an export or quantisation failure is this candidate's
                    raise ObjectiveError(f"could not quantise {candidate.arch.string}: {error}") from error
                deployed_accuracy = self.accuracy.accuracy_of(
                    networks,  # type: ignore[arg-type]
                    network,
                    lambda x: torch.from_numpy(session.run(None, {INPUT_NAME: x.cpu().numpy()})[0]),
                )
        self._last[candidate.arch.string] = (fp32, deployed_accuracy)
        return deployed_accuracy

    def details(self, candidate: Candidate) -> dict[str, float | int | bool]:
        kept = self._last.get(candidate.arch.string)
        if kept is None:
            return {}
        return {"fp32": kept[0], "int8_drop": kept[0] - kept[1]}

    def describe(self) -> str:
        return (
            f"top-1 accuracy (percent) as deployed: {self.accuracy.describe()}; for an int8 deployment, its int8 "
            "file's on the same images"
        )

    def describe_details(self) -> dict[str, str]:
        return {
            "fp32": "the network's inherited top-1 accuracy in fp32 (percent)",
            "int8_drop": "fp32 accuracy minus the deployed accuracy, percentage points (0 without quantisation)",
        }

    def source(self) -> str:
        return f"deployed {self.accuracy.source()}"


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
