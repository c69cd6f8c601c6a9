"""GeneEncoding: equal spaces share encodings by value, never through a process-wide cache, and
choice codes are trusted only by an encoding equal to the one that wrote them."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from nas import Architecture, ArchitectureError, Gene, GeneEncoding
from tests.nas.toy import ToySpace


class ReversedWidths(ToySpace):
    """The toy's name and genes with the first width's choices in the other order."""

    def genes(self) -> tuple[Gene, ...]:
        first, *rest = super().genes()
        return (Gene(first.name, first.choices[::-1]), *rest)


class ManyChoices(ToySpace):
    """A gene of 300 choices: its indices do not fit a byte, so architectures carry no codes."""

    name = "many"

    def genes(self) -> tuple[Gene, ...]:
        return (Gene("width_0", tuple(range(1, 301))), *super().genes()[1:])

    def format(self, genes: Mapping[str, object]) -> str:
        return "-".join(f"{genes[g.name]}" for g in self.genes())


def test_equal_spaces_have_equal_but_separate_encodings() -> None:
    first, second = ToySpace(), ToySpace()
    assert first.encoding is not second.encoding
    assert first.encoding == second.encoding and hash(first.encoding) == hash(second.encoding)
    assert first.encoding != ReversedWidths().encoding
    assert first.encoding != GeneEncoding("other", first.genes())


def test_codes_written_by_another_layout_are_not_trusted() -> None:
    toy, reversed_ = ToySpace(), ReversedWidths()
    archs = [toy.parse(s) for s in ("4-8-1-3", "32-4-3-1")]
    # the same name and gene values, other choice order: indices follow the reading encoding
    np.testing.assert_array_equal(reversed_.encoding.indices(archs), [[3, 1, 0, 1], [0, 0, 1, 0]])
    np.testing.assert_array_equal(toy.encoding.indices(archs), [[0, 1, 0, 1], [3, 0, 1, 0]])
    np.testing.assert_array_equal(ToySpace().encoding.indices(archs), toy.encoding.indices(archs))


def test_genes_beyond_a_byte_are_looked_up() -> None:
    space = ManyChoices()
    arch = space.architecture({"width_0": 300, "width_1": 8, "kernel_0": 1, "kernel_1": 3})
    assert arch.choice_codes == b"" and arch.layout is None
    np.testing.assert_array_equal(space.encoding.indices([arch]), [[299, 1, 0, 1]])
    assert space.encoding.encode([arch]).shape == (1, 300 + 4 + 2 + 2)


def test_architectures_of_another_space_are_refused_by_name() -> None:
    arch = ToySpace().parse("4-8-1-3")
    foreign = Architecture(space="other", genes=arch.genes, string=arch.string)
    with pytest.raises(ArchitectureError, match="toy cannot encode a 'other' architecture"):
        ToySpace().encoding.indices([arch, foreign])


def test_value_counts_group_genes_by_their_choices() -> None:
    space = ToySpace()
    indices = space.encoding.indices([space.parse("4-4-3-3")])
    assert space.encoding.count_names() == [
        "width_0~4",
        "width_0~8",
        "width_0~16",
        "width_0~32",
        "kernel_0~1",
        "kernel_0~3",
    ]
    np.testing.assert_array_equal(space.encoding.counts(indices), [[2, 0, 0, 0, 0, 2]])
    inactive_second_width = np.array([[True, False, True, True]])
    np.testing.assert_array_equal(space.encoding.counts(indices, inactive_second_width), [[1, 0, 0, 0, 0, 2]])
