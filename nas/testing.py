"""Reusable conformance tests for search spaces and supernets (in the manner of ``optuna.testing``).

A space's test module subclasses :class:`SearchSpaceContract` and overrides the ``space`` fixture::

    class TestMySpace(SearchSpaceContract):
        @pytest.fixture
        def space(self) -> SearchSpace:
            return MySpace()

:class:`SearchSpaceContract` also holds the contract of every optional ability
(:mod:`nas._capabilities`) the space has: each is a contract of its own (:class:`GraphContract`,
:class:`FlopsContract`, ...) whose tests skip a space without the ability, so a space is tested
on an ability the day it declares it. A space with a supernet also subclasses
:class:`SupernetContract` the same way (its ``supernet`` fixture defaults to
``space.supernet()``), and a layered space :class:`LayerContract`. Every test here is cheap (a
handful of samples, a few builds, one ONNX export), so a space gets the whole contract on every run.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import torch

from nas._architecture import Architecture
from nas._capabilities import (
    AdditiveSpace,
    BatchFlopsSpace,
    BoundedSpace,
    ConditionalSpace,
    DerivedFeaturesSpace,
    DisconnectedSpace,
    FlopsSpace,
    GraphSpace,
    IsomorphicSpace,
    LayeredSpace,
    LayerSpec,
    SupernetSpace,
)
from nas._objective import Candidate, Cost, Direction, Objective, ObjectiveError
from nas._predictor import IntervalPredictor, Predictor, PredictorMismatchError
from nas._space import ArchitectureError, SearchSpace
from nas._supernet import Supernet
from nas.predictor_file import HEADER_FIELDS, read_header, read_predictor_file, write_predictor_file

#: Seeds of the sampled architectures every string test walks through.
SAMPLE_SEEDS: tuple[int, ...] = (0, 1, 2)
SAMPLES_PER_SEED = 8

_Ability = TypeVar("_Ability", bound=SearchSpace)


def _sampled(space: SearchSpace) -> list[Architecture]:
    archs = []
    for seed in SAMPLE_SEEDS:
        rng = np.random.default_rng(seed)
        archs.extend(space.sample(rng) for _ in range(SAMPLES_PER_SEED))
    return archs


def _with_extremes(space: SearchSpace, archs: list[Architecture]) -> list[Architecture]:
    """``archs``, then the smallest and largest architectures where the space names them."""
    return [*archs, space.smallest(), space.largest()] if isinstance(space, BoundedSpace) else archs


def _leaf_activations(model: torch.nn.Module, example: torch.Tensor) -> int:
    """Elements every leaf module of ``model`` reads and writes on ``example``: the whole
    network's activation traffic, counted apart from the space's per-layer statistics."""
    moved = 0

    def count(module: torch.nn.Module, inputs: tuple[object, ...], output: object) -> None:
        nonlocal moved
        outputs = output if isinstance(output, tuple | list) else (output,)
        moved += sum(t.numel() for t in (*inputs, *outputs) if isinstance(t, torch.Tensor))

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(example)
    for hook in hooks:
        hook.remove()
    return moved


def _require(space: SearchSpace, ability: type[_Ability]) -> _Ability:
    """``space`` as an instance of ``ability``; the test is skipped for a space without it."""
    if not isinstance(space, ability):
        pytest.skip(f"{space.name} is no {ability.__name__}")
    return space


class _SpaceFixture:
    @pytest.fixture
    def space(self) -> SearchSpace:
        raise NotImplementedError(f"a {type(self).__name__} subclass must override the `space` fixture")


class EncodingContract(_SpaceFixture):
    """What a space's gene encoding (``space.encoding``) must satisfy."""

    def test_gene_indices_from_choice_codes_equal_lookups(self, space: SearchSpace) -> None:
        archs = _sampled(space)
        encoding = space.encoding
        # the same values made without the space: no choice codes, each gene looked up
        plain = [Architecture(space=a.space, genes=a.genes, string=a.string) for a in archs]
        assert plain == archs
        np.testing.assert_array_equal(encoding.indices(archs), encoding.indices(plain))
        np.testing.assert_array_equal(encoding.indices(archs[:1] + plain[1:]), encoding.indices(plain))

    def test_an_equal_space_encodes_the_architectures_alike(self, space: SearchSpace) -> None:
        archs = _sampled(space)
        twin = copy.deepcopy(space)  # equal genes, another encoding object
        assert twin.encoding == space.encoding and twin.encoding is not space.encoding
        expected = space.encoding.indices(archs)
        np.testing.assert_array_equal(twin.encoding.indices(archs), expected)
        mixed = [twin.parse(a.string) if k % 2 else a for k, a in enumerate(archs)]
        np.testing.assert_array_equal(space.encoding.indices(mixed), expected)

    def test_from_indices_inverts_the_indices(self, space: SearchSpace) -> None:
        archs = _sampled(space)
        assert space.from_indices(space.encoding.indices(archs)) == archs

    def test_architectures_of_another_space_are_refused(self, space: SearchSpace) -> None:
        arch = space.sample(np.random.default_rng(0))
        foreign = Architecture(space=f"not_{space.name}", genes=arch.genes, string=arch.string)
        with pytest.raises(ArchitectureError, match=f"not_{space.name}"):
            space.encoding.indices([foreign])

    def test_encode_is_one_hot_per_gene(self, space: SearchSpace) -> None:
        archs = _sampled(space)
        features = space.encoding.encode(archs)
        widths = [len(g.choices) for g in space.genes()]
        assert features.shape == (len(archs), sum(widths)) == (len(archs), space.encoding.width)
        assert set(np.unique(features)) <= {0.0, 1.0}
        offsets = np.cumsum([0, *widths])
        for start, stop in zip(offsets[:-1], offsets[1:]):
            np.testing.assert_array_equal(features[:, start:stop].sum(axis=1), 1.0)

    def test_value_counts_count_the_active_genes(self, space: SearchSpace) -> None:
        archs = _sampled(space)
        encoding = space.encoding
        indices = encoding.indices(archs)
        active = space.active_mask(indices) if isinstance(space, ConditionalSpace) else None
        counts = encoding.counts(indices, active)
        assert counts.shape == (len(archs), len(encoding.count_names())) == (len(archs), encoding.count_width)
        expected = indices.shape[1] if active is None else active.sum(axis=1)
        np.testing.assert_array_equal(counts.sum(axis=1), expected)  # each active gene counted once

    def test_sum_per_choice_is_the_one_hot_product(self, space: SearchSpace) -> None:
        archs = _sampled(space)
        costs = np.arange(space.encoding.width, dtype=np.float64) ** 1.5
        indices = space.encoding.indices(archs)
        np.testing.assert_allclose(
            space.encoding.sum_per_choice(indices, costs), space.encoding.encode(archs) @ costs, rtol=1e-12
        )


