"""The landscape engine against naive references: exact metrics, restore, BN, resume, sharding."""
import os
import socket

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lsx.landscape.bn_policy import reestimate_bn
from lsx.landscape.directions import random_direction
from lsx.landscape.evaluator import Evaluator
from lsx.landscape.flat import FlatParams
from lsx.landscape.grids import grid_points, linspace_axis
from lsx.landscape.pca import trajectory_pca
from lsx.landscape.storage import StoreMismatch, load_store
from lsx.landscape.surface import compute_surface


def tiny_bn_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()


def data(n=40, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def naive(model, theta, x, y):
    """Reference: copy the point into a fresh model via state_dict and evaluate in one batch."""
    m = tiny_bn_net()
    m.load_state_dict(model.state_dict())
    FlatParams(m).set_(theta)
    with torch.no_grad():
        out = m.eval()(x)
    return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def test_evaluator_matches_naive_reference_on_non_square_grid():
    model, (x, y), (tx, ty) = tiny_bn_net(), data(), data(30, 2)
    flat = FlatParams(model)
    theta0 = flat.get()
    dirs = torch.stack([random_direction(flat, theta0, s) for s in (1, 2)])
    xs, ys = linspace_axis(-1, 1, 5), linspace_axis(-0.5, 0.5, 3)
    coords = grid_points(xs, ys)
    ev = Evaluator(model, train=(x, y), test=(tx, ty), chunk_size=7)
    res = ev.evaluate(theta0, dirs, coords)
    for i, c in enumerate(coords):
        point = theta0 + float(c[0]) * dirs[0] + float(c[1]) * dirs[1]
        loss, acc = naive(model, point, x, y)
        assert res["train_loss"][i] == pytest.approx(loss, rel=1e-5, abs=1e-6)
        assert res["train_acc"][i] == pytest.approx(acc)
        assert res["test_loss"][i] == pytest.approx(naive(model, point, tx, ty)[0], rel=1e-5, abs=1e-6)
    grid = res["train_loss"].reshape(len(ys), len(xs))
    # row i_y=0 holds y=-0.5: its middle column (x=0) is the point θ0 − 0.5·d2
    loss_mid = naive(model, theta0 - 0.5 * dirs[1], x, y)[0]
    assert grid[0, 2] == pytest.approx(loss_mid, rel=1e-5)
    assert torch.equal(flat.get(), theta0)  # θ0 restored


def test_ignore_biasbn_and_filter_normalization():
    model = tiny_bn_net()
    flat = FlatParams(model)
    theta = flat.get()
    d = random_direction(flat, theta, 3, norm="filter", ignore="biasbn")
    assert torch.all(d[flat.mask(["bias", "bn"])] == 0)
    e = flat.entries[0]
    rows = d[e.start : e.stop].view(e.shape[0], -1).norm(dim=1)
    assert torch.allclose(rows, theta[e.start : e.stop].view(e.shape[0], -1).norm(dim=1), rtol=1e-5)
    with pytest.raises(ValueError, match="valid: filter, layer, model, none"):
        random_direction(flat, theta, 0, norm="weird")


def test_upbn_statistics_are_exact_batch_statistics():
    model = tiny_bn_net()
    x, _ = data(64)
    reestimate_bn(model, [x])
    with torch.no_grad():
        act = model[0](x)
    bn = model[1]
    assert torch.allclose(bn.running_mean, act.mean((0, 2, 3)), atol=1e-6)
    assert torch.allclose(bn.running_var, act.var((0, 2, 3), unbiased=True), rtol=1e-4)
    assert not model.training
    reestimate_bn(model, [x[:32], x[32:]])  # equal chunks: the mean is still exact (cumulative average of batches)
    assert torch.allclose(bn.running_mean, act.mean((0, 2, 3)), atol=1e-6)


def test_bn_policies_differ_and_states_moves_buffers():
    model, (x, y) = tiny_bn_net(), data()
    flat = FlatParams(model)
    d = random_direction(flat, flat.get(), 5)
    keep = Evaluator(model, (x, y), bn_policy="keep").evaluate(flat.get(), d, [[0.5]])["train_loss"][0]
    up = Evaluator(model, (x, y), bn_policy="upbn").evaluate(flat.get(), d, [[0.5]])["train_loss"][0]
    assert keep != pytest.approx(up)
    ev = Evaluator(tiny_bn_net(), (x, y), bn_policy="states")
    assert ev.flat.numel == flat.numel + 8  # running mean and var of 4 channels
    with pytest.raises(ValueError, match="do not match the model"):
        ev.evaluate(flat.get(), d, [[0.5]])


def test_nan_far_points_are_kept_not_raised():
    model, (x, y) = tiny_bn_net(), data()
    flat = FlatParams(model)
    d = torch.full((flat.numel,), 1e38)
    res = Evaluator(model, (x, y)).evaluate(flat.get(), d, [[0.0], [1e10]])
    assert np.isfinite(res["train_loss"][0]) and not np.isfinite(res["train_loss"][1])


def test_store_resumes_without_recomputing_and_refuses_mismatch(tmp_path):
    model, (x, y) = tiny_bn_net(), data()
    flat = FlatParams(model)
    theta0 = flat.get()
    d = random_direction(flat, theta0, 1)[None]
    coords = linspace_axis(-1, 1, 9)[:, None]
    path = tmp_path / "s.h5"
    full = Evaluator(model, (x, y)).evaluate(theta0, d, coords)

    ev = Evaluator(model, (x, y), chunk_size=100)
    calls = {"n": 0}
    original = ev.evaluate_at

    def dying(theta):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("killed")
        return original(theta)

    ev.evaluate_at = dying
    with pytest.raises(RuntimeError):
        compute_surface(ev, theta0, d, coords, path, {"kind": "t"}, {"a": 1}, flush_every=2)
    assert torch.equal(flat.get(), theta0)
    partial = load_store(path)
    assert 0 < partial["done"].sum() < 9
    ev2 = Evaluator(model, (x, y))
    res = compute_surface(ev2, theta0, d, coords, path, {"kind": "t"}, {"a": 1})
    assert ev2.forward_passes == 9 - int(partial["done"].sum())  # one chunk per remaining point
    np.testing.assert_allclose(res["train_loss"], full["train_loss"], rtol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))
    ev3 = Evaluator(model, (x, y))
    compute_surface(ev3, theta0, d, coords, path, {"kind": "t"}, {"a": 1})
    assert ev3.forward_passes == 0  # finished store: no-op
    with pytest.raises(StoreMismatch, match="refusing to mix"):
        compute_surface(ev3, theta0, d, coords[:5], path, {"kind": "t"}, {"a": 1})
    stored = load_store(path)
    assert stored["provenance"] == {"kind": "t"} and stored["directions"].shape == (1, flat.numel)


