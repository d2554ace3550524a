"""Low-loss 1-connectors and m-connectors (Fort & Jastrzebski 2019, Sec. 4.2-4.3) and short directions."""

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from lsx.landscape.engine.flat import FlatParams, functional_loss
from lsx.landscape.paths.connectors import (
    ConnectorWarning,
    as_step_loss,
    deviation_cosines,
    low_loss_connector,
    m_connector,
    orthonormal_span,
    short_directions_along_path,
    short_directions_vs_m,
)
from lsx.landscape.toy.wedges import WedgeLoss


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny problems: extra threads only contend with other processes."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _wedge_optima(wedge: WedgeLoss, count: int, seed: int) -> list[torch.Tensor]:
    """Points of different wedges: random far points moved onto their nearest wedge."""
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(count, wedge.D, generator=g, dtype=torch.float64) * 3.0
    return list(wedge.nearest_point(p))


def test_loss_forms_are_recognised():
    calls = []
    plain = lambda th: calls.append("plain") or th.sum()  # noqa: E731

    def stepped(theta, step):
        calls.append(step)
        return theta.sum()

    closure = lambda th, c=2.0: th.sum() * c  # noqa: E731  (a default that is not a step)

    def named(theta, step=0):
        calls.append(("named", step))
        return theta.sum()

    x = torch.ones(3)
    as_step_loss(plain)(x, 5)
    as_step_loss(stepped)(x, 5)
    assert float(as_step_loss(closure)(x, 5)) == 6.0
    as_step_loss(named)(x, 4)
    assert calls == ["plain", 5, ("named", 4)]
    with pytest.raises(ValueError, match="callable"):
        as_step_loss(3.0)


def test_connector_on_the_toy_tunnels_below_the_linear_path_and_stays_on_its_hyperplanes():
    wedge = WedgeLoss(16, 6, rotation_seed=1)
    a, b = _wedge_optima(wedge, 2, seed=0)
    res = low_loss_connector(wedge, a, b, num_segments=6, steps=300, lr=0.05, schedule="cosine", points_per_segment=2)
    assert res.linear["loss"].shape == res.connector["loss"].shape == (6 * 3 + 1,)
    assert res.points.shape == (7, 16) and list(res.node_index) == list(range(0, 19, 3))
    assert res.linear["loss"].max() > 1.0
    nodes = res.connector["loss"][res.node_index]
    assert nodes.max() < 1e-2 * res.linear["loss"].max()  # the optimised nodes are on the low-loss set
    # between nodes the straight segments are evaluated too (they may cross between wedges: reported, not hidden)
    assert np.all(np.isfinite(res.connector["loss"])) and res.connector["loss"].max() >= nodes.max()
    assert np.all(res.final_loss[1:-1] < res.start_loss[1:-1])
    assert torch.equal(res.points[0], a) and torch.equal(res.points[-1], b)
    # each node on the hyperplane through its line point, normal to b − a: checked independently
    u = (b - a) / (b - a).norm()
    offsets = (res.points - res.line_points) @ u
    assert float(offsets.abs().max()) < 1e-12 * float(res.points.norm(dim=1).max())
    assert np.all(res.constraint_residual < 1e-12 * float(res.points.norm(dim=1).max()))
    assert np.allclose(res.line_points[3].numpy(), (0.5 * (a + b)).numpy())
    assert res.summary["max_deviation"] > 0.1  # it really moved off the line
    assert not res.diverged.any() and res.warnings == []


def test_cosine_matrix_of_deviations():
    wedge = WedgeLoss(12, 4)
    a, b = _wedge_optima(wedge, 2, seed=3)
    res = low_loss_connector(wedge, a, b, num_segments=7, steps=150, lr=0.05, schedule="cosine")
    cos = res.cosines
    assert cos.shape == (6, 6)
    assert np.allclose(cos, cos.T) and np.allclose(np.diag(cos), 1.0)
    assert np.all(np.abs(cos) <= 1.0 + 1e-12)
    # the same matrix from the deviation vectors directly
    dev = (res.points - res.line_points)[1:-1].numpy()
    unit = dev / np.linalg.norm(dev, axis=1, keepdims=True)
    assert np.allclose(cos, unit @ unit.T, atol=1e-12)
    # a node that did not move has no direction: NaN, not a fake cosine
    line = torch.zeros(3, 4, dtype=torch.float64)
    pts = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0], [1.0, 1.0, 0, 0]], dtype=torch.float64)
    c, norms = deviation_cosines(pts, line)
    assert np.isnan(c[1]).all() and np.isnan(c[:, 1]).all()
    assert c[0, 2] == pytest.approx(1 / math.sqrt(2)) and c[0, 0] == 1.0 and norms[1] == 0.0