class GraphContract(_SpaceFixture):
    """What a :class:`~nas.GraphSpace` must satisfy."""

    def test_graph_batch_is_the_graphs_one_at_a_time(self, space: SearchSpace) -> None:
        from nas._graph import GraphBatch

        space = _require(space, GraphSpace)
        archs = _with_extremes(space, _sampled(space))
        graphs = [space.graph(a) for a in archs]
        expected, batch = GraphBatch.of(graphs, space.graph_labels()), space.graph_batch(archs)
        for field in ("labels", "attributes", "adjacency", "pattern", "pattern_nodes"):
            np.testing.assert_array_equal(getattr(batch, field), getattr(expected, field), err_msg=field)
        single = space.graph_batch(archs[-1:])
        np.testing.assert_array_equal(single.labels[0], expected.labels[-1, : single.labels.shape[1]])

    def test_graph_labels_are_distinct_and_graphs_acyclic(self, space: SearchSpace) -> None:
        space = _require(space, GraphSpace)
        vocabulary = space.graph_labels()
        assert len(set(vocabulary)) == len(vocabulary)
        for arch in _sampled(space)[:8]:
            graph = space.graph(arch)
            assert set(graph.labels) <= set(vocabulary)
            assert all(src < dst for src, dst in graph.edges)  # topological numbering: a DAG
            assert space.graph(space.parse(arch.string)) == graph  # a value: equal architectures, equal graphs


class FlopsContract(_SpaceFixture):
    """What a :class:`~nas.FlopsSpace` (and a :class:`~nas.BatchFlopsSpace`) must satisfy."""

    def test_flops_are_the_built_networks(self, space: SearchSpace) -> None:
        from nas.objectives import count_flops

        space = _require(space, FlopsSpace)
        archs = _with_extremes(space, _sampled(space)[:2])
        built = [count_flops(space.build(a).eval(), space.example_input(1, arch=a)) for a in archs]
        assert [space.flops(a) for a in archs] == built

    def test_batch_flops_equal_flops_one_at_a_time(self, space: SearchSpace) -> None:
        space = _require(space, BatchFlopsSpace)
        archs = _with_extremes(space, _sampled(space))
        many = space.batch_flops(space.encoding.indices(archs))
        assert many.dtype == np.float64
        np.testing.assert_array_equal(many, [float(space.flops(a)) for a in archs])

    def test_smallest_and_largest_bound_the_flops(self, space: SearchSpace) -> None:
        space = _require(_require(space, FlopsSpace), BoundedSpace)
        sampled = [space.flops(a) for a in _sampled(space)]
        assert space.flops(space.smallest()) <= min(sampled) and max(sampled) <= space.flops(space.largest())


class ConditionalContract(_SpaceFixture):
    """What a :class:`~nas.ConditionalSpace` must satisfy: an inactive gene changes no network."""

    def test_inactive_genes_do_not_change_the_architecture(self, space: SearchSpace) -> None:
        space = _require(space, ConditionalSpace)
        archs = _sampled(space)
        mask = space.active_mask(space.encoding.indices(archs))
        assert mask.shape == (len(archs), len(space.genes())) and mask.dtype == bool
        assert not mask.all(), "a conditional space whose genes are all active in every sample"
        for arch, active in zip(archs, mask):
            for gene, used in zip(space.genes(), active):
                if not used:
                    for value in gene.choices:
                        assert space.architecture({**arch.params, gene.name: value}) == arch, gene.name


