"""The evaluator's rewritten forward graph computes the model's function: BN folding, pool/activation swap, in-place ReLU."""

import copy

import pytest
import torch
import torch.nn.functional as F
from test_landscape_engine import data, tiny_bn_net
from torch import nn

from lsx.landscape.engine.evaluator import Evaluator, InferenceGraph
from lsx.landscape.engine.flat import FlatParams


class Residual(nn.Module):
    """conv→BN→ReLU with the pre-activation also used by a skip: the ReLU must not run in place."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Linear(4 * 36, 3)

    def forward(self, x):
        pre = self.conv(x)
        out = F.relu(pre) + pre  # `pre` has two users
        return self.head(torch.flatten(F.relu(self.bn(out)), 1))


class Dynamic(nn.Module):
    """Data-dependent control flow: cannot be traced, so the evaluator runs the model itself."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(36, 3)

    def forward(self, x):
        x = torch.flatten(x, 1)
        if x.sum() > 0:
            x = x * 2
        return self.lin(x)


def pooled_net(act):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), act, nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 3)).double().eval()


def outputs(module, x):
    with torch.inference_mode():
        return module(x)


def test_conv_bn_pairs_are_folded_and_follow_parameter_changes():
    model = tiny_bn_net()
    x, _ = data()
    graph = InferenceGraph.build(copy.deepcopy(model), x[:4])
    assert graph is not None and len(graph.pairs) == 2
    called = {n.target for n in graph.module.graph.nodes if n.op == "call_module"}
    assert not any(isinstance(graph.module.get_submodule(t), nn.BatchNorm2d) for t in called)
    ev = Evaluator(model, data())
    reference = copy.deepcopy(model)
    flat = FlatParams(reference)
    g = torch.Generator().manual_seed(3)
    for _ in range(3):  # new parameters and statistics each time: the folded weights are recomputed
        theta = ev.flat.get() + 0.1 * torch.randn(ev.flat.numel, generator=g, dtype=torch.float64)
        ev.evaluate_at(theta)
        flat.set_(theta)
        torch.testing.assert_close(outputs(ev.forward_model, x), outputs(reference, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act", [nn.Tanh(), nn.ReLU(), nn.Sigmoid(), nn.LeakyReLU(0.1)])
def test_monotone_activation_moves_after_max_pooling(act):
    model = pooled_net(act)
    x, _ = data()
    graph = InferenceGraph.build(copy.deepcopy(model), x[:4])
    assert graph is not None
    order = [n for n in graph.module.graph.nodes if n.op == "call_module" and n.target in ("1", "2")]
    assert [n.target for n in order] == ["2", "1"]  # pool, then activation
    torch.testing.assert_close(outputs(graph.module, x), outputs(model, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("act", [nn.GELU(), nn.LeakyReLU(-0.5), nn.SiLU()])
def test_non_monotone_activation_stays_before_pooling(act):
    model = pooled_net(act)
    x, _ = data()
    graph = InferenceGraph.build(copy.deepcopy(model), x[:4])
    if graph is not None:
        order = [n.target for n in graph.module.graph.nodes if n.op == "call_module" and n.target in ("1", "2")]
        assert order == ["1", "2"]
        torch.testing.assert_close(outputs(graph.module, x), outputs(model, x), rtol=0, atol=0)


def test_relu_with_a_shared_input_is_not_done_in_place():
    torch.manual_seed(0)
    model = Residual().double().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
    x, y = data()
    graph = InferenceGraph.build(copy.deepcopy(model), x[:4])
    assert graph is not None
    relus = [n for n in graph.module.graph.nodes if n.target is F.relu]
    assert [n.kwargs.get("inplace", False) for n in relus] == [False, True]  # the second reads a fresh BN output
    torch.testing.assert_close(outputs(graph.module, x), outputs(model, x), rtol=0, atol=0)
    fused = Evaluator(copy.deepcopy(model), (x, y)).evaluate_at(FlatParams(model).get())
    plain = Evaluator(copy.deepcopy(model), (x, y), fuse=False).evaluate_at(FlatParams(model).get())
    assert fused == plain


def test_untraceable_model_falls_back_to_the_model():
    torch.manual_seed(0)
    model = Dynamic().double().eval()
    x, y = data()
    ev = Evaluator(model, (x, y))
    assert ev.graph is None and ev.forward_model is ev.model
    with torch.no_grad():
        out = model(x)
    assert ev.evaluate_at(FlatParams(model).get())["train_loss"] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-12)
