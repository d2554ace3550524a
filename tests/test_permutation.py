"""Permutation core: specs traced from the model, invariance, weight/activation matching, REPAIR, barrier."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lsx.landscape.permutation import UnsupportedModel, barrier, derive_spec, permute_state, random_perms, state_distance
from lsx.landscape.permutation.activation_matching import activation_matching
from lsx.landscape.permutation.align import align_models, check_align
from lsx.landscape.permutation.apply import interpolate_state
from lsx.landscape.permutation.repair import preact_stats, repaired_state, target_stats
from lsx.landscape.permutation.weight_matching import weight_matching
from lsx.models import build_model

# (name, options, input shape C×H×W): every architecture the spec supports, small enough for seconds
ARCHS = [
    ("mlp", {"depth": 3, "hidden": 32}, (1, 8, 8)),
    ("simple_cnn", {}, (1, 8, 8)),
    ("simple_cnn", {}, (1, 1, 40)),  # MNIST-1D shape: flatten of C×1×5 blocks
    ("vgg9", {"width": 0.125}, (3, 16, 16)),
    ("resnet20", {"width": 0.5}, (3, 8, 8)),
    ("resnet20", {"width": 0.5, "shortcut": False}, (3, 8, 8)),
]


def _model(name, kw, shape, seed=0, perturb_bn=True):
    torch.manual_seed(seed)
    m = build_model(name, shape[0], shape[1:], 10, **kw).eval()
    if not perturb_bn:
        return m
    with torch.no_grad():  # non-trivial BN statistics and affine parameters, so their permutation matters
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
    return m


def _floats(state):
    return [k for k, v in state.items() if v.is_floating_point()]


@pytest.mark.parametrize("name,kw,shape", ARCHS, ids=[f"{a[0]}-{'x'.join(map(str, a[2]))}-{i}" for i, a in enumerate(ARCHS)])
def test_random_permutation_keeps_function_and_loss(name, kw, shape):
    m = _model(name, kw, shape)
    x, y = torch.randn(16, *shape), torch.randint(0, 10, (16,))
    spec = derive_spec(m, x)
    assert spec.groups, "no permutation group found"
    p = random_perms(spec, torch.Generator().manual_seed(1))
    assert any(not torch.equal(v, torch.arange(len(v))) for v in p.values())
    mp = copy.deepcopy(m)
    mp.load_state_dict(permute_state(m.state_dict(), spec, p))
    with torch.no_grad():
        out, out_p = m(x), mp(x)
    assert state_distance(m.state_dict(), mp.state_dict(), _floats(m.state_dict())) > 0
    torch.testing.assert_close(out_p, out, rtol=1e-5, atol=1e-5)
    ce = nn.functional.cross_entropy
    assert float(ce(out_p, y)) == pytest.approx(float(ce(out, y)), rel=1e-6)


def test_residual_stream_is_one_group_and_noshort_is_not():
    x = torch.randn(2, 3, 8, 8)
    with_short = derive_spec(_model("resnet20", {"width": 0.5}, (3, 8, 8)), x)
    no_short = derive_spec(_model("resnet20", {"width": 0.5, "shortcut": False}, (3, 8, 8)), x)
    assert len(with_short.groups) == 3 + 9  # one stream per stage + each block's inner conv
    assert len(no_short.groups) == 19  # every conv but the classifier's
    stream = next(g for g, axes in with_short.groups.items() if any(a.key == "stem.0.weight" for a in axes))
    keys = {a.key for a in with_short.groups[stream]}
    assert {"stem.1.running_mean", "stem.1.running_var", "blocks.0.bn2.weight", "blocks.2.bn2.running_var"} <= keys


def test_unsupported_op_is_named():
    with pytest.raises(UnsupportedModel, match="cat"):
        derive_spec(build_model("densenet40_12", 3, 8, 10), torch.randn(2, 3, 8, 8))

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x

    with pytest.raises(UnsupportedModel, match="cannot trace Branchy"):
        derive_spec(Branchy(), torch.randn(2, 4))


@pytest.mark.parametrize("name,kw,shape", [ARCHS[0], ARCHS[1], ARCHS[3], ARCHS[4]], ids=["mlp", "cnn", "vgg", "resnet"])
def test_weight_matching_recovers_a_known_permutation(name, kw, shape):
    m = _model(name, kw, shape)
    spec = derive_spec(m, torch.randn(2, *shape))
    sa = m.state_dict()
    sb = permute_state(sa, spec, random_perms(spec, torch.Generator().manual_seed(3)))
    keys = _floats(sa)
    assert state_distance(sa, sb, keys) > 1.0
    recovered = permute_state(sb, spec, weight_matching(spec, sa, sb))
    assert state_distance(sa, recovered, keys) == 0.0
    # barrier 0 on the straight line between a network and its recovered copy
    mi, x, y = copy.deepcopy(m), torch.randn(32, *shape), torch.randint(0, 10, (32,))
    losses = []
    for a in np.linspace(0, 1, 5):
        mi.load_state_dict(interpolate_state(sa, recovered, a))
        with torch.no_grad():
            losses.append(float(nn.functional.cross_entropy(mi(x), y)))
    assert barrier(np.linspace(0, 1, 5), losses) == pytest.approx(0.0, abs=1e-6)


RESNET16 = ("resnet20", {"width": 0.5}, (3, 16, 16))


@pytest.mark.parametrize("name,kw,shape", [ARCHS[0], ARCHS[1], RESNET16], ids=["mlp", "cnn", "resnet"])
def test_activation_matching_recovers_a_known_permutation(name, kw, shape):
    # default BN statistics: shifted ones kill some ReLU units, and dead units (all zero) are indistinguishable
    m = _model(name, kw, shape, perturb_bn=False)
    x = torch.randn(256, *shape)
    spec = derive_spec(m, x)
    mb = copy.deepcopy(m)
    mb.load_state_dict(permute_state(m.state_dict(), spec, random_perms(spec, torch.Generator().manual_seed(4))))
    recovered = permute_state(mb.state_dict(), spec, activation_matching(spec, m, mb, x))
    assert state_distance(m.state_dict(), recovered, _floats(recovered)) == 0.0


def _reference_correlation(a, b, nodes, x, eps=1e-8):
    """All activations at once, centred in float64: the correlation the streamed sums must reproduce."""
    from lsx.landscape.permutation.activations import capture, units

    with torch.no_grad():
        oa, ob = capture(a.eval(), nodes)(x), capture(b.eval(), nodes)(x)
    out = {}
    for k in nodes:
        ua, ub = units(oa[k]).double(), units(ob[k]).double()
        ca, cb = ua - ua.mean(0), ub - ub.mean(0)
        sd = torch.outer(ca.square().mean(0).sqrt(), cb.square().mean(0).sqrt())
        out[k] = (ca.T @ cb) / len(ua) / (sd + eps)
    return out


@pytest.mark.parametrize("name,kw,shape", [ARCHS[0], ARCHS[2], RESNET16], ids=["mlp", "cnn1d", "resnet_bn"])
def test_streamed_correlation_equals_a_float64_reference(name, kw, shape):
    from lsx.landscape.permutation.activations import cross_correlation

    a, b = _model(name, kw, shape, seed=0), _model(name, kw, shape, seed=1)
    x = torch.randn(96, *shape)
    spec = derive_spec(a, x)
    nodes = sorted({n for g in spec.groups for n in spec.observe[g]})
    ref = _reference_correlation(a, b, nodes, x)
    for batch_size in (None, 40):  # one chunk, and chunks that do not divide the inputs
        got = cross_correlation(a, b, nodes, x, batch_size=batch_size)
        for k in nodes:
            assert got[k].dtype == torch.float64 and got[k].shape == ref[k].shape
            torch.testing.assert_close(got[k], ref[k], rtol=0, atol=5e-5)  # float32 maps, BN folded


@pytest.mark.parametrize("name,kw,shape", [ARCHS[0], RESNET16], ids=["mlp", "resnet_bn"])
def test_many_pairs_equal_their_pairwise_correlations_bit_for_bit(name, kw, shape, monkeypatch):
    from lsx.landscape.permutation import activations

    models = [_model(name, kw, shape, seed=s) for s in range(4)]
    x = torch.randn(72, *shape)
    spec = derive_spec(models[0], x)
    nodes = sorted({n for g in spec.groups for n in spec.observe[g]})
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3), (3, 0)]
    traced = []
    real_capture = activations.capture
    monkeypatch.setattr(activations, "capture", lambda m, n: traced.append(m) or real_capture(m, n))
    many = activations.cross_correlations(models, pairs, nodes, x, batch_size=32)
    assert len(traced) == 4  # one forward graph per network, run once per chunk, whatever its number of pairs
    for i, j in pairs:
        one = activations.cross_correlation(models[i], models[j], nodes, x, batch_size=32)
        for k in nodes:
            assert torch.equal(many[(i, j)][k], one[k]), (i, j, k)
    with pytest.raises(ValueError, match=r"pairs \[\(1, 1\), \(0, 4\)\] are not pairs of two different models among 4"):
        activations.cross_correlations(models, [(0, 1), (1, 1), (0, 4)], nodes, x)


def test_a_large_set_shrinks_its_chunks_to_the_held_bytes_and_keeps_its_correlations(monkeypatch):
    from lsx.landscape.permutation import activations

    name, kw, shape = RESNET16
    models = [_model(name, kw, shape, seed=s) for s in range(4)]
    x = torch.randn(60, *shape)
    spec = derive_spec(models[0], x)
    nodes = sorted({n for g in spec.groups for n in spec.observe[g]})
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    with torch.inference_mode():  # one input's hooked maps, in bytes
        per_input = sum(t.numel() * t.element_size() for t in activations.capture(models[0], nodes)(x[:1]).values())
    sizes: list[int] = []
    real_batches = activations.batches
    monkeypatch.setattr(activations, "batches", lambda xs, size: sizes.append(size) or real_batches(xs, size))
    free = activations.cross_correlations(models, pairs, nodes, x, batch_size=32)
    held = activations.cross_correlations(models, pairs, nodes, x, batch_size=32, held_bytes=per_input * 4 * 7)
    assert sizes == [32, 7]  # four networks' maps of 7 inputs each fit; the default bound leaves 32 alone
    for p in pairs:
        for k in nodes:  # float32 maps of other chunk sizes (as test_streamed_correlation_equals_a_float64_reference)
            torch.testing.assert_close(held[p][k], free[p][k], rtol=0, atol=5e-5)
    assert activations.held_chunk_size(activations.capture(models[0], nodes), x, 4, 1) == 1  # never 0


def test_activation_matching_of_a_set_recovers_every_known_permutation():
    from lsx.landscape.permutation.activation_matching import activation_matching_pairs

    name, kw, shape = RESNET16
    m = _model(name, kw, shape, perturb_bn=False)
    x = torch.randn(256, *shape)
    spec = derive_spec(m, x)
    copies = [m]
    for s in (5, 6, 7):
        c = copy.deepcopy(m)
        c.load_state_dict(permute_state(m.state_dict(), spec, random_perms(spec, torch.Generator().manual_seed(s))))
        copies.append(c)
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    found = activation_matching_pairs(spec, copies, pairs, x)
    assert set(found) == set(pairs)
    for i, j in pairs:  # every copy brought to every other: the same function and the same weights
        recovered = permute_state(copies[j].state_dict(), spec, found[(i, j)])
        assert state_distance(copies[i].state_dict(), recovered, _floats(recovered)) == 0.0
    # align_models: the reference runs once for all; each copy ends equal to it
    aligned = [copy.deepcopy(c) for c in copies]
    info = align_models(aligned, "activation", x)
    assert len(info["align_seconds"]) == 3 and len(set(info["align_seconds"])) == 1  # an even share each
    for c in aligned[1:]:
        assert state_distance(m.state_dict(), c.state_dict(), _floats(m.state_dict())) == 0.0


def test_align_models_and_bad_input():
    shape = (1, 8, 8)
    a, b = _model(*ARCHS[0][:2], shape, seed=0), _model(*ARCHS[0][:2], shape, seed=1)
    x = torch.randn(64, *shape)
    before = state_distance(a.state_dict(), b.state_dict(), _floats(a.state_dict()))
    with torch.no_grad():
        out = b(x)
    info = align_models([a, b], "weight", x)
    assert info["align"] == "weight" and len(info["align_seconds"]) == 1
    with torch.no_grad():
        torch.testing.assert_close(b(x), out, rtol=1e-5, atol=1e-5)
    assert state_distance(a.state_dict(), b.state_dict(), _floats(a.state_dict())) < before
    with pytest.raises(ValueError, match="valid: none, weight, activation"):
        check_align("greedy")
    # optima of different shapes or architectures: one line naming the first difference, before any matching
    wide = build_model("mlp", 1, 8, 10, depth=3, hidden=64)
    with pytest.raises(ValueError, match=r"^the two optima differ in shape at 1.weight: \(32, 64\) vs \(64, 64\)$"):
        align_models([a, wide], "activation", x)
    cnn = _model("simple_cnn", {}, shape)
    one_line = r"^the two optima have different architectures: tensors \[.*\] are in only one of them$"
    with pytest.raises(ValueError, match=one_line):
        align_models([a, cnn], "weight", x)


@pytest.mark.parametrize("name,kw,shape", [ARCHS[0], ARCHS[3]], ids=["mlp", "vgg_bn"])
def test_repair_restores_interpolated_endpoint_statistics(name, kw, shape):
    a, b = _model(name, kw, shape, seed=0), _model(name, kw, shape, seed=1)
    x = torch.randn(256, *shape)
    spec = derive_spec(a, x)
    b.load_state_dict(permute_state(b.state_dict(), spec, weight_matching(spec, a.state_dict(), b.state_dict())))
    sa, sb = preact_stats(a, spec, x), preact_stats(b, spec, x)
    targets = target_stats(sa, sb, 0.5)
    mid = copy.deepcopy(a)
    plain = preact_stats(_loaded(mid, interpolate_state(a.state_dict(), b.state_dict(), 0.5)), spec, x)
    repaired_state(mid, spec, interpolate_state(a.state_dict(), b.state_dict(), 0.5), targets, x)
    got = preact_stats(mid, spec, x)
    for k, (mean, std) in targets.items():
        torch.testing.assert_close(got[k][0], mean, rtol=1e-3, atol=1e-4 * float(std.mean()))
        torch.testing.assert_close(got[k][1], std, rtol=1e-3, atol=1e-4)
    # and the plain midpoint did not have them (variance collapse): the test can fail
    assert any(float((plain[k][1] - targets[k][1]).abs().max()) > 1e-2 for k in targets)


def _loaded(model, state):
    model.load_state_dict(state)
    return model


def test_barrier_on_an_analytic_double_well():
    # L(θ) = (θ² − 1)², θ_a = −1, θ_b = 1: L(α) = ((2α − 1)² − 1)², chord 0, barrier L(½) = 1
    alphas = np.linspace(0, 1, 21)
    loss = ((2 * alphas - 1) ** 2 - 1) ** 2
    assert barrier(alphas, loss) == pytest.approx(1.0)
    # tilted: L(θ) = θ² + θ between θ=0 and θ=1 is convex: barrier 0 (at the endpoints)
    assert barrier(alphas, alphas**2 + alphas) == pytest.approx(0.0, abs=1e-12)
    # Entezari's chord: endpoints 1 and 3, midpoint 4 → rise 4 − 2 = 2
    assert barrier([0, 0.5, 1], [1, 4, 3]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="hold both endpoints"):
        barrier([0, 0.5], [1, 2])
