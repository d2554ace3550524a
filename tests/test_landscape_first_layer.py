"""The first-layer plane (outputs precomputed at θ0 and along each direction) gives the plain evaluation's values."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lsx.landscape.engine.bn_policy import uses_buffers
from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.engine.flat import FlatParams
from lsx.landscape.engine.grids import grid2d, line
from lsx.landscape.surfaces.directions import random_direction
from lsx.models import build_model


def _setup(name, shape, policy, ignore="none"):
    torch.manual_seed(0)
    model = build_model(name, shape[0], shape[1:], 10)
    x, y = torch.randn(40, *shape), torch.randint(0, 10, (40,))
    model.train()
    model(x)  # non-trivial BN running statistics
    model.eval()
    flat = FlatParams(model, include_buffers=uses_buffers(policy))
    theta = flat.get()
    dirs = torch.stack([random_direction(flat, theta, s, "filter", ignore) for s in (1, 2)])
    return model, (x, y), theta, dirs


@pytest.mark.parametrize(
    "name,shape,policy,fuse",
    [
        ("simple_cnn", (1, 8, 8), "keep", True),
        ("resnet20", (3, 8, 8), "keep", True),  # conv → BN folded: s·(C0 + Σ c D) + folded bias
        ("resnet20", (3, 8, 8), "states", True),  # BN statistics move with the direction
        ("resnet20", (3, 8, 8), "upbn", False),  # re-estimated statistics, unfused graph
        ("mlp", (1, 8, 8), "keep", True),  # flatten → linear
    ],
)
def test_plane_matches_plain_evaluation(name, shape, policy, fuse):
    model, data, theta, dirs = _setup(name, shape, policy)
    grid = grid2d((-1, 1, 3), (-0.5, 1, 3))
    plain = Evaluator(copy.deepcopy(model), data, data, bn_policy=policy, fuse=fuse, plane=False, chunk_size=16)
    fast = Evaluator(copy.deepcopy(model), data, data, bn_policy=policy, fuse=fuse, plane=True, chunk_size=16)
    a, b = plain.evaluate(theta, dirs, grid), fast.evaluate(theta, dirs, grid)
    assert fast.plane_active, fast.plane_reason
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=2e-5, atol=1e-6, equal_nan=True)
    # parameters restored, and a 1D line (one direction) works the same way
    np.testing.assert_array_equal(fast.flat.get(), theta)
    one = line(-1, 1, 4)
    np.testing.assert_allclose(
        fast.evaluate(theta, dirs[:1], one)["train_loss"], plain.evaluate(theta, dirs[:1], one)["train_loss"], rtol=2e-5
    )


class _InputUsedTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head((self.conv(x) + x).flatten(1))


def test_plane_falls_back_where_it_would_not_be_exact():
    torch.manual_seed(0)
    model = _InputUsedTwice().eval()
    x, y = torch.randn(20, 1, 8, 8), torch.randint(0, 10, (20,))
    ev = Evaluator(model, (x, y), plane=True)
    theta = ev.flat.get()
    dirs = torch.randn(2, theta.numel())
    res = ev.evaluate(theta, dirs, grid2d((-1, 1, 2), (-1, 1, 2)))
    assert not ev.plane_active and "more than one" in ev.plane_reason
    ref = Evaluator(copy.deepcopy(model), (x, y), plane=False).evaluate(theta, dirs, grid2d((-1, 1, 2), (-1, 1, 2)))
    np.testing.assert_array_equal(res["train_loss"], ref["train_loss"])


def test_plane_respects_its_memory_budget():
    model, data, theta, dirs = _setup("simple_cnn", (1, 8, 8), "keep")
    ev = Evaluator(model, data, plane=True, plane_budget_bytes=1000)
    ev.evaluate(theta, dirs, grid2d((-1, 1, 2), (-1, 1, 2)))
    assert not ev.plane_active and "plane_budget_bytes" in ev.plane_reason


def test_plane_auto_combines_a_dense_first_layer_but_recomputes_a_small_convolution():
    model, data, theta, dirs = _setup("mlp", (1, 8, 8), "keep")  # Linear(64, 128): fan-in 64 >= 16·3
    grid = grid2d((-1, 1, 3), (-1, 1, 3))
    ev = Evaluator(copy.deepcopy(model), data)
    auto = ev.evaluate(theta, dirs, grid)
    assert ev.plane == "auto" and ev.plane_active, ev.plane_reason
    plain = Evaluator(copy.deepcopy(model), data, plane=False).evaluate(theta, dirs, grid)
    np.testing.assert_allclose(auto["train_loss"], plain["train_loss"], rtol=2e-5)
    model, data, theta, dirs = _setup("simple_cnn", (1, 8, 8), "keep")  # Conv2d(1, 16, 3): fan-in 9
    ev = Evaluator(model, data)
    ev.evaluate(theta, dirs, grid)
    assert not ev.plane_active and "fan-in 9" in ev.plane_reason


def test_plane_can_be_switched_off_and_rejects_other_values():
    model, data, theta, dirs = _setup("mlp", (1, 8, 8), "keep")
    ev = Evaluator(model, data, plane=False)
    ev.evaluate(theta, dirs, grid2d((-1, 1, 2), (-1, 1, 2)))
    assert not ev.plane_active and "plane=False" in ev.plane_reason
    with pytest.raises(ValueError, match="plane must be True, False or 'auto'"):
        Evaluator(model, data, plane="yes")


def test_plane_output_keeps_the_layers_memory_format():
    """A 1-channel input makes NCHW and channels_last ambiguous for the stored outputs; the combined
    output must be laid out as the real layer's (NCHW max-pooling is ~12x slower here)."""
    model, data, theta, dirs = _setup("simple_cnn", (1, 8, 8), "keep")
    ev = Evaluator(model, data, plane=True)
    ev.evaluate(theta, dirs, grid2d((-1, 1, 2), (-1, 1, 2)))
    assert ev.plane_active
    plane = ev._plane
    ev._plane_for(theta, dirs)
    xb = ev._chunked["train"][0][0]
    with torch.inference_mode():
        real = plane.layer(plane._layer_input(xb))
        stacked, shape, inv = plane.cache["train"][0]
        combined = stacked[0].view(shape).permute(inv)
    assert combined.stride() == real.stride()
    plane.release()


def test_local_workers_give_the_same_surface():
    model, data, theta, dirs = _setup("simple_cnn", (1, 8, 8), "keep")
    ev = Evaluator(model, data, data)
    grid = grid2d((-1, 1, 3), (-1, 1, 3))
    one = ev.evaluate(theta, dirs, grid)
    seen = []
    two = ev.evaluate(theta, dirs, grid, workers=2, on_point=lambda i, m: seen.append(i), indices=range(1, 9))
    assert sorted(seen) == list(range(1, 9)) and np.isnan(two["train_loss"][0])
    for k in one:
        np.testing.assert_allclose(two[k][1:], one[k][1:], rtol=1e-6)
    np.testing.assert_array_equal(ev.flat.get(), theta)
