"""The Once-for-All MobileNetV3 space: per-layer kernel and expand ratio, per-stage depth, resolution."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from nas import (
    Architecture,
    ArchitectureError,
    ArchitectureGraph,
    BatchFlopsSpace,
    ConditionalSpace,
    Gene,
    GraphBatch,
    GraphSpace,
    LayeredSpace,
    LayerSpec,
    SupernetSpace,
)
from nas._architecture import GeneValue
from search_spaces.ofa import _layers
from search_spaces.ofa._model import (
    MAX_DEPTH,
    NUM_LAYERS,
    NUM_STAGES,
    ConvSpec,
    NetworkSpec,
    OFAConfig,
    build_network,
    flops_by_part,
    network_flops,
    network_spec,
)

if TYPE_CHECKING:
    from search_spaces.ofa._supernet import OFASupernet

KERNEL_SIZES: tuple[int, ...] = (3, 5, 7)
EXPAND_RATIOS: tuple[int, ...] = (3, 4, 6)
DEPTHS: tuple[int, ...] = (2, 3, 4)
#: OFA samples resolutions 128..224 in steps of 4 during its elastic-resolution training.
RESOLUTIONS: tuple[int, ...] = tuple(range(128, 225, 4))

KS_GENES = tuple(f"ks_{i}" for i in range(NUM_LAYERS))
E_GENES = tuple(f"e_{i}" for i in range(NUM_LAYERS))
D_GENES = tuple(f"d_{s}" for s in range(NUM_STAGES))
STRING_FORMAT = '{"ks":[20 kernel sizes],"e":[20 expand ratios],"d":[5 depths],"r":resolution}'


class OFASpace(LayeredSpace, GraphSpace, SupernetSpace, BatchFlopsSpace, ConditionalSpace):
    """Once-for-All's MobileNetV3 space (ImageNet), as in its archs.csv and predictors.

    Canonical strings are the tables' JSON, ``{"ks":[...20],"e":[...20],"d":[...5],"r":N}`` with
    compact separators; in stage s only the first d[s] of its 4 layers exist, and the genes of
    the other layers are set to the smallest choice (3), since they do not change the network.
    The published tables and predictors are for ``width_mult=1.2``.
    """

    name = "ofa"
    #: The largest input; each architecture's own is :meth:`input_shape_of`.
    input_shape = (3, RESOLUTIONS[-1], RESOLUTIONS[-1])

    def __init__(
        self, width_mult: float = 1.2, num_classes: int = 1000, resolutions: Sequence[int] | None = None
    ) -> None:
        """``resolutions`` restricts the resolution gene to a subset of 128..224 (step 4), e.g. to
        the five that Once-for-All's Note10 lookup tables cover."""
        if width_mult <= 0 or num_classes < 1:
            raise ValueError(f"OFASpace needs a positive width_mult and num_classes, got {width_mult}, {num_classes}")
        self.resolutions = RESOLUTIONS if resolutions is None else tuple(sorted(int(r) for r in resolutions))
        unknown = [r for r in self.resolutions if r not in RESOLUTIONS]
        if unknown or not self.resolutions:
            raise ValueError(
                f"OFASpace resolutions {list(resolutions or [])} must be a non-empty subset of 128..224 "
                f"in steps of 4; not allowed: {unknown}"
            )
        self.width_mult = width_mult
        self.num_classes = num_classes
        self._genes = (
            *(Gene(name, KERNEL_SIZES) for name in KS_GENES),
            *(Gene(name, EXPAND_RATIOS) for name in E_GENES),
            *(Gene(name, DEPTHS) for name in D_GENES),
            Gene("r", self.resolutions),
        )

    def genes(self) -> tuple[Gene, ...]:
        return self._genes

    def normalise(self, genes: dict[str, GeneValue]) -> dict[str, GeneValue]:
        result = dict(genes)
        for stage, gene in enumerate(D_GENES):
            for index in range(stage * MAX_DEPTH + int(genes[gene]), (stage + 1) * MAX_DEPTH):
                result[KS_GENES[index]] = KERNEL_SIZES[0]
                result[E_GENES[index]] = EXPAND_RATIOS[0]
        return result

    def active_mask(self, gene_indices: np.ndarray) -> np.ndarray:
        """Kernel and expand genes of the layers the depths keep, and every depth and the
        resolution: layer ``i`` of stage ``s`` is active when ``i % 4 < d_s``."""
        kept = _kept_layers(gene_indices)
        mask = np.ones(gene_indices.shape, dtype=bool)
        mask[:, _KS] = kept
        mask[:, _E] = kept
        return mask

    def flops(self, arch: Architecture) -> int:
        """FLOPs of ``arch`` at batch 1 (convolutions and the classifier, as
        ``nas.objectives.Flops`` counts them), from its spec without building anything."""
        return network_flops(self.spec(arch))

    def batch_flops(self, gene_indices: np.ndarray) -> np.ndarray:
        """:meth:`flops` of each row of gene indices as one gather: a layer's FLOPs depend only
        on its position, kernel, expand ratio and the resolution (not on other stages' depths), so
        a network's are a fixed part per resolution plus its kept layers' entries of one table."""
        fixed, per_layer = self._flops_tables
        r = gene_indices[:, _R]
        layers = per_layer[r[:, None], np.arange(NUM_LAYERS)[None, :], gene_indices[:, _KS], gene_indices[:, _E]]
        return fixed[r] + np.where(_kept_layers(gene_indices), layers, 0.0).sum(axis=1)

    @cached_property
    def _flops_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """FLOPs of the fixed parts per resolution (R,) and of every layer per resolution,
        position, kernel and expand ratio (R, layers, kernels, expands), from full-depth specs."""
        fixed = np.empty(len(self.resolutions))
        per_layer = np.empty((len(self.resolutions), NUM_LAYERS, len(KERNEL_SIZES), len(EXPAND_RATIOS)))
        for i, r in enumerate(self.resolutions):
            for k, kernel in enumerate(KERNEL_SIZES):
                for e, expand in enumerate(EXPAND_RATIOS):
                    parts = flops_by_part(self.spec(self._uniform(kernel, expand, DEPTHS[-1], r)))
                    fixed[i] = parts[0] + parts[1] + parts[-1]  # first conv, first block, head
                    per_layer[i, :, k, e] = parts[2:-1]
        return fixed, per_layer

    def format(self, genes: Mapping[str, GeneValue]) -> str:
        document = {
            "ks": [genes[g] for g in KS_GENES],
            "e": [genes[g] for g in E_GENES],
            "d": [genes[g] for g in D_GENES],
            "r": genes["r"],
        }
        return json.dumps(document, separators=(",", ":"))

    def parse_genes(self, string: str) -> dict[str, GeneValue]:
        return parse_config(string)

    def input_shape_of(self, arch: Architecture) -> tuple[int, ...]:
        r = int(arch["r"])
        return (3, r, r)

    def config(self, arch: Architecture) -> OFAConfig:
        if arch.space != self.name:
            raise ArchitectureError(f"{self.name} cannot use a {arch.space!r} architecture")
        return config_of(arch)

    def spec(self, arch: Architecture) -> NetworkSpec:
        """The frozen layer-by-layer description of ``arch``'s network (what :meth:`build` builds)."""
        return network_spec(self.config(arch), self.width_mult, self.num_classes)

    def build(self, arch: Architecture, seed: int = 0) -> nn.Module:
        """The static subnet for ``arch``; its weights are drawn from ``seed`` only."""
        return build_network(self.spec(arch), seed)

    def layers(self, arch: Architecture) -> tuple[LayerSpec, ...]:
        """``arch``'s network as lookup-table layers whose keys are Once-for-All's Note10 LUT keys
        (first conv, MBConv layers, final expand, pooling, feature mix, classifier); see
        :mod:`search_spaces.ofa._layers`."""
        return _layers.network_layers(self.spec(arch), self._made_layers)

    @cached_property
    def _made_layers(self) -> dict[tuple[object, int], LayerSpec]:
        return {}

    def build_layer(self, layer: LayerSpec, seed: int = 0) -> nn.Module:
        """The module of one layer key (any OFA key); its weights are drawn from ``seed`` only."""
        return _layers.build_layer(layer, seed)

    def distinct_layers(self) -> tuple[LayerSpec, ...]:
        """Every layer key some network of this space has, once each: what a lookup table holds."""
        return _layers.distinct_layers(self.resolutions, KERNEL_SIZES, EXPAND_RATIOS, self.width_mult, self.num_classes)

    def layer_kind(self, key: str) -> str:
        return _layers.parse_layer_key(key).kind

    def graph(self, arch: Architecture) -> ArchitectureGraph:
        """A chain over the layers that exist: ``first_conv``, ``first_block``, each active MBConv
        layer labelled ``k<kernel>_e<expand>``, ``final_expand``, ``head`` (pool, feature mix,
        classifier); ``4 + sum(d)`` nodes. Attributes (in, mid, out channels, stride, input size,
        squeeze-excite) place each node; the input sizes carry the resolution gene."""
        spec = self.spec(arch)
        size = spec.resolution
        first = spec.first_conv
        attributes = [_conv_attributes(first, size)]
        size = (size - 1) // first.stride + 1
        for layer in spec.layers:
            attributes.append(
                (
                    float(layer.in_channels),
                    float(layer.mid_channels),
                    float(layer.out_channels),
                    float(layer.stride),
                    float(size),
                    float(layer.se),
                )
            )
            size = (size - 1) // layer.stride + 1
        attributes.append(_conv_attributes(spec.final_expand, size))
        attributes.append(_conv_attributes(spec.feature_mix, 1))
        config = self.config(arch)
        stages = [f"k{config.ks[i]}_e{config.e[i]}" for _, i in config.active_layers()]
        labels = ("first_conv", "first_block", *stages, "final_expand", "head")
        return ArchitectureGraph(
            labels=labels,
            edges=tuple((k, k + 1) for k in range(len(labels) - 1)),
            attributes=tuple(attributes),
        )

    def graph_batch(self, archs: Sequence[Architecture]) -> GraphBatch:
        """:meth:`graph` of each architecture from gene indices: a layer's node attributes depend
        only on its position, expand ratio and the resolution (not on other stages' depths), so
        they are gathered from a table drawn once from the full-depth networks."""
        ends, layer_rows, lookup, fixed = self._graph_tables
        genes = self.encoding.indices(archs)
        ks, e, r = genes[:, _KS], genes[:, _E], genes[:, _R]
        kept = _kept_layers(genes)  # (G, layers)
        count = 4 + kept.sum(axis=1)  # first conv, first block, the kept layers, final expand, head
        n_max, rows = int(count.max()), np.arange(len(archs))
        labels = np.full((len(archs), n_max), -1, dtype=np.int64)
        attributes = np.zeros((len(archs), n_max, ends.shape[2]))
        graph, at = np.nonzero(kept)
        node = 1 + np.cumsum(kept, axis=1)[graph, at]
        labels[graph, node] = lookup[ks[graph, at], e[graph, at]]
        attributes[graph, node] = layer_rows[r[graph], e[graph, at], at]
        for part, position in enumerate((np.zeros_like(count), np.ones_like(count), count - 2, count - 1)):
            labels[rows, position] = fixed[part]
            attributes[rows, position] = ends[r, part]
        sizes, first, pattern = np.unique(count, return_index=True, return_inverse=True)
        order = np.argsort(first)  # patterns numbered by first appearance, as GraphBatch.of does
        adjacency = np.zeros((len(sizes), n_max, n_max), dtype=bool)
        for p, n in enumerate(sizes[order]):
            adjacency[p, np.arange(n - 1), np.arange(1, n)] = True
        return GraphBatch(labels, attributes, adjacency, np.argsort(order)[pattern], sizes[order])

    @cached_property
    def _graph_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Node attributes of the four fixed nodes per resolution (R, 4, A), of every layer per
        resolution and expand ratio (R, expands, layers, A), and the label indices of each
        (kernel, expand) block and of the four fixed nodes; drawn from full-depth networks."""
        drawn = [
            [self.graph(self._uniform(KERNEL_SIZES[0], e, DEPTHS[-1], r)).attribute_matrix() for e in EXPAND_RATIOS]
            for r in self.resolutions
        ]
        matrices = np.array(drawn)  # (R, expands, 4 + layers, A)
        ends = matrices[:, 0][:, [0, 1, -2, -1]]
        vocabulary = self.graph_labels()
        lookup = np.array([[vocabulary.index(f"k{k}_e{e}") for e in EXPAND_RATIOS] for k in KERNEL_SIZES])
        fixed = np.array([vocabulary.index(name) for name in ("first_conv", "first_block", "final_expand", "head")])
        return ends, matrices[:, :, 2:-2], lookup, fixed

    def graph_labels(self) -> tuple[str, ...]:
        blocks = (f"k{k}_e{e}" for k in KERNEL_SIZES for e in EXPAND_RATIOS)
        return ("first_conv", "first_block", *blocks, "final_expand", "head")

    def supernet(self, seed: int = 0) -> OFASupernet:
        # Imported here: the supernet module imports this one.
        from search_spaces.ofa._supernet import OFASupernet

        return OFASupernet.create(self, seed)

    def smallest(self) -> Architecture:
        return self._uniform(KERNEL_SIZES[0], EXPAND_RATIOS[0], DEPTHS[0], self.resolutions[0])

    def largest(self) -> Architecture:
        return self._uniform(KERNEL_SIZES[-1], EXPAND_RATIOS[-1], DEPTHS[-1], self.resolutions[-1])

    def _uniform(self, ks: int, e: int, d: int, r: int) -> Architecture:
        genes: dict[str, GeneValue] = {g: ks for g in KS_GENES}
        genes.update({g: e for g in E_GENES})
        genes.update({g: d for g in D_GENES})
        genes["r"] = r
        return self.architecture(genes)

    def __repr__(self) -> str:
        extra = "" if self.resolutions == RESOLUTIONS else f", resolutions={list(self.resolutions)}"
        return f"OFASpace(width_mult={self.width_mult!r}, num_classes={self.num_classes}{extra})"


def _conv_attributes(conv: ConvSpec, size: int) -> tuple[float, ...]:
    """A plain conv's graph attributes in the MBConv layers' columns (its mid width is its out)."""
    return (
        float(conv.in_channels),
        float(conv.out_channels),
        float(conv.out_channels),
        float(conv.stride),
        float(size),
        0.0,
    )


#: Columns of ``gene_indices``: the genes are declared kernels, expand ratios, depths, resolution.
_KS = np.arange(NUM_LAYERS)
_E = NUM_LAYERS + np.arange(NUM_LAYERS)
_D = 2 * NUM_LAYERS + np.arange(NUM_STAGES)
_R = 2 * NUM_LAYERS + NUM_STAGES


def _kept_layers(gene_indices: np.ndarray) -> np.ndarray:
    """(n, layers) bool: which of the 20 MBConv layers each network keeps (``i % 4 < d_s``)."""
    depths = np.asarray(DEPTHS)[gene_indices[:, _D]]  # (n, stages)
    layer = np.arange(NUM_LAYERS)
    return layer[None, :] % MAX_DEPTH < depths[:, layer // MAX_DEPTH]


def config_of(arch: Architecture) -> OFAConfig:
    genes = arch.params  # one dict, not a scan of the 46 genes per lookup
    return OFAConfig(
        ks=tuple(int(genes[g]) for g in KS_GENES),
        e=tuple(int(genes[g]) for g in E_GENES),
        d=tuple(int(genes[g]) for g in D_GENES),
        r=int(genes["r"]),
    )


_LISTS: tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...] = (
    ("ks", KS_GENES, KERNEL_SIZES),
    ("e", E_GENES, EXPAND_RATIOS),
    ("d", D_GENES, DEPTHS),
)


def parse_config(string: Any) -> dict[str, GeneValue]:
    """Genes of an OFA JSON string; errors name the bad key, index and value and the allowed values.

    Key order and whitespace are free (any string naming the network parses); the canonical
    string is :meth:`OFASpace.format`'s.
    """
    if not isinstance(string, str):
        raise ArchitectureError(f"an OFA architecture must be a JSON string, got {type(string).__name__}")
    if len(string) > MAX_STRING_CHARS:
        raise ArchitectureError(f"an OFA architecture string of {len(string)} characters; at most {MAX_STRING_CHARS}")
    try:
        document = json.loads(string, object_pairs_hook=_unique_keys, parse_int=_small_int)
    except (json.JSONDecodeError, RecursionError, ValueError) as error:
        # ValueError: a repeated key or an integer of thousands of digits; RecursionError: deep nesting
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ArchitectureError(
            f"{string[:200]!r} is not JSON of an OFA architecture ({reason}); expected {STRING_FORMAT}"
        ) from None
    if not isinstance(document, dict):
        raise ArchitectureError(f"{string!r} is not a JSON object; expected {STRING_FORMAT}")
    expected = ("ks", "e", "d", "r")
    missing = [k for k in expected if k not in document]
    unknown = sorted(set(document) - set(expected))
    if missing or unknown:
        raise ArchitectureError(
            f"{string!r} has missing key(s) {missing} and unknown key(s) {unknown}; expected exactly "
            f"ks, e, d, r: {STRING_FORMAT}"
        )
    genes: dict[str, GeneValue] = {}
    for key, names, choices in _LISTS:
        genes.update(zip(names, _parse_list(string, key, document[key], len(names), choices)))
    genes["r"] = _check_value(string, '"r"', document["r"], RESOLUTIONS)
    return genes


#: Longer than any OFA string by far (the canonical one is about 170 characters).
MAX_STRING_CHARS = 10_000


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"key(s) {repeated} given more than once")
    return dict(pairs)


def _small_int(text: str) -> int:
    if len(text.lstrip("-")) > 6:
        raise ValueError(f"integer {text[:20]}... has {len(text)} digits")
    return int(text)


def _parse_list(string: str, key: str, values: Any, length: int, choices: tuple[int, ...]) -> list[int]:
    if not isinstance(values, list) or len(values) != length:
        size = f"a list of {len(values)}" if isinstance(values, list) else f"{type(values).__name__}"
        raise ArchitectureError(f'"{key}" of {string!r} is {size}; expected a list of {length} integers')
    return [_check_value(string, f'"{key}"[{i}]', v, choices) for i, v in enumerate(values)]


def _check_value(string: str, where: str, value: Any, choices: Sequence[int]) -> int:
    # bool is an int in Python; JSON true is never a kernel size.
    if isinstance(value, bool) or not isinstance(value, int) or value not in choices:  # 3.0 is not a kernel size
        raise ArchitectureError(f"{where} of {string!r} is {value!r}; allowed values: {_describe(choices)}")
    return int(value)


def _describe(choices: Sequence[int]) -> str:
    if len(choices) > 6:
        step = choices[1] - choices[0]
        return f"{choices[0]}, {choices[1]}, ..., {choices[-1]} (every {step})"
    return ", ".join(str(c) for c in choices)