class IsomorphismContract(_SpaceFixture):
    """What an :class:`~nas.IsomorphicSpace` must satisfy."""

    def test_classes_are_integers_per_row_and_merge_some_architectures(self, space: SearchSpace) -> None:
        space = _require(space, IsomorphicSpace)
        archs = list(space.enumerate()) if space.size() <= 100_000 else _sampled(space)
        indices = space.encoding.indices(archs)
        classes = space.isomorphism_classes_of(indices)
        assert classes.shape == (len(archs),) and np.issubdtype(classes.dtype, np.integer)
        np.testing.assert_array_equal(
            classes[:5], [space.isomorphism_classes_of(indices[k : k + 1])[0] for k in range(5)]
        )
        assert len(np.unique(classes)) < len(archs), "no two architectures share a class"


class DisconnectedContract(_SpaceFixture):
    """What a :class:`~nas.DisconnectedSpace` must satisfy: the networks it flags, and only
    those, give one output whatever the input."""

    def test_flagged_networks_ignore_their_input(self, space: SearchSpace) -> None:
        space = _require(space, DisconnectedSpace)
        archs = list(space.enumerate()) if space.size() <= 100_000 else _sampled(space)
        indices = space.encoding.indices(archs)
        flags = space.disconnected_of(indices)
        assert flags.dtype == np.bool_ and flags.shape == (len(archs),) and 0 < flags.sum() < len(archs)
        np.testing.assert_array_equal(flags[:5], [space.disconnected_of(indices[k : k + 1])[0] for k in range(5)])
        rng = np.random.default_rng(0)
        for wanted in (True, False):
            for k in rng.choice(np.flatnonzero(flags == wanted), size=3, replace=False):
                model = space.build(archs[k]).eval()
                with torch.no_grad():
                    one, other = (model(space.example_input(2, seed=s, arch=archs[k])) for s in (0, 1))
                # Exactly equal: a disconnected network computes the same constants for any input
                # (an untrained connected one can differ from input to input by very little).
                assert torch.equal(one, other) == wanted, archs[k].string


class DerivedFeaturesContract(_SpaceFixture):
    """What a :class:`~nas.DerivedFeaturesSpace` must satisfy."""

    def test_derived_features_are_float32_rows_of_one_width(self, space: SearchSpace) -> None:
        space = _require(space, DerivedFeaturesSpace)
        archs = _sampled(space)
        indices = space.encoding.indices(archs)
        derived = space.derived_features(indices)
        assert derived.dtype == np.float32 and derived.shape[0] == len(archs) and derived.shape[1] > 0
        np.testing.assert_array_equal(
            derived, np.vstack([space.derived_features(indices[k : k + 1]) for k in range(len(archs))])
        )
        assert isinstance(space.FEATURES_VERSION, int) and space.FEATURES_VERSION > 1


class SearchSpaceContract(
    EncodingContract,
    GraphContract,
    FlopsContract,
    ConditionalContract,
    IsomorphismContract,
    DisconnectedContract,
    DerivedFeaturesContract,
):
    """What every :class:`SearchSpace` must satisfy, and each optional ability it has; not
    collected itself (no ``Test`` prefix)."""

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
    pytest.importorskip("onnxruntime")
    from nas.export import assert_parity, export_onnx

    model = space.build(arch).eval()
    example = space.example_input(batch_size=1, arch=arch)
    path = export_onnx(model, example, folder / f"{arch.id}.onnx")
    assert_parity(model, example, path, rtol=1e-4, atol=1e-5)


#: Seeds of the random architectures the supernet invariant is checked on (plus smallest, largest).
SUPERNET_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
#: Invariant tolerance (float32, eval mode): the two paths compute the same ops in the same order.
SUPERNET_ATOL = 1e-5


