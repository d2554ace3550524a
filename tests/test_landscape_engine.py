"""The landscape evaluator against naive per-point references: exact metrics, restore, BN policies, NaN, sharding."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lsx.distributed import free_port
from lsx.landscape.engine.bn_policy import reestimate_bn
from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.engine.flat import FlatParams
from lsx.landscape.engine.grids import grid2d, line
from lsx.landscape.engine.storage import load_store
from lsx.landscape.engine.surface import compute_surface
from lsx.landscape.surfaces.directions import random_direction


def tiny_bn_net(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 3),
    )
    with torch.no_grad():  # non-trivial running statistics, as a trained θ* has
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.to(dtype).eval()


def tiny_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


def data(n=40, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 6, 6, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def set_by_state_dict(model, theta, with_buffers=False):
    """Naive placement of a flat point: a fresh deep copy whose state dict is rebuilt name by name."""
    m = copy.deepcopy(model)
    layout = FlatParams(m, include_buffers=with_buffers).entries
    sd = m.state_dict()
    for e in layout:
        sd[e.name] = theta[e.start : e.stop].reshape(e.shape).clone()
    m.load_state_dict(sd)
    return m.eval()


def naive_metrics(model, theta, x, y, with_buffers=False, upbn_batches=None):
    m = set_by_state_dict(model, theta, with_buffers)
    if upbn_batches is not None:  # torch's own cumulative average (momentum=None) over equal-size batches
        for b in m.modules():
            if isinstance(b, nn.BatchNorm2d):
                b.reset_running_stats()
                b.momentum = None
        m.train()
        with torch.no_grad():
            for xb in upbn_batches:
                m(xb)
        m.eval()
    with torch.no_grad():
        out = m(x)
    return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).double().mean()), out.argmax(1)


def setup(k=2, model=None, seed0=1):
    model = model if model is not None else tiny_bn_net()
    flat = FlatParams(model)
    theta0 = flat.get()
    dirs = torch.stack([random_direction(flat, theta0, seed0 + s) for s in range(k)])
    return model, flat, theta0, dirs


def test_evaluator_matches_naive_reference_on_non_square_2d_grid():
    model, flat, theta0, dirs = setup(2)
    (x, y), (tx, ty) = data(), data(30, 2)
    reference = copy.deepcopy(model)
    grid = grid2d((-1, 1, 5), (-0.5, 0.5, 3))
    ev = Evaluator(model, train=(x, y), test=(tx, ty), chunk_size=7)  # 40 = 5·7 + 5: a ragged last chunk
    res = ev.evaluate(theta0, dirs, grid)
    assert set(res) == {"train_loss", "train_acc", "test_loss", "test_acc"}
    for i, c in enumerate(grid.points):
        point = theta0 + c[0] * dirs[0] + c[1] * dirs[1]
        loss, acc, _ = naive_metrics(reference, point, x, y)
        assert res["train_loss"][i] == pytest.approx(loss, rel=1e-10)
        assert res["train_acc"][i] == pytest.approx(acc)
        tloss, tacc, _ = naive_metrics(reference, point, tx, ty)
        assert res["test_loss"][i] == pytest.approx(tloss, rel=1e-10)
        assert res["test_acc"][i] == pytest.approx(tacc)
    # layout values[i_y, i_x]: 3 rows (y) x 5 columns (x); row 0 is y=-0.5, column 4 is x=+1
    values = grid.reshape(res["train_loss"])
    assert values.shape == (3, 5)
    corner = naive_metrics(reference, theta0 + 1.0 * dirs[0] - 0.5 * dirs[1], x, y)[0]
    assert values[0, 4] == pytest.approx(corner, rel=1e-10)
    assert values[1, 2] == pytest.approx(naive_metrics(reference, theta0, x, y)[0], rel=1e-10)  # the centre
    assert torch.equal(flat.get(), theta0)  # θ0 restored
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)  # BN buffers untouched too


def test_evaluator_matches_naive_reference_on_1d_line_with_zero_endpoint():
    model, flat, theta0, dirs = setup(1)
    x, y = data()
    reference = copy.deepcopy(model)
    alphas = line(0.0, 1.0, 6, "alpha")  # an interpolation-style range starting at 0
    res = Evaluator(model, train=(x, y), chunk_size=16).evaluate(theta0, dirs, alphas)
    assert res["train_loss"].shape == (6,)
    for i, a in enumerate(alphas.x):
        assert res["train_loss"][i] == pytest.approx(naive_metrics(reference, theta0 + a * dirs[0], x, y)[0], rel=1e-10)
    assert res["train_loss"][0] == pytest.approx(naive_metrics(reference, theta0, x, y)[0], rel=1e-10)


def test_float32_engine_agrees_with_float64_reference():
    model = tiny_bn_net(dtype=torch.float32)
    flat = FlatParams(model)
    theta0 = flat.get()
    d = random_direction(flat, theta0, 7)
    x, y = data(dtype=torch.float32)
    res = Evaluator(copy.deepcopy(model), (x, y)).evaluate(theta0, [d], [[-0.7], [0.3]])
    for i, a in enumerate([-0.7, 0.3]):
        ref = naive_metrics(tiny_bn_net(), (theta0.double() + a * d.double()), x.double(), y)[0]
        assert res["train_loss"][i] == pytest.approx(ref, rel=1e-5)


def test_indices_subset_leaves_other_points_nan_and_calls_back():
    model, flat, theta0, dirs = setup(2)
    x, y = data()
    seen, ticks = [], []
    res = Evaluator(model, (x, y)).evaluate(
        theta0,
        dirs,
        grid2d((-1, 1, 3), (-1, 1, 3)),
        indices=[0, 4, 8],
        on_point=lambda i, m: seen.append(i),
        progress=lambda done, total: ticks.append((done, total)),
    )
    assert seen == [0, 4, 8] and ticks == [(1, 3), (2, 3), (3, 3)]
    assert np.isfinite(res["train_loss"][[0, 4, 8]]).all() and np.isnan(np.delete(res["train_loss"], [0, 4, 8])).all()


def test_ignore_biasbn_directions_are_zero_on_biases_and_bn():
    model, flat, theta0, dirs = setup(2)
    skipped = flat.mask(["bias", "bn"])
    assert skipped.sum() == 4 + 4 + 4 + 4 + 3 + 8  # conv biases, BN weight+bias ×2 layers, linear bias
    for d in dirs:
        assert torch.all(d[skipped] == 0) and torch.all(d[~skipped] != 0)
    e = flat.entries[0]
    rows = dirs[0][e.start : e.stop].view(e.shape[0], -1).norm(dim=1)
    assert torch.allclose(rows, theta0[e.start : e.stop].view(e.shape[0], -1).norm(dim=1), rtol=1e-10)
    states = FlatParams(model, include_buffers=True)
    d = random_direction(states, states.get(), 3, ignore="biasbn")
    assert torch.all(d[states.mask(["buffer"])] == 0)


def test_upbn_statistics_are_the_exact_batch_statistics():
    model = tiny_bn_net()
    x, _ = data(64)
    with torch.no_grad():
        act = model[0](x)  # input of the first BN layer: independent of any BN statistics
    bn = model[1]
    reestimate_bn(model, [x])
    assert torch.allclose(bn.running_mean, act.mean((0, 2, 3)), rtol=0, atol=1e-12)
    assert torch.allclose(bn.running_var, act.var((0, 2, 3), unbiased=True), rtol=1e-12)
    assert not model.training and bn.momentum == 0.1
    # unequal batches: the mean is still the exact mean over all examples; the variance is the
    # size-weighted mean of the per-batch unbiased variances
    reestimate_bn(model, [x[:40], x[40:]])
    assert torch.allclose(bn.running_mean, act.mean((0, 2, 3)), rtol=0, atol=1e-12)
    v = (40 * act[:40].var((0, 2, 3)) + 24 * act[40:].var((0, 2, 3))) / 64
    assert torch.allclose(bn.running_var, v, rtol=1e-12)


def test_upbn_matches_naive_reestimation_per_point_and_restores_buffers():
    model, flat, theta0, dirs = setup(1)
    x, y = data(40)
    reference = copy.deepcopy(model)
    ev = Evaluator(model, (x, y), bn_policy="upbn", chunk_size=8)  # 5 equal UpBN batches
    coords = [[-0.5], [0.0], [0.8]]
    res = ev.evaluate(theta0, dirs, coords)
    batches = [x[i : i + 8] for i in range(0, 40, 8)]
    for i, (a,) in enumerate(coords):
        ref = naive_metrics(reference, theta0 + a * dirs[0], x, y, upbn_batches=batches)[0]
        assert res["train_loss"][i] == pytest.approx(ref, rel=1e-9)
    keep = Evaluator(copy.deepcopy(reference), (x, y), bn_policy="keep").evaluate(theta0, dirs, coords)
    assert not np.allclose(keep["train_loss"], res["train_loss"])
    for a, b in zip(model.state_dict().values(), reference.state_dict().values()):
        assert torch.equal(a, b)  # θ*'s running statistics are back after UpBN overwrote them


def test_states_policy_moves_running_statistics_with_the_direction():
    model = tiny_bn_net()
    x, y = data()
    reference = copy.deepcopy(model)
    ev = Evaluator(model, (x, y), bn_policy="states")
    assert ev.flat.numel == FlatParams(model).numel + 16  # running mean and var of 2 layers x 4 channels
    theta0 = ev.flat.get()
    d = torch.zeros_like(theta0)
    d[ev.flat.mask(["buffer"])] = torch.linspace(0.1, 0.5, 16, dtype=torch.float64)  # move only the statistics
    res = ev.evaluate(theta0, d, [[0.0], [1.0]])
    assert res["train_loss"][0] == pytest.approx(naive_metrics(reference, theta0, x, y, with_buffers=True)[0], rel=1e-10)
    assert res["train_loss"][1] == pytest.approx(naive_metrics(reference, theta0 + d, x, y, with_buffers=True)[0], rel=1e-10)
    assert res["train_loss"][0] != pytest.approx(res["train_loss"][1])
    with pytest.raises(ValueError, match="do not match the model"):
        ev.evaluate(FlatParams(model).get(), FlatParams(model).get(), [[0.5]])  # parameters-only layout


@pytest.mark.parametrize("policy", ["keep", "upbn", "states"])
def test_model_without_batchnorm_gives_the_same_result_under_every_policy(policy):
    model, flat, theta0, dirs = setup(2, model=tiny_mlp())
    x, y = data()
    ref = Evaluator(copy.deepcopy(model), (x, y)).evaluate(theta0, dirs, grid2d((-1, 1, 3), (-1, 1, 2)))
    res = Evaluator(model, (x, y), bn_policy=policy).evaluate(theta0, dirs, grid2d((-1, 1, 3), (-1, 1, 2)))
    np.testing.assert_array_equal(res["train_loss"], ref["train_loss"])


def test_far_points_give_nan_or_inf_not_an_exception():
    model, flat, theta0, _ = setup(1)
    x, y = data()
    d = torch.full((flat.numel,), 1e300, dtype=torch.float64)
    res = Evaluator(model, (x, y), test=data(10, 3)).evaluate(theta0, d, [[0.0], [1e10], [1.0]])
    assert np.isfinite(res["train_loss"][0])
    assert not np.isfinite(res["train_loss"][1]) and not np.isfinite(res["test_loss"][1])
    assert 0.0 <= res["train_acc"][1] <= 1.0
    assert torch.equal(flat.get(), theta0)


def test_predict_and_evaluate_at():
    model, flat, theta0, dirs = setup(1)
    (x, y), (tx, ty) = data(), data(30, 2)
    reference = copy.deepcopy(model)
    ev = Evaluator(model, (x, y), test=(tx, ty), chunk_size=9)
    point = theta0 + 0.4 * dirs[0]
    labels = ev.predict(point)
    assert labels.shape == (30,) and torch.equal(labels, naive_metrics(reference, point, tx, ty)[2])
    assert torch.equal(flat.get(), theta0)  # predict restores by default
    assert torch.equal(ev.predict(split="train"), naive_metrics(reference, theta0, x, y)[2])
    m = ev.evaluate_at(point, splits=("train",), restore=True)
    assert set(m) == {"train_loss", "train_acc"} and torch.equal(flat.get(), theta0)
    m2 = ev.evaluate_at(point)
    assert m2["train_loss"] == m["train_loss"] and torch.equal(flat.get(), point)  # kept θ, as documented
    with pytest.raises(ValueError, match="unknown split"):
        ev.evaluate_at(point, splits=("val",))


def test_extra_splits_are_evaluated_like_test():
    model, flat, theta0, dirs = setup(1)
    (x, y), (vx, vy), (tx, ty) = data(), data(20, 3), data(30, 2)
    reference = copy.deepcopy(model)
    ev = Evaluator(model, (x, y), test=(tx, ty), chunk_size=9, extra_splits={"val": (vx, vy)})
    assert ev.metric_names == ["train_loss", "train_acc", "test_loss", "test_acc", "val_loss", "val_acc"]
    point = theta0 + 0.3 * dirs[0]
    m = ev.evaluate_at(point, restore=True)
    for name, (xs, ys) in (("train", (x, y)), ("val", (vx, vy)), ("test", (tx, ty))):
        loss, acc, _ = naive_metrics(reference, point, xs, ys)
        assert m[f"{name}_loss"] == pytest.approx(loss, rel=1e-12) and m[f"{name}_acc"] == pytest.approx(acc)
    surface = ev.evaluate(theta0, dirs, [[0.0], [0.3]])
    assert surface["val_loss"][1] == pytest.approx(m["val_loss"], rel=1e-12)
    assert Evaluator(copy.deepcopy(reference), (x, y)).metric_names == ["train_loss", "train_acc"]
    for bad in ("test", "my val"):
        with pytest.raises(ValueError, match="must be an identifier other than train, test"):
            Evaluator(copy.deepcopy(reference), (x, y), test=(tx, ty), extra_splits={bad: (vx, vy)})


def test_bad_inputs_are_refused_with_clear_errors():
    model, flat, theta0, dirs = setup(2)
    x, y = data()
    ev = Evaluator(model, (x, y))
    with pytest.raises(ValueError, match="one column per direction"):
        ev.evaluate(theta0, dirs, [[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match="out of range"):
        ev.evaluate(theta0, dirs, [[0.1, 0.2]], indices=[3])
    with pytest.raises(ValueError, match="unknown BN policy"):
        Evaluator(model, (x, y), bn_policy="recompute")
    with pytest.raises(ValueError, match="same non-zero number"):
        Evaluator(model, (x, y[:5]))


# ---------------------------------------------------------------------- sharding over 2 processes


def _shard_worker(rank, world, port, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        model, flat, theta0, dirs = setup(2)
        ev = Evaluator(model, data(), test=data(30, 2), bn_policy="upbn", chunk_size=10)
        grid = grid2d((-1, 1, 4), (-0.5, 0.5, 3))
        res = ev.evaluate(theta0, dirs, grid)
        part = ev.evaluate(theta0, dirs, grid, indices=[1, 2, 5, 7, 11])
        passes = ev.forward_passes
        surf = compute_surface(ev, theta0, dirs, grid, f"{out_dir}/surface.h5", {"kind": "test"}, {"x": 1}, flush_every=2)
        np.savez(
            f"{out_dir}/rank{rank}.npz",
            passes=passes,
            restored=torch.equal(flat.get(), theta0),
            **{f"full_{k}": v for k, v in res.items()},
            **{f"part_{k}": v for k, v in part.items()},
            **{f"surf_{k}": v for k, v in surf.items()},
        )
    finally:
        dist.destroy_process_group()


def test_sharded_evaluation_on_two_processes_equals_single_process(tmp_path):
    torch.multiprocessing.spawn(_shard_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    model, flat, theta0, dirs = setup(2)
    ev = Evaluator(model, data(), test=data(30, 2), bn_policy="upbn", chunk_size=10)
    grid = grid2d((-1, 1, 4), (-0.5, 0.5, 3))
    single = ev.evaluate(theta0, dirs, grid)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    for r in ranks:
        assert bool(r["restored"])
        for k, v in single.items():
            np.testing.assert_allclose(r[f"full_{k}"], v, rtol=1e-12)  # every rank holds every point
            np.testing.assert_allclose(r[f"surf_{k}"], grid.reshape(v), rtol=1e-12)
            expect = np.full(12, np.nan)
            expect[[1, 2, 5, 7, 11]] = v[[1, 2, 5, 7, 11]]
            np.testing.assert_allclose(r[f"part_{k}"], expect, rtol=1e-12)
    # each rank evaluated only its share: 6 + 3 (or 2) points x (4 train + 3 test) chunks
    assert sorted(int(r["passes"]) for r in ranks) == [(6 + 2) * 7, (6 + 3) * 7]
    stored = load_store(tmp_path / "surface.h5")
    assert stored.complete and not list(tmp_path.glob("*.tmp"))
    np.testing.assert_allclose(stored.shaped("test_loss"), grid.reshape(single["test_loss"]), rtol=1e-12)


@pytest.mark.parametrize("classes", [2, 10, 100])
def test_summed_loss_and_hits_match_cross_entropy_and_argmax(classes):
    from lsx.landscape.engine.evaluator import summed_loss_and_hits

    g = torch.Generator().manual_seed(classes)
    logits = torch.randn(300, classes, generator=g) * 5
    logits[:20] = logits[:20].round()  # ties: the first maximum wins, as in argmax
    labels = torch.randint(0, classes, (300,), generator=g)
    loss, hits = summed_loss_and_hits(logits, labels)
    assert loss.dtype == torch.float64 and loss.dim() == 0
    ref = F.cross_entropy(logits.double(), labels, reduction="sum")
    assert abs(float(loss) - float(ref)) <= 1e-5 * float(ref)
    assert int(hits) == int((logits.argmax(1) == labels).sum())
    logits[3, 0] = float("nan")
    assert torch.isnan(summed_loss_and_hits(logits, labels)[0])  # a far point's overflow stays visible