def _tiny_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(192, 6, generator=g)
    y = (x @ torch.randn(6, 3, generator=g)).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))
    flat = FlatParams(model)
    per_batch = [functional_loss(model, flat, [(x[i : i + 48], y[i : i + 48])]) for i in range(0, 192, 48)]
    full = functional_loss(model, flat, [(x, y)])

    def minibatch_loss(theta, step):
        return per_batch[step % len(per_batch)](theta)

    def predict(theta):
        return torch.func.functional_call(model, flat.unflatten(theta), (x,)).argmax(1)

    def train(seed):
        th = (torch.randn(flat.numel, generator=torch.Generator().manual_seed(seed)) * 0.5).requires_grad_(True)
        opt = torch.optim.Adam([th], lr=0.03)
        for s in range(250):
            opt.zero_grad()
            minibatch_loss(th, s).backward()
            opt.step()
        return th.detach()

    return flat, full, minibatch_loss, predict, train, y


def test_connector_on_a_network_with_minibatch_loss_and_hooks():
    flat, full, minibatch_loss, predict, train, y = _tiny_problem()
    a, b = train(1), train(2)
    seen = []
    metrics = lambda th: seen.append(1) or {"acc": float((predict(th) == y).float().mean()), "norm": float(th.norm())}  # noqa: E731
    res = low_loss_connector(
        minibatch_loss,
        a,
        b,
        num_segments=6,
        steps=100,
        lr=0.01,
        eval_loss_fn=full,
        metrics_fn=metrics,
        predict_fn=predict,
        points_per_segment=1,
    )
    n = 6 * 2 + 1
    assert len(seen) == 2 * n  # metrics at every point of both paths
    for path in (res.linear, res.connector):
        assert set(path) == {"loss", "metric/acc", "metric/norm", "agree_with_0", "agree_with_1"}
        assert all(v.shape == (n,) for v in path.values())
        assert path["agree_with_0"][0] == 1.0 and path["agree_with_1"][-1] == 1.0
        assert np.all((path["agree_with_0"] >= 0) & (path["agree_with_0"] <= 1))
    assert res.linear["loss"][0] == pytest.approx(float(full(a)))
    assert np.allclose(res.linear["metric/norm"][res.node_index], res.line_points.norm(dim=1).numpy(), rtol=1e-5)
    assert res.connector["loss"].max() < res.linear["loss"].max()
    u = (b - a) / (b - a).norm()
    assert float(((res.points - res.line_points) @ u).abs().max()) < 1e-5 * float(a.norm() + b.norm())  # float32


def test_m_connector_on_the_toy_lowers_hull_loss_inside_its_subspace():
    wedge = WedgeLoss(20, 8, rotation_seed=2)
    optima = _wedge_optima(wedge, 5, seed=1)
    res = m_connector(wedge, optima, m=3, num_samples=4, seed=0, steps=300, lr=0.05, schedule="cosine")
    assert res.m == 3 and res.weights.shape == (5, 4) and res.barycentre_index == 4
    assert np.allclose(res.weights.sum(1), 1.0) and np.all(res.weights >= 0)
    assert np.allclose(res.weights[-1], 0.25)
    assert np.all(res.optima_loss < 1e-12)
    assert res.loss_before.min() > 0.1
    assert np.all(res.loss_after < 1e-2 * res.loss_before)
    # the moves are orthogonal to span{θ_i − θ_0}, checked against a least-squares fit in that span
    span = torch.stack([o - optima[0] for o in optima[1:4]]).T.numpy()
    moves = (res.points_after - res.points_before).numpy().T
    coef = np.linalg.lstsq(span, moves, rcond=None)[0]
    assert np.abs(span @ coef).max() < 1e-10 * np.abs(res.points_after.numpy()).max()
    assert np.all(res.constraint_residual < 1e-12 * float(res.points_after.norm(dim=1).max()))
    assert np.linalg.norm(moves, axis=0).min() > 0.1
    again = m_connector(wedge, optima, m=3, num_samples=4, seed=0, steps=5)
    assert np.array_equal(again.weights, res.weights)  # seeded hull samples


