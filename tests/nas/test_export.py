"""ONNX export: a real small CNN exports, passes the ONNX checker and matches PyTorch."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from nas.export import ParityError, ParityReport, assert_parity, check_parity, export_onnx


def small_cnn(width: int = 8, seed: int = 0) -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, 10),
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
        # Non-trivial running statistics, so eval-mode BN is really exercised.
        bn = model[1]
        bn.running_mean.copy_(torch.randn(width, generator=generator) * 0.1)
        bn.running_var.copy_(torch.rand(width, generator=generator) + 0.5)
    return model.eval()


def example_input(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_export_is_checked_named_and_matches(tmp_path: Path) -> None:
    model, x = small_cnn(), example_input()
    path = export_onnx(model, x, tmp_path / "net.onnx")
    assert path == tmp_path / "net.onnx" and path.is_file()
    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    report = assert_parity(model, x, path)
    assert isinstance(report, ParityReport)
    assert report.passed and report.max_abs_diff <= 1e-4
    assert (report.rtol, report.atol) == (1e-4, 1e-5)


def test_export_restores_training_mode(tmp_path: Path) -> None:
    model = small_cnn().train()
    export_onnx(model, example_input(), tmp_path / "net.onnx")
    assert model.training


def test_export_honours_opset(tmp_path: Path) -> None:
    path = export_onnx(small_cnn(), example_input(), tmp_path / "net.onnx", opset=17)
    versions = {o.domain: o.version for o in onnx.load(str(path)).opset_import}
    assert versions.get("", versions.get("ai.onnx")) == 17


def test_wrong_model_fails_parity_with_clear_message(tmp_path: Path) -> None:
    x = example_input()
    path = export_onnx(small_cnn(seed=0), x, tmp_path / "other.onnx")
    different = small_cnn(seed=5)
    report = check_parity(different, x, path)
    assert not report.passed
    assert report.max_abs_diff > 1e-3
    with pytest.raises(ParityError, match=r"other\.onnx.*max abs diff"):
        assert_parity(different, x, path)


def test_shape_mismatch_fails_parity(tmp_path: Path) -> None:
    x = example_input()
    path = export_onnx(small_cnn(width=8), x, tmp_path / "net.onnx")
    wider = nn.Sequential(small_cnn(width=8), nn.Linear(10, 3)).eval()
    report = check_parity(wider, x, path)
    assert not report.passed and report.max_abs_diff == float("inf")
    with pytest.raises(ParityError, match="shapes differ"):
        assert_parity(wider, x, path)


def test_parity_scales_with_the_output_not_each_element(tmp_path: Path) -> None:
    """An untrained pool-heavy NB201 cell gives logits up to ~2e5 beside one near -257: float32
    rounding of ~0.03 on every logit is right (1.4e-7 of the output's scale), though numpy's
    elementwise allclose rule at rtol 1e-4 failed it and made the default search exit non-zero."""
    from search_spaces import NB201Space

    space = NB201Space(num_classes=10)
    arch = space.parse(
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|avg_pool_3x3~1|avg_pool_3x3~2|"
    )
    model, x = space.build(arch).eval(), space.example_input(1, arch=arch)
    path = export_onnx(model, x, tmp_path / "pools.onnx")
    report = assert_parity(model, x, path)
    assert report.output_scale > 1e4 and report.max_abs_diff > 1e-3
    assert report.max_scaled_diff < 1e-6
    # The same file against the same network with its first conv scaled by 1% is caught.
    with torch.no_grad():
        next(p for p in model.parameters() if p.dim() == 4).mul_(1.01)
    assert not check_parity(model, x, path).passed


def test_a_wrong_bias_cannot_hide_under_large_logits(tmp_path: Path) -> None:
    """Beside logits near 2e5 the example input's tolerance is ~23, and a classifier bias off by 5
    passes it; the zero input, whose logits are the biases' own doing, catches it."""
    from search_spaces import NB201Space

    space = NB201Space(num_classes=10)
    arch = space.parse(
        "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|nor_conv_1x1~0|avg_pool_3x3~1|avg_pool_3x3~2|"
    )
    model, x = space.build(arch).eval(), space.example_input(1, arch=arch)
    path = export_onnx(model, x, tmp_path / "pools.onnx")
    classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        classifier.bias.add_(5.0)
    report = check_parity(model, x, path)
    assert not report.passed and report.input == "zeros"
    assert report.max_abs_diff == pytest.approx(5.0, rel=1e-3)


def test_non_finite_output_fails_parity(tmp_path: Path) -> None:
    x = example_input()
    path = export_onnx(small_cnn(), x, tmp_path / "net.onnx")
    broken = small_cnn()
    with torch.no_grad():
        broken[-1].bias.fill_(float("nan"))
    assert not check_parity(broken, x, path).passed


@pytest.mark.slow
def test_dynamo_export_writes_one_matching_file(tmp_path: Path) -> None:
    model, x = small_cnn(), example_input()
    path = export_onnx(model, x, tmp_path / "net.onnx", dynamo=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.onnx"]
    assert_parity(model, x, path)