def test_grid_validation():
    with pytest.raises(ValueError, match="num must be >= 1"):
        linspace_axis(-1, 1, 0, "analysis.x")
    with pytest.raises(ValueError, match="empty range"):
        linspace_axis(1, 1, 5)
    assert linspace_axis(0, 1, 3).tolist() == [0, 0.5, 1]


def test_pca_recovers_plane_and_off_plane_distance():
    model = nn.Linear(50, 1, bias=False)
    flat = FlatParams(model)
    g = torch.Generator().manual_seed(0)
    u, v, w = torch.linalg.qr(torch.randn(50, 3, generator=g, dtype=torch.float64))[0].T
    t = torch.linspace(0, 1, 8, dtype=torch.float64)
    traj = (3 * t[:, None] * u + torch.sin(3 * t)[:, None] * v).float()
    pca = trajectory_pca(traj, flat)
    assert pca.explained_variance_ratio[:2].sum() == pytest.approx(1.0, abs=1e-5)
    assert np.max(pca.off_plane_distance) < 1e-5
    traj2 = traj + 0.5 * (t[:, None] * (1 - t[:, None]) * w).float()
    assert np.max(trajectory_pca(traj2, flat).off_plane_distance) > 1e-3


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model, (x, y) = tiny_bn_net(), data()
    flat = FlatParams(model)
    d = random_direction(flat, flat.get(), 1)[None]
    res = Evaluator(model, (x, y)).evaluate(flat.get(), d, linspace_axis(-1, 1, 7)[:, None])
    if rank == 0:
        np.save(out, res["train_loss"])
    dist.destroy_process_group()


def test_sharded_evaluation_on_two_processes_equals_single_process(tmp_path):
    out = str(tmp_path / "r.npy")
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    model, (x, y) = tiny_bn_net(), data()
    flat = FlatParams(model)
    d = random_direction(flat, flat.get(), 1)[None]
    single = Evaluator(model, (x, y)).evaluate(flat.get(), d, linspace_axis(-1, 1, 7)[:, None])["train_loss"]
    np.testing.assert_allclose(np.load(out), single, rtol=1e-6)