def test_bad_inputs_raise_clear_errors():
    wedge = WedgeLoss(10, 3)
    a, b, c = _wedge_optima(wedge, 3, seed=0)
    with pytest.raises(ValueError, match="identical"):
        low_loss_connector(wedge, a, a.clone())
    with pytest.raises(ValueError, match="not the same architecture"):
        low_loss_connector(wedge, a, torch.zeros(11, dtype=torch.float64))
    with pytest.raises(ValueError, match="needs 4 optima, got 3"):
        m_connector(wedge, [a, b, c], m=3)
    with pytest.raises(ValueError, match="not the same architecture"):
        m_connector(wedge, [a, b, torch.zeros(12, dtype=torch.float64)])
    with pytest.raises(ValueError, match="affinely dependent"):
        m_connector(wedge, [a, b, b.clone()])
    with pytest.raises(ValueError, match="affinely dependent"):
        orthonormal_span(torch.stack([b - a, 2 * (b - a)]).T)
    with pytest.raises(ValueError, match="m must be >= 1"):
        m_connector(wedge, [a, b], m=0)
    with pytest.raises(ValueError, match="num_segments"):
        low_loss_connector(wedge, a, b, num_segments=1)
    with pytest.raises(ValueError, match="valid: adam"):
        low_loss_connector(wedge, a, b, optimizer="lbfgs2")
    with pytest.raises(ValueError, match="need 3 optima"):
        short_directions_vs_m(wedge, [a, b], threshold=1.0, k_max=3, max_m=2)


def test_divergence_is_flagged_and_warned_not_raised():
    a = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    b = torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64)

    def nan_after_three(theta, step):  # a minibatch-style loss that blows up on a bad batch
        bowl = ((theta - torch.tensor([1.0, 0.5, 0.0], dtype=theta.dtype)) ** 2).sum()
        return bowl * float("nan") if step >= 3 else bowl

    with pytest.warns(ConnectorWarning, match="connector node 1: diverged at step 3"):
        res = low_loss_connector(nan_after_three, a, b, num_segments=2, steps=10, lr=0.1)
    assert res.diverged.tolist() == [False, True, False]
    assert res.warnings and "not finite" in res.warnings[0]
    assert torch.isfinite(res.points).all()
    assert abs(float(res.points[1, 0]) - 1.0) < 1e-12  # the kept iterate is still on its hyperplane
    assert res.summary["num_diverged"] == 1

    steep = lambda th: 50.0 * (th[1:] ** 2).sum() + (th[0] - 1.0) ** 2  # SGD with lr 1 overshoots: |1 − 100| > 1  # noqa: E731
    c = torch.tensor([2.0, 0.1, 0.1], dtype=torch.float64)
    with pytest.warns(ConnectorWarning, match="x start loss"):
        res = low_loss_connector(steep, a + 0.1, c, num_segments=3, steps=20, lr=1.0, optimizer="sgd", divergence_factor=10)
    assert res.diverged[1:-1].all() and np.isfinite(res.final_loss).all()

    wedge = WedgeLoss(8, 2)
    optima = _wedge_optima(wedge, 3, seed=0)
    blowup = lambda th, step: wedge(th) * (1e6 if step >= 2 else 1.0)  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = m_connector(blowup, optima, num_samples=2, steps=5)
    assert res.diverged.all() and len(res.warnings) == 3
    assert sum(issubclass(w.category, ConnectorWarning) for w in caught) == 3


