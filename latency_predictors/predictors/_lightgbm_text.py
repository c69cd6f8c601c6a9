"""Checking a LightGBM model in its text format before LightGBM parses it.

LightGBM's C++ loader trusts its input: a child index out of range, a feature index past the last
feature or a ``tree_sizes`` entry that no longer matches its tree (any edit that changes a line's
length) reads out of bounds or throws inside an OpenMP region, which aborts the whole Python
process (SIGABRT) instead of raising. A predictor file is data from elsewhere, so
:func:`check_model_text` checks everything the loader and the predictor index with, and refuses
with a message naming the tree and field. It accepts what hwnas writes: numerical splits only (no
categorical splits, no linear trees).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["check_model_text"]

_INT = re.compile(r"[+-]?\d{1,18}")
# Numbers as LightGBM writes them (a split on a feature's last bin has threshold inf); float()
# alone would accept "1_0" or "infinity".
_FLOAT = re.compile(r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d{1,3})?|inf|nan)")
_VERSIONS = ("v2", "v3", "v4")
# decision_type bits: 1 categorical (refused), 2 default left, 4 and 8 the missing-value type (0-2).
_NUMERICAL_SPLITS = frozenset(default | missing << 2 for default in (0, 2) for missing in (0, 1, 2))


class _Refused(ValueError):
    pass


def check_model_text(text: str) -> None:
    """Raise ``ValueError`` naming the first thing in ``text`` LightGBM could not load safely."""
    try:
        _check(text.encode("utf-8"))
    except _Refused as error:
        raise ValueError(f"embedded LightGBM model refused: {error}") from None


def _check(data: bytes) -> None:
    start = data.find(b"\nTree=0\n")
    if not data.startswith(b"tree\n") or start < 0:
        raise _Refused("it does not start with 'tree' and hold a 'Tree=0' block")
    head = _fields(data[len(b"tree\n") : start + 1].decode(), "the model's header")
    if head.get("version") not in _VERSIONS:
        raise _Refused(f"version {head.get('version')!r}; expected one of {list(_VERSIONS)}")
    for key in ("num_class", "num_tree_per_iteration"):
        if _int(head, key, "header") < 1:
            raise _Refused(f"header {key}={head[key]}; expected >= 1")
    features = _int(head, "max_feature_idx", "header") + 1
    if not 1 <= features <= 1_000_000:
        raise _Refused(f"header max_feature_idx={features - 1}; expected 0 to 999999")
    for key in ("feature_names", "feature_infos"):
        if key in head and len(head[key].split(" ")) != features:
            raise _Refused(f"header {key} has {len(head[key].split(' '))} entries for {features} features")
    sizes = _ints(head, "tree_sizes", None, "header")
    position = start + 1
    for number, size in enumerate(sizes):
        block = data[position : position + size]
        if size < 1 or len(block) != size or not block.startswith(f"Tree={number}\n".encode()):
            raise _Refused(f"tree_sizes does not match tree {number} (size {size} at byte {position})")
        try:
            _check_tree(block.decode(), number, features)
        except UnicodeDecodeError:
            raise _Refused(f"tree {number} is not UTF-8 text") from None
        position += size
    if not data[position:].lstrip(b"\n").startswith(b"end of trees"):
        raise _Refused(f"{len(sizes)} trees in tree_sizes, then no 'end of trees'")


def _check_tree(block: str, number: int, features: int) -> None:
    where = f"tree {number}"
    tree = _fields(block.split("\n", 1)[1], where)
    leaves = _int(tree, "num_leaves", where)
    if not 1 <= leaves <= 1_000_000:
        raise _Refused(f"{where}: num_leaves={leaves}; expected 1 to 1000000")
    if _int(tree, "num_cat", where) != 0 or tree.get("is_linear", "0") != "0":
        raise _Refused(f"{where}: categorical splits or linear leaves; hwnas writes neither")
    _floats(tree, "leaf_value", leaves, where)
    for key in ("leaf_weight", "leaf_count"):
        if tree.get(key):  # LightGBM writes some empty (a one-leaf tree's leaf_weight)
            _floats(tree, key, leaves, where)
    if "shrinkage" in tree:
        _floats(tree, "shrinkage", 1, where)
    if leaves == 1:
        return
    nodes = leaves - 1
    for key in ("split_gain", "internal_value", "internal_weight", "internal_count"):
        if tree.get(key):
            _floats(tree, key, nodes, where)
    _floats(tree, "threshold", nodes, where)
    if any(not 0 <= f < features for f in _ints(tree, "split_feature", nodes, where)):
        raise _Refused(f"{where}: split_feature outside 0..{features - 1}")
    if any(d not in _NUMERICAL_SPLITS for d in _ints(tree, "decision_type", nodes, where)):
        raise _Refused(f"{where}: decision_type not a numerical split's {sorted(_NUMERICAL_SPLITS)}")
    _check_links(_ints(tree, "left_child", nodes, where), _ints(tree, "right_child", nodes, where), leaves, where)


def _check_links(left: list[int], right: list[int], leaves: int, where: str) -> None:
    """A tree: every internal node but the root and every leaf has exactly one parent, and an
    internal child comes after its parent (as LightGBM numbers them), so there is no cycle."""
    seen_nodes, seen_leaves = [0] * len(left), [0] * leaves
    for parent, children in enumerate(zip(left, right)):
        for child in children:
            if child >= 0:
                if not parent < child < len(left):
                    raise _Refused(f"{where}: node {parent} has child {child}, not a later node")
                seen_nodes[child] += 1
            else:
                if not 0 <= ~child < leaves:
                    raise _Refused(f"{where}: node {parent} has leaf {~child} of {leaves}")
                seen_leaves[~child] += 1
    if seen_nodes[1:] != [1] * (len(left) - 1) or seen_leaves != [1] * leaves or seen_nodes[0]:
        raise _Refused(f"{where}: left_child and right_child do not form a tree")


def _fields(text: str, where: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise _Refused(f"{where}: line {line[:60]!r} is not key=value")
        if key in fields:
            raise _Refused(f"{where}: {key} given twice")
        fields[key] = value
    return fields


def _int(fields: Mapping[str, str], key: str, where: str) -> int:
    return _ints(fields, key, 1, where)[0]


def _ints(fields: Mapping[str, str], key: str, count: int | None, where: str) -> list[int]:
    return [int(v) for v in _values(fields, key, count, where, _INT)]


def _floats(fields: Mapping[str, str], key: str, count: int, where: str) -> list[float]:
    return [float(v) for v in _values(fields, key, count, where, _FLOAT)]


def _values(fields: Mapping[str, str], key: str, count: int | None, where: str, pattern: re.Pattern) -> list[str]:
    if key not in fields:
        raise _Refused(f"{where}: no {key}")
    values = fields[key].split(" ") if fields[key] else []
    if count is not None and len(values) != count:
        raise _Refused(f"{where}: {key} has {len(values)} values; expected {count}")
    bad = next((v for v in values if not pattern.fullmatch(v)), None)
    if bad is not None:
        raise _Refused(f"{where}: {key} holds {bad[:40]!r}, not a number")
    return values
