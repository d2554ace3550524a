"""BatchNorm at extrapolated interpolation points (α > 1): finite with a variance floor or re-estimation."""

import numpy as np
import pytest
import torch
from torch import nn

from lsx.landscape.engine.bn_policy import bn_state, check_extrapolated_bn, clamp_running_var, variance_floors
from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.engine.flat import FlatParams


def _net(seed: int, var: float) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 3),
    )
    with torch.no_grad():
        for bn in (m[1], m[4]):
            bn.running_var.fill_(var)
            bn.running_mean.normal_(0, 0.1)
    return m.eval()


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(64, 1, 6, 6, generator=g), torch.randint(0, 3, (64,), generator=g)


def test_alpha_1_5_stays_finite_with_a_variance_floor_and_with_upbn():
    a, b = _net(0, 1.0), _net(1, 0.05)  # at α = 1.5 the running variance is 1 + 1.5·(0.05 − 1) < 0
    ta, tb = FlatParams(a, include_buffers=True).get(), FlatParams(b, include_buffers=True).get()
    at = lambda alpha: ta + alpha * (tb - ta)  # noqa: E731
    data = _data()
    ev = Evaluator(_net(0, 1.0), data, data, bn_policy="states", fuse=False)
    zero = ev.evaluate_at(at(1.5), restore=True)["train_loss"]  # old clamp at 0: σ² + ε = 1e-5
    ev.var_floor = variance_floors(bn_state(a), bn_state(b), 0.1)
    floored = ev.evaluate_at(at(1.5), restore=True)["train_loss"]
    inside = ev.evaluate_at(at(0.5), restore=True)["train_loss"]
    ev.var_floor = 0.0
    assert ev.evaluate_at(at(0.5), restore=True)["train_loss"] == inside  # the floor never binds inside [0, 1]
    assert np.isfinite(floored) and floored < zero / 10 and floored < 100
    # upbn: parameters extrapolated, statistics re-estimated from the data
    pa, pb = FlatParams(a).get(), FlatParams(b).get()
    up = Evaluator(_net(0, 1.0), data, data, bn_policy="upbn", fuse=False)
    assert np.isfinite(up.evaluate_at(pa + 1.5 * (pb - pa), restore=True)["train_loss"])


def test_variance_floor_helpers():
    a, b = _net(0, 1.0), _net(1, 0.05)
    floors = variance_floors(bn_state(a), bn_state(b), 0.1)
    assert all(torch.allclose(f, torch.full((4,), 0.005)) for f in floors)
    m = _net(2, -3.0)
    clamp_running_var([m[1], m[4]], floors)
    assert float(m[1].running_var.min()) == pytest.approx(0.005)
    clamp_running_var([m[1]], 0.5)
    assert float(m[1].running_var.min()) == 0.5
    with pytest.raises(ValueError, match="floor fraction"):
        variance_floors(bn_state(a), bn_state(b), 0.0)
    with pytest.raises(ValueError, match="valid: upbn, floor"):
        check_extrapolated_bn("zero")


def test_the_batched_path_applies_the_same_floor():
    from lsx.landscape.engine.batched import evaluate_batched  # noqa: F401  (the vmapped several-points path)

    a, b = _net(0, 1.0), _net(1, 0.05)
    ta, tb = FlatParams(a, include_buffers=True).get(), FlatParams(b, include_buffers=True).get()
    data = _data()
    ev = Evaluator(_net(0, 1.0), data, data, bn_policy="states", fuse=False, channels_last=False)
    ev.var_floor = variance_floors(bn_state(a), bn_state(b), 0.1)
    one = ev.evaluate(ta, (tb - ta)[None], np.array([[1.5], [0.5]]))
    ev.points_per_pass = 2
    two = ev.evaluate(ta, (tb - ta)[None], np.array([[1.5], [0.5]]))
    np.testing.assert_allclose(two["train_loss"], one["train_loss"], rtol=1e-4)