def _quadratic(D: int, big: list[float], small: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    eig = torch.full((D,), small, dtype=torch.float64)
    eig[: len(big)] = torch.tensor(big, dtype=torch.float64)
    A = q @ torch.diag(eig) @ q.T
    return lambda th: 0.5 * th @ A @ th


def test_short_directions_count_the_large_hessian_eigenvalues():
    D = 30
    loss = _quadratic(D, big=[5.0, 7.0, 9.0, 11.0, 13.0], small=0.01, seed=0)
    pts = torch.randn(4, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    along = short_directions_along_path(loss, pts, threshold=1.0, k_max=12)
    assert along["count"].tolist() == [5, 5, 5, 5] and not along["saturated"].any()
    assert short_directions_along_path(loss, pts[:1], threshold=8.0, k_max=12)["count"].tolist() == [3]
    capped = short_directions_along_path(loss, pts[:1], threshold=1.0, k_max=3)
    assert capped["count"].tolist() == [3] and capped["saturated"].all()
    with pytest.raises(ValueError, match="k_max"):
        short_directions_along_path(loss, pts[:1], threshold=1.0, k_max=D)

    optima = list(torch.randn(4, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    stepped = lambda th, step: loss(th)  # noqa: E731  (the step form is frozen at step 0 for the Hessian)
    res = short_directions_vs_m(stepped, optima, threshold=1.0, k_max=12, steps=20, lr=0.01)
    assert res["m"].tolist() == [1, 2, 3]
    assert res["count"].tolist() == [5, 5, 5] and int(res["count_at_optimum"]) == 5
    assert np.all(res["loss_after"] <= res["loss_before"])


def test_relative_short_threshold_scales_with_the_top_eigenvalue_and_hessians_use_their_own_loss():
    from lsx.landscape.paths.connectors import short_threshold

    D = 30
    loss = _quadratic(D, big=[5.0, 7.0, 9.0, 11.0, 13.0], small=0.01, seed=0)
    theta = torch.zeros(D, dtype=torch.float64)
    thr, lam = short_threshold(loss, theta, "relative", 0.5, seed=0)
    assert lam == pytest.approx(13.0, rel=1e-3) and thr == pytest.approx(6.5, rel=1e-3)
    assert short_directions_along_path(loss, theta[None], thr, k_max=12)["count"].tolist() == [4]  # 7, 9, 11, 13
    scaled = lambda th: 10.0 * loss(th)  # noqa: E731  (same landscape, 10x the scale: same relative count)
    thr10, _ = short_threshold(scaled, theta, "relative", 0.5)
    assert short_directions_along_path(scaled, theta[None], thr10, k_max=12)["count"].tolist() == [4]
    assert short_threshold(loss, theta, "absolute", 2.0) == (2.0, pytest.approx(float("nan"), nan_ok=True))
    with pytest.raises(ValueError, match="valid: relative, absolute"):
        short_threshold(loss, theta, "percent", 1.0)
    # the middles are optimized on one loss and counted on another (held-out data in the jobs)
    optima = list(torch.randn(3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    flat = _quadratic(D, big=[5.0], small=0.01, seed=0)
    res = short_directions_vs_m(loss, optima, threshold=1.0, k_max=12, steps=5, lr=0.01, hessian_loss_fn=flat)
    assert res["count"].tolist() == [1, 1] and int(res["count_at_optimum"]) == 1
    assert res["loss_mid"].shape == (2,) and float(res["loss_at_optimum"]) == pytest.approx(float(flat(optima[0])))


def test_short_directions_at_several_thresholds_share_one_eigenvalue_set():
    """Counts above every threshold come from the same Lanczos eigenvalues (quadratic: 5, 7, 9, 11, 13 and 0.01s)."""
    D = 30
    loss = _quadratic(D, big=[5.0, 7.0, 9.0, 11.0, 13.0], small=0.01, seed=0)
    pts = torch.randn(2, D, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    along = short_directions_along_path(loss, pts, threshold=8.0, k_max=12, more_thresholds=[1.0, 12.0])
    assert along["thresholds"].tolist() == [8.0, 1.0, 12.0]
    assert along["counts"].tolist() == [[3, 3], [5, 5], [1, 1]] and along["count"].tolist() == [3, 3]
    assert not along["saturated_by_threshold"].any()
    capped = short_directions_along_path(loss, pts[:1], threshold=8.0, k_max=4, more_thresholds=[1.0])
    assert capped["counts"].tolist() == [[3], [4]] and capped["saturated_by_threshold"].tolist() == [[False], [True]]
    optima = list(torch.randn(3, D, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    res = short_directions_vs_m(loss, optima, threshold=8.0, k_max=12, steps=5, lr=0.01, more_thresholds=[1.0])
    assert res["counts"].tolist() == [[3, 3], [5, 5]] and res["counts_at_optimum"].tolist() == [3, 5]
    assert res["count"].tolist() == [3, 3] and int(res["count_at_optimum"]) == 3
    with pytest.raises(ValueError, match="k_max"):
        short_directions_along_path(loss, pts[:1], threshold=1.0, k_max=D, more_thresholds=[2.0])
