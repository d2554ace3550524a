"""Several points per vmapped forward pass give the per-point loop's values (the GPU path, checked on CPU)."""

import copy

import numpy as np
import pytest
import torch

from lsx.landscape.engine.bn_policy import uses_buffers
from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.engine.flat import FlatParams
from lsx.landscape.engine.grids import grid2d
from lsx.landscape.surfaces.directions import random_direction
from lsx.models import build_model


@pytest.mark.parametrize("name,shape,policy", [("simple_cnn", (1, 8, 8), "keep"), ("resnet20", (3, 8, 8), "states")])
def test_batched_points_match_the_loop(name, shape, policy):
    torch.manual_seed(0)
    model = build_model(name, shape[0], shape[1:], 10)
    x, y = torch.randn(24, *shape), torch.randint(0, 10, (24,))
    model.train()
    model(x)
    model.eval()
    flat = FlatParams(model, include_buffers=uses_buffers(policy))
    theta = flat.get()
    dirs = torch.stack([random_direction(flat, theta, s, "filter", "none") for s in (1, 2)])
    grid = grid2d((-1, 1, 3), (-1, 1, 2))  # 6 points: one full pass of 4 and a partial one of 2
    loop = Evaluator(copy.deepcopy(model), (x, y), (x, y), bn_policy=policy, points_per_pass=1).evaluate(theta, dirs, grid)
    seen = []
    ev = Evaluator(copy.deepcopy(model), (x, y), (x, y), bn_policy=policy, points_per_pass=4, chunk_size=16)
    batched = ev.evaluate(theta, dirs, grid, on_point=lambda i, m: seen.append(i))
    assert sorted(seen) == list(range(6)) and ev.forward_passes == 2 * 2 * 2  # 2 passes x 2 splits x 2 chunks
    for k in loop:
        np.testing.assert_allclose(batched[k], loop[k], rtol=1e-5, atol=1e-7, equal_nan=True)


def test_batched_points_refuse_upbn_and_cpu_default_is_the_loop():
    torch.manual_seed(0)
    model = build_model("resnet20", 3, (8, 8), 10).eval()
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 10, (8,))
    assert Evaluator(copy.deepcopy(model), (x, y)).points_per_pass == 1
    ev = Evaluator(model, (x, y), bn_policy="upbn", points_per_pass=2)
    with pytest.raises(ValueError, match="upbn"):
        ev.evaluate(ev.flat.get(), torch.randn(1, ev.flat.numel), np.array([[0.0], [1.0]]))
    with pytest.raises(ValueError, match="points_per_pass"):
        Evaluator(model, (x, y), points_per_pass=0)
