"""Every registered model runs forward+backward on every embedded data shape (timm-style)."""

import pytest
import torch

from lsx.models import available_models, build_model

SHAPES = {"digits": (1, (8, 8)), "mnist1d": (1, (1, 40)), "cifar_like": (3, (32, 32))}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("name", available_models())
def test_forward_backward(name, shape):
    c, hw = SHAPES[shape]
    torch.manual_seed(0)
    model = build_model(name, c, hw, 7)
    x = torch.randn(2, c, *hw)
    out = model(x)
    assert out.shape == (2, 7)
    out.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_param_counts_match_the_papers():
    # CIFAR ResNet-20 has 0.27M parameters, ResNet-56 0.85M, DenseNet-40-12 ~1.0M (He et al.; Huang et al.)
    n = lambda name: sum(p.numel() for p in build_model(name, 3, 32, 10).parameters())  # noqa: E731
    assert 0.26e6 < n("resnet20") < 0.28e6
    assert 0.84e6 < n("resnet56") < 0.87e6
    assert 0.95e6 < n("densenet40_12") < 1.1e6


def test_simple_cnn_structure_and_options():
    m = build_model("simple_cnn", 3, 32, 10)
    convs = [layer for layer in m if isinstance(layer, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 32] and all(c.kernel_size == (3, 3) for c in convs)
    assert any(isinstance(layer, torch.nn.Tanh) for layer in m)
    wide = build_model("simple_cnn", 3, 32, 10, width=2.0, activation="relu", dropout=0.2)
    assert [c.out_channels for c in wide if isinstance(c, torch.nn.Conv2d)] == [32, 64, 64]
    assert any(isinstance(layer, torch.nn.Dropout) for layer in wide)


def test_noshort_resnet_has_no_shortcut_projection():
    m = build_model("resnet20", 3, 32, 10, shortcut=False)
    assert all(not b.use_shortcut for b in m.blocks)
    wide = build_model("resnet20", 3, 32, 10, width=2)
    assert wide.head.in_features == 128


def test_unknown_model_and_option_list_valid_choices():
    with pytest.raises(ValueError, match="valid models: .*simple_cnn"):
        build_model("alexnet", 3, 32, 10)
    with pytest.raises(ValueError, match="valid options: .*activation"):
        build_model("simple_cnn", 3, 32, 10, colour="red")
    with pytest.raises(ValueError, match="activation"):
        build_model("simple_cnn", 3, 32, 10, activation="swishy")