class SupernetContract:
    """What every :class:`Supernet` must satisfy; not collected itself (no ``Test`` prefix).

    Override ``space`` (and ``supernet`` when ``space.supernet()`` is not the one to test, e.g. a
    smaller configuration). Architectures come from ``space.sample``, ``space.smallest`` and
    ``space.largest``; inputs from ``space.example_input(arch=...)``, so per-architecture input
    resolutions are respected.
    """

    @pytest.fixture
    def space(self) -> SupernetSpace:
        raise NotImplementedError("a SupernetContract subclass must override the `space` fixture")

    @pytest.fixture
    def supernet(self, space: SupernetSpace) -> Supernet:
        return space.supernet()

    @pytest.fixture
    def archs(self, space: SupernetSpace) -> list[Architecture]:
        sampled = [space.sample(np.random.default_rng(seed)) for seed in SUPERNET_SEEDS]
        return [*sampled, space.smallest(), space.largest()]

    def test_subnet_matches_supernet(self, space: SupernetSpace, supernet: Supernet, archs: list[Architecture]) -> None:
        give_batchnorm_statistics(space, supernet, archs, seed=0)
        supernet.eval()
        for index, arch in enumerate(archs):
            x = space.example_input(batch_size=2, seed=100 + index, arch=arch)
            subnet = supernet.subnet(arch).eval()
            with torch.no_grad():
                shared, alone = supernet(x, arch), subnet(x)
            assert shared.shape == (2, space.num_classes)
            np.testing.assert_allclose(shared.numpy(), alone.numpy(), rtol=0, atol=SUPERNET_ATOL, err_msg=arch.string)

    def test_subnet_has_the_structure_build_gives(
        self, space: SupernetSpace, supernet: Supernet, archs: list[Architecture]
    ) -> None:
        for arch in (archs[0], space.smallest(), space.largest()):
            subnet, built = supernet.subnet(arch), space.build(arch)
            assert type(subnet) is type(built), arch.string
            shapes = {k: v.shape for k, v in subnet.state_dict().items()}
            assert shapes == {k: v.shape for k, v in built.state_dict().items()}, arch.string

    def test_subnet_is_independent_of_the_supernet(self, space: SupernetSpace, supernet: Supernet) -> None:
        arch = space.largest()
        before = {k: v.clone() for k, v in supernet.state_dict().items()}
        subnet = supernet.subnet(arch).train()
        optimizer = torch.optim.SGD(subnet.parameters(), lr=0.1)
        x = space.example_input(batch_size=2, seed=1, arch=arch)
        labels = torch.arange(2) % space.num_classes
        torch.nn.functional.cross_entropy(subnet(x), labels).backward()
        optimizer.step()
        changed = subnet.state_dict()
        assert any(not torch.equal(changed[k], v) for k, v in supernet.subnet(arch).state_dict().items())
        after = supernet.state_dict()
        unchanged = [k for k in before if torch.equal(before[k], after[k])]
        assert unchanged == list(before), "training a subnet changed the supernet"

    def test_forward_does_not_depend_on_the_previous_call(self, space: SupernetSpace, supernet: Supernet) -> None:
        supernet.eval()
        first, second = space.largest(), space.sample(np.random.default_rng(11))
        x_first = space.example_input(batch_size=2, seed=3, arch=first)
        x_second = space.example_input(batch_size=2, seed=4, arch=second)
        with torch.no_grad():
            before = supernet(x_first, first)
            supernet(x_second, second)
            smallest = space.smallest()
            supernet(space.example_input(batch_size=2, seed=5, arch=smallest), smallest)
            again = supernet(x_first, first)
        assert torch.equal(before, again)

    def test_foreign_architecture_is_refused(self, space: SupernetSpace, supernet: Supernet) -> None:
        arch = space.sample(np.random.default_rng(0))
        foreign = Architecture(space=f"not_{space.name}", genes=arch.genes, string=arch.string)
        x = space.example_input(batch_size=1, arch=arch)
        with pytest.raises(ValueError, match=f"not_{space.name}"):
            supernet(x, foreign)
        with pytest.raises(ValueError, match=f"not_{space.name}"):
            supernet.subnet(foreign)

    def test_subnet_onnx_export_matches_onnxruntime(
        self, space: SupernetSpace, supernet: Supernet, tmp_path: Path
    ) -> None:
        pytest.importorskip("onnxruntime")
        from nas.export import assert_parity, export_onnx

        arch = space.sample(np.random.default_rng(2))
        give_batchnorm_statistics(space, supernet, [arch], seed=1)
        subnet = supernet.subnet(arch).eval()
        example = space.example_input(batch_size=1, seed=5, arch=arch)
        path = export_onnx(subnet, example, tmp_path / f"{arch.id}.onnx")
        assert_parity(subnet, example, path, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def give_batchnorm_statistics(
    space: SearchSpace, supernet: Supernet, archs: list[Architecture], seed: int, rounds: int = 1
) -> None:
    """Make every BatchNorm of ``supernet`` non-trivial, so a mixed-up copy cannot go unnoticed.

    Fresh BN layers hold mean 0, variance 1, weight 1 and bias 0: copying the wrong layer's
    tensors would still give the right output. Affine parameters are drawn from a seeded
    generator, and running statistics come from a few train-mode forwards over ``archs`` on
    shifted, scaled random inputs (so they are far from 0 and 1).
    """
    generator = torch.Generator().manual_seed(seed)
    for module in supernet.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.affine:
            module.weight.copy_(1 + 0.5 * torch.rand(module.weight.shape, generator=generator))
            module.bias.copy_(0.5 * torch.randn(module.bias.shape, generator=generator))
    supernet.train()
    for round_ in range(rounds):
        for index, arch in enumerate(archs):
            x = space.example_input(batch_size=2, seed=seed * 1000 + round_ * 100 + index, arch=arch)
            supernet(2 * x + 0.5, arch)
    supernet.eval()


#: Seeds of the architectures the layer contract lists, builds and chains.
LAYER_SEEDS: tuple[int, ...] = (0, 1)


class LayerContract:
    """What a :class:`~nas.LayeredSpace` (networks listed as lookup-table layers) must satisfy,
    and an :class:`~nas.AdditiveSpace` too; not collected itself (no ``Test`` prefix). Override
    ``space`` as for :class:`SearchSpaceContract`.
    """

    @pytest.fixture
    def space(self) -> LayeredSpace:
        raise NotImplementedError("a LayerContract subclass must override the `space` fixture")

    @pytest.fixture
    def layer_archs(self, space: LayeredSpace) -> list[Architecture]:
        return [space.sample(np.random.default_rng(seed)) for seed in LAYER_SEEDS]

    def test_distinct_layers_hold_every_layer_of_every_network(
        self, space: LayeredSpace, layer_archs: list[Architecture]
    ) -> None:
        distinct = space.distinct_layers()
        assert len({layer.key for layer in distinct}) == len(distinct), "distinct_layers repeats a key"
        known = set(distinct)
        for arch in _with_extremes(space, layer_archs):
            missing = [layer.key for layer in space.layers(arch) if layer not in known]
            assert not missing, f"{arch.string}: {missing[:3]} not in distinct_layers()"

    def test_layers_chain_from_the_input_to_the_logits(
        self, space: LayeredSpace, layer_archs: list[Architecture]
    ) -> None:
        """Each built layer runs on an input of its ``input_shape`` and its output has the next
        layer's input shape; the first takes the network's input, the last gives the logits."""
        for arch in layer_archs:
            layers = space.layers(arch)
            assert layers, arch.string
            assert all(isinstance(layer.key, str) and layer.key for layer in layers), arch.string
            assert tuple(layers[0].input_shape) == tuple(space.input_shape_of(arch)), arch.string
            x = space.example_input(batch_size=1, arch=arch)
            with torch.no_grad():
                for index, layer in enumerate(layers):
                    assert tuple(x.shape[1:]) == tuple(layer.input_shape), (arch.string, index, layer.key)
                    x = space.build_layer(layer, seed=index).eval()(x)
            assert tuple(x.shape) == (1, space.num_classes), arch.string
            assert torch.isfinite(x).all(), arch.string

    def test_layer_parameters_add_up_to_the_network(self, space: LayeredSpace, layer_archs: list[Architecture]) -> None:
        for arch in layer_archs:
            network = sum(p.numel() for p in space.build(arch).parameters())
            layers = sum(p.numel() for layer in space.layers(arch) for p in space.build_layer(layer).parameters())
            assert layers == network, arch.string

    def test_equal_keys_build_equal_layers(self, space: LayeredSpace, layer_archs: list[Architecture]) -> None:
        """A key names one computation: every occurrence has one input shape, and a layer rebuilt
        from its key and seed alone has the same weights (keys are data, enough to re-measure)."""
        shapes: dict[str, tuple[int, ...]] = {}
        for arch in layer_archs:
            for layer in space.layers(arch):
                assert shapes.setdefault(layer.key, tuple(layer.input_shape)) == tuple(layer.input_shape), layer.key
        for key, shape in shapes.items():
            first = space.build_layer(LayerSpec(key, shape), seed=3).state_dict()
            again = space.build_layer(LayerSpec(key, shape), seed=3).state_dict()
            assert first.keys() == again.keys(), key
            assert all(torch.equal(first[name], again[name]) for name in first), key

    def test_bad_layers_are_refused(self, space: LayeredSpace, layer_archs: list[Architecture]) -> None:
        """An unknown key, or an input shape its key contradicts, raises ValueError."""
        with pytest.raises(ValueError, match="__no_such_layer__"):
            space.build_layer(LayerSpec("__no_such_layer__", (3, 8, 8)))
        layer = space.layers(layer_archs[0])[0]
        wrong = (*layer.input_shape[:-1], layer.input_shape[-1] + 1)
        with pytest.raises(ValueError):
            space.build_layer(LayerSpec(layer.key, wrong))

    def test_layers_of_an_architecture_are_deterministic(
        self, space: LayeredSpace, layer_archs: list[Architecture]
    ) -> None:
        arch = layer_archs[0]
        assert space.layers(arch) == space.layers(space.parse(arch.string))

    def test_layer_stats_add_up_to_the_built_network(
        self, space: LayeredSpace, layer_archs: list[Architecture]
    ) -> None:
        """The layers partition the network: their parameters are the built model's (counted by
        torch) and their FLOPs what ``nas.objectives.Flops`` counts on it (the space's own count
        where it has one: :class:`FlopsContract` ties that to the built network)."""
        from nas.objectives import count_flops

        for arch in _with_extremes(space, layer_archs):
            stats = space.layer_stats(space.layers(arch))
            model = space.build(arch).eval()
            assert sum(s.params for s in stats) == sum(p.numel() for p in model.parameters()), arch.string
            counted = (
                space.flops(arch)
                if isinstance(space, FlopsSpace)
                else count_flops(model, space.example_input(1, arch=arch))
            )
            assert float(sum(s.flops for s in stats)) == float(counted), arch.string
            assert all(s.traffic > s.params for s in stats), arch.string
            # A layer may build as a module what the network does functionally (NB201's node
            # additions), which no hook on the network sees: the layers' count is never below it.
            moved = _leaf_activations(model, space.example_input(1, arch=arch))
            assert sum(s.activation_traffic for s in stats) >= moved > 0, arch.string

    def test_additive_layers_are_a_constant_plus_one_term_per_gene(
        self, space: LayeredSpace, layer_archs: list[Architecture]
    ) -> None:
        """In an :class:`~nas.AdditiveSpace` a network's layer-key counts are the first choices'
        plus, per gene, what its value changes from the first choice alone."""
        space = _require(space, AdditiveSpace)
        genes = space.genes()
        base = {g.name: g.choices[0] for g in genes}

        def counts(arch: Architecture) -> Counter[str]:
            return Counter(layer.key for layer in space.layers(arch))

        first = counts(space.architecture(base))
        for arch in layer_archs:
            total = Counter(first)
            for gene in genes:
                total.update(counts(space.architecture({**base, gene.name: arch[gene.name]})))
                total.subtract(first)
            assert +total == counts(arch), arch.string


# Predictor contract


#: The device fingerprint :class:`PredictorContract` fits for, and the one it must be refused for.
CONTRACT_DEVICE = "0123456789abcdef"
OTHER_DEVICE = "fedcba9876543210"


def rewrite_predictor_header(path: Path, **changes: object) -> None:
    """Rewrite fields of a predictor file's JSON header in place (for tests of refusals)."""
    header, arrays = read_predictor_file(path)
    write_predictor_file(path, {**header, **changes}, arrays)


def check_intervals(predictor: IntervalPredictor, archs: list[Architecture], predictions: np.ndarray) -> None:
    """The interval laws: ``predict_interval`` gives a ``(lower, upper)`` pair of finite arrays,
    one value per architecture, around ``predictions`` (``lower <= predicted <= upper``), and two
    empty arrays for no architectures."""
    lower, upper = (np.asarray(bound) for bound in predictor.predict_interval(archs))
    assert lower.shape == upper.shape == (len(archs),)
    assert np.isfinite(lower).all() and np.isfinite(upper).all()
    below, above = np.flatnonzero(lower > predictions), np.flatnonzero(predictions > upper)
    assert not len(below), f"lower bound above the prediction for {[archs[i].string for i in below[:3]]}"
    assert not len(above), f"upper bound below the prediction for {[archs[i].string for i in above[:3]]}"
    assert [np.asarray(bound).shape for bound in predictor.predict_interval([])] == [(0,), (0,)]


#: Makes an unfitted predictor for (space, device fingerprint).
PredictorFactory = Callable[[SearchSpace, str], Predictor]
#: A few architectures and their measured values.
ArchsAndTargets = tuple[list[Architecture], np.ndarray]


class PredictorContract:
    """What every :class:`nas.Predictor` family must satisfy (and an :class:`nas.IntervalPredictor`
    the interval laws of :func:`check_intervals`); not collected itself (no ``Test``).

    Override ``space`` (a :class:`SearchSpace`), ``predictor_factory`` (``(space,
    device_fingerprint) -> Predictor``, unfitted) and ``archs_and_targets`` (a few architectures
    of ``space`` and finite positive targets). ``load`` is called as ``type(p).load(path,
    space=<SearchSpace>, device_fingerprint=..., **load_kwargs)`` (``load_kwargs``: what else a
    family's ``load`` needs, by default nothing); the space it is refused for is ``other_space``
    (by default a copy of ``space`` renamed ``not_<name>``).
    """

    @pytest.fixture
    def load_kwargs(self) -> dict[str, object]:
        return {}

    @pytest.fixture
    def space(self) -> SearchSpace:
        raise NotImplementedError("a PredictorContract subclass must override the `space` fixture")

    @pytest.fixture
    def predictor_factory(self) -> PredictorFactory:
        raise NotImplementedError("a PredictorContract subclass must override `predictor_factory`")

    @pytest.fixture
    def archs_and_targets(self, space: SearchSpace) -> ArchsAndTargets:
        raise NotImplementedError("a PredictorContract subclass must override `archs_and_targets`")

    @pytest.fixture
    def other_space(self, space: SearchSpace) -> SearchSpace:
        import copy

        other = copy.copy(space)
        other.name = f"not_{space.name}"
        return other

    @pytest.fixture
    def fitted(
        self, space: SearchSpace, predictor_factory: PredictorFactory, archs_and_targets: ArchsAndTargets
    ) -> Predictor:
        archs, targets = archs_and_targets
        return predictor_factory(space, CONTRACT_DEVICE).fit(archs, targets)

    @pytest.fixture
    def saved(self, fitted: Predictor, tmp_path: Path) -> Path:
        path = tmp_path / "predictor.npz"
        fitted.save(path)
        assert path.is_file(), "save must write exactly the path it is given"
        return path

    def test_fit_returns_self_carrying_space_and_device(
        self, space: SearchSpace, predictor_factory: PredictorFactory, archs_and_targets: ArchsAndTargets
    ) -> None:
        predictor = predictor_factory(space, CONTRACT_DEVICE)
        assert predictor.fit(*archs_and_targets) is predictor
        assert (predictor.space, predictor.device_fingerprint) == (space.name, CONTRACT_DEVICE)

    def test_predict_gives_finite_values_one_per_architecture(
        self, fitted: Predictor, archs_and_targets: ArchsAndTargets
    ) -> None:
        """Predictions, and an :class:`nas.IntervalPredictor`'s intervals (see :func:`check_intervals`)."""
        archs, _ = archs_and_targets
        predictions = np.asarray(fitted.predict(archs))
        assert predictions.shape == (len(archs),)
        assert np.isfinite(predictions).all()
        one = np.asarray(fitted.predict(archs[:1]))
        assert one.shape == (1,)
        # float32 rounding, not more: a predictor computing in float32 (the MLP) may have BLAS
        # sum a batch in another order than one row
        np.testing.assert_allclose(one, predictions[:1], rtol=1e-5)
        assert np.asarray(fitted.predict([])).shape == (0,)
        if isinstance(fitted, IntervalPredictor):
            check_intervals(fitted, archs, predictions)

    def test_save_load_round_trip_predicts_identically(
        self,
        fitted: Predictor,
        saved: Path,
        space: SearchSpace,
        archs_and_targets: ArchsAndTargets,
        load_kwargs: dict[str, object],
    ) -> None:
        archs, _ = archs_and_targets
        loaded = type(fitted).load(saved, space=space, device_fingerprint=CONTRACT_DEVICE, **load_kwargs)
        assert (loaded.space, loaded.device_fingerprint) == (space.name, CONTRACT_DEVICE)
        np.testing.assert_array_equal(loaded.predict(archs), fitted.predict(archs))
        if isinstance(fitted, IntervalPredictor):
            assert isinstance(loaded, IntervalPredictor)
            for after, before in zip(loaded.predict_interval(archs), fitted.predict_interval(archs)):
                np.testing.assert_array_equal(after, before)

    def test_load_for_another_device_is_refused_showing_both(
        self, fitted: Predictor, saved: Path, space: SearchSpace, load_kwargs: dict[str, object]
    ) -> None:
        with pytest.raises(PredictorMismatchError) as error:
            type(fitted).load(saved, space=space, device_fingerprint=OTHER_DEVICE, **load_kwargs)
        assert CONTRACT_DEVICE in str(error.value) and OTHER_DEVICE in str(error.value)

    def test_load_for_another_space_is_refused_showing_both(
        self,
        fitted: Predictor,
        saved: Path,
        space: SearchSpace,
        other_space: SearchSpace,
        load_kwargs: dict[str, object],
    ) -> None:
        with pytest.raises(PredictorMismatchError) as error:
            type(fitted).load(saved, space=other_space, device_fingerprint=CONTRACT_DEVICE, **load_kwargs)
        assert repr(space.name) in str(error.value) and repr(other_space.name) in str(error.value)

    def test_newer_format_version_is_refused_naming_both(
        self, fitted: Predictor, saved: Path, space: SearchSpace, load_kwargs: dict[str, object]
    ) -> None:
        version = read_header(saved)["format_version"]
        rewrite_predictor_header(saved, format_version=version + 1)
        with pytest.raises(ValueError) as error:
            type(fitted).load(saved, space=space, device_fingerprint=CONTRACT_DEVICE, **load_kwargs)
        message = str(error.value)
        assert f"format_version {version + 1}" in message and f"format_version {version}" in message

    def test_file_holds_no_pickle(self, saved: Path) -> None:
        import zipfile

        assert zipfile.is_zipfile(saved)
        header, arrays = read_predictor_file(saved)  # np.load(allow_pickle=False): refuses object arrays
        assert all(not a.dtype.hasobject for a in arrays.values())
        for field in HEADER_FIELDS:
            assert field in header, field


class ProxyContract:
    """What every zero-cost proxy (a :class:`~nas.proxies.ProxyObjective`) must satisfy.

    A test module overrides ``make_objective`` (a fresh objective for a seed), ``space``,
    ``archs`` (a few scorable architectures) and ``degenerate`` (an architecture whose output
    ignores its input, or ``None`` where the space has none).
    """

    @pytest.fixture
    def make_objective(self) -> Callable[[int], object]:
        raise NotImplementedError(f"a {type(self).__name__} subclass must override `make_objective`")

    @pytest.fixture
    def space(self) -> SearchSpace:
        raise NotImplementedError(f"a {type(self).__name__} subclass must override `space`")

    @pytest.fixture
    def archs(self, space: SearchSpace) -> list[Architecture]:
        raise NotImplementedError(f"a {type(self).__name__} subclass must override `archs`")

    @pytest.fixture
    def degenerate(self, space: SearchSpace) -> Architecture | None:
        return None

    def test_scores_are_finite_and_equal_for_equal_settings(
        self, make_objective: Callable[[int], object], space: SearchSpace, archs: list[Architecture]
    ) -> None:
        from nas._objective import Candidate

        first = make_objective(0)
        scores = [first.evaluate(Candidate(arch, space)) for arch in archs]
        assert all(np.isfinite(s) for s in scores), dict(zip((a.string for a in archs), scores))
        again = make_objective(0).evaluate(Candidate(archs[-1], space))
        assert again == scores[-1], (archs[-1].string, again, scores[-1])

    def test_global_random_state_is_left_alone(
        self, make_objective: Callable[[int], object], space: SearchSpace, archs: list[Architecture]
    ) -> None:
        from nas._objective import Candidate

        before = torch.get_rng_state()
        make_objective(1).evaluate(Candidate(archs[0], space))
        assert torch.equal(before, torch.get_rng_state())

    def test_degenerate_network_is_refused_naming_proxy_and_arch(
        self, make_objective: Callable[[int], object], space: SearchSpace, degenerate: Architecture | None
    ) -> None:
        from nas._objective import Candidate
        from nas.proxies import ProxyError

        if degenerate is None:
            pytest.skip(f"{space.name} has no network whose output ignores its input")
        objective = make_objective(0)
        with pytest.raises(ProxyError) as error:
            objective.evaluate(Candidate(degenerate, space))
        assert objective.name in str(error.value) and degenerate.string in str(error.value)

    def test_network_without_weights_is_a_proxy_error(self, make_objective: Callable[[int], object]) -> None:
        from nas.proxies import ProxyBatch, ProxyError

        generator = torch.Generator().manual_seed(0)
        batch = ProxyBatch(torch.randn(8, 3, 8, 8, generator=generator), torch.arange(8) % 3, 3)
        empty = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).train()
        with pytest.raises(ProxyError):
            make_objective(0).proxy(empty, batch)


