"""Reusable conformance tests for search spaces (in the manner of ``optuna.testing``).

A space's test module subclasses :class:`SearchSpaceContract` and overrides the ``space`` fixture::

    class TestMySpace(SearchSpaceContract):
        @pytest.fixture
        def space(self) -> SearchSpace:
            return MySpace()

Every test here is cheap (a handful of samples, two builds, one ONNX export), so a space gets
the whole contract on every run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from nas._architecture import Architecture
from nas._space import ArchitectureError, SearchSpace

#: Seeds of the sampled architectures every string test walks through.
SAMPLE_SEEDS: tuple[int, ...] = (0, 1, 2)
SAMPLES_PER_SEED = 8


def _sampled(space: SearchSpace) -> list[Architecture]:
    archs = []
    for seed in SAMPLE_SEEDS:
        rng = np.random.default_rng(seed)
        archs.extend(space.sample(rng) for _ in range(SAMPLES_PER_SEED))
    return archs


class SearchSpaceContract:
    """What every :class:`SearchSpace` must satisfy; not collected itself (no ``Test`` prefix)."""

    @pytest.fixture
    def space(self) -> SearchSpace:
        raise NotImplementedError("a SearchSpaceContract subclass must override the `space` fixture")

    @pytest.fixture
    def num_classes(self, space: SearchSpace) -> int:
        return space.num_classes

    def test_string_round_trip(self, space: SearchSpace) -> None:
        for arch in _sampled(space):
            parsed = space.parse(arch.string)
            assert parsed == arch, f"{arch.string!r} parsed to {parsed.string!r}"
            assert parsed.string == arch.string

    def test_parse_of_format_is_identity(self, space: SearchSpace) -> None:
        for arch in _sampled(space):
            assert space.format(arch.params) == arch.string
            assert space.architecture(space.parse_genes(arch.string)) == arch

    def test_unknown_gene_value_is_rejected_naming_gene_and_choices(self, space: SearchSpace) -> None:
        arch = space.sample(np.random.default_rng(0))
        gene = space.genes()[0]
        bad = {**arch.params, gene.name: "__not_a_choice__"}
        with pytest.raises(ArchitectureError) as error:
            space.architecture(bad)
        message = str(error.value)
        assert repr(gene.name) in message
        assert all(repr(choice) in message for choice in gene.choices)

    def test_unknown_gene_name_is_rejected(self, space: SearchSpace) -> None:
        arch = space.sample(np.random.default_rng(0))
        with pytest.raises(ArchitectureError, match="__no_such_gene__"):
            space.architecture({**arch.params, "__no_such_gene__": 0})

    def test_distributions_cover_exactly_the_genes(self, space: SearchSpace) -> None:
        distributions = space.distributions()
        assert list(distributions) == [g.name for g in space.genes()]
        for gene in space.genes():
            assert tuple(distributions[gene.name].choices) == gene.choices

    def test_encode_is_one_hot_per_gene(self, space: SearchSpace) -> None:
        archs = _sampled(space)
        features = space.encode(archs)
        widths = [len(g.choices) for g in space.genes()]
        assert features.shape == (len(archs), sum(widths))
        assert set(np.unique(features)) <= {0.0, 1.0}
        offsets = np.cumsum([0, *widths])
        for start, stop in zip(offsets[:-1], offsets[1:]):
            np.testing.assert_array_equal(features[:, start:stop].sum(axis=1), 1.0)

    def test_sampling_is_deterministic_per_seed(self, space: SearchSpace) -> None:
        first = [space.sample(np.random.default_rng(7)) for _ in range(5)]
        again = [space.sample(np.random.default_rng(7)) for _ in range(5)]
        assert first == again

    def test_build_gives_finite_logits(self, space: SearchSpace, num_classes: int) -> None:
        arch = space.sample(np.random.default_rng(1))
        model = space.build(arch).eval()
        assert isinstance(model, torch.nn.Module)
        with torch.no_grad():
            logits = model(space.example_input(batch_size=2, arch=arch))
        assert logits.shape == (2, num_classes)
        assert torch.isfinite(logits).all()

    def test_onnx_export_matches_torch(self, space: SearchSpace, tmp_path: Path) -> None:
        assert_onnx_matches_torch(space, space.sample(np.random.default_rng(2)), tmp_path)


def assert_onnx_matches_torch(space: SearchSpace, arch: Architecture, folder: Path) -> None:
    """Export ``arch``'s network (TorchScript exporter, static shapes); onnxruntime must agree."""
    onnxruntime = pytest.importorskip("onnxruntime")
    model = space.build(arch).eval()
    example = space.example_input(batch_size=1, arch=arch)
    path = folder / f"{arch.id}.onnx"
    with warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (static shapes, no onnxscript needed).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (example,), str(path), input_names=["input"], output_names=["logits"], dynamo=False
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (exported,) = session.run(["logits"], {"input": example.numpy()})
    with torch.no_grad():
        expected = model(example).numpy()
    np.testing.assert_allclose(exported, expected, rtol=1e-4, atol=1e-5, err_msg=arch.string)