class SamplerContract:
    """What every :class:`~nas.samplers.ArchitectureSampler` must satisfy, run through
    :class:`~nas.search.Search` as a user runs it.

    A test module overrides ``space`` and ``make_sampler`` (a fresh sampler for a space and a
    seed). The objectives are the space's FLOPs (minimised) and a score that grows with the
    gene choices' indices (maximised): cheap, deterministic and in conflict.
    """

    BUDGET = 20

    @pytest.fixture
    def space(self) -> SearchSpace:
        raise NotImplementedError(f"a {type(self).__name__} subclass must override `space`")

    @pytest.fixture
    def make_sampler(self) -> Callable[[SearchSpace, int], object]:
        raise NotImplementedError(f"a {type(self).__name__} subclass must override `make_sampler`")

    def _search(self, space: SearchSpace, sampler: object, storage: str | None = None) -> object:
        from nas.objectives import Flops
        from nas.search import Search

        return Search(
            space=space,
            objectives=[_ChoiceIndexSum("score"), Flops("flops")],
            sampler=sampler,
            storage=storage,
            study_name="contract",
        )

    def test_proposes_each_network_once_and_none_that_ignores_its_input(
        self, space: SearchSpace, make_sampler: Callable[[SearchSpace, int], object]
    ) -> None:
        from nas._capabilities import dedup_keys

        study = self._search(space, make_sampler(space, 0)).run(n_trials=self.BUDGET, show_progress=False)
        trials = study.get_trials()
        # Not even a repeat for the storage to answer: the sampler knows what it proposed.
        assert len(trials) == self.BUDGET and all(t.state.name == "COMPLETE" for t in trials)
        indices = space.encoding.indices([space.architecture(t.params) for t in trials])
        assert len(set(dedup_keys(space, indices))) == self.BUDGET
        if isinstance(space, DisconnectedSpace):
            assert not space.disconnected_of(indices).any()

    def test_equal_seeds_propose_equal_networks(
        self, space: SearchSpace, make_sampler: Callable[[SearchSpace, int], object]
    ) -> None:
        runs = [
            [
                t.user_attrs["arch"]
                for t in self._search(space, make_sampler(space, 3)).run(12, show_progress=False).trials
            ]
            for _ in range(2)
        ]
        assert runs[0] == runs[1]

    def test_a_resumed_study_goes_on_without_repeats(
        self, space: SearchSpace, make_sampler: Callable[[SearchSpace, int], object], tmp_path: Path
    ) -> None:
        url = f"sqlite:///{tmp_path / 'study.db'}"
        self._search(space, make_sampler(space, 0), url).run(n_trials=self.BUDGET // 2, show_progress=False)
        # A new process: a new sampler that knows only what the storage holds.
        study = self._search(space, make_sampler(space, 0), url).run(n_trials=self.BUDGET, show_progress=False)
        archs = [t.user_attrs["arch"] for t in study.trials]
        assert len(archs) == self.BUDGET and len(set(archs)) == self.BUDGET

    def test_goes_on_past_networks_an_objective_refuses(
        self, space: SearchSpace, make_sampler: Callable[[SearchSpace, int], object]
    ) -> None:
        """The cheaper half of the space fails its trials (as OFA's accuracy predictor refuses
        small resolutions): the search still reaches its budget, without 20 failures in a row."""
        from nas.objectives import Flops
        from nas.search import Search

        sampled = [space.sample(np.random.default_rng(k)) for k in range(200)]
        threshold = float(np.median([Flops("f")(Candidate(a, space)) for a in sampled]))
        search = Search(
            space=space,
            objectives=[_ChoiceIndexSum("score"), _RefusedBelow("flops", threshold)],
            sampler=make_sampler(space, 0),
            study_name="contract",
        )
        study = search.run(n_trials=self.BUDGET, show_progress=False)
        complete = [t for t in study.trials if t.state.name == "COMPLETE"]
        assert len(complete) >= self.BUDGET // 2 and all(t.values[1] >= threshold for t in complete)


class _RefusedBelow(Objective):
    """FLOPs, refusing every network with fewer than ``threshold`` (a trial that fails)."""

    direction = Direction.MINIMIZE
    cost = Cost.STATIC

    def __init__(self, name: str, threshold: float) -> None:
        super().__init__(name)
        self.threshold = threshold

    def __call__(self, candidate: Candidate) -> float:
        from nas.objectives import Flops

        value = Flops(self.name)(candidate)
        if value < self.threshold:
            raise ObjectiveError(f"{self.name}: {value:.0f} FLOPs is under {self.threshold:.0f}, refused")
        return value


class _ChoiceIndexSum(Objective):
    """A stand-in score for :class:`SamplerContract`: the sum of the genes' choice indices."""

    direction = Direction.MAXIMIZE
    cost = Cost.STATIC

    def __call__(self, candidate: Candidate) -> float:
        return float(candidate.space.encoding.indices([candidate.arch]).sum())
