"""The n-wedge toy model (Fort & Jastrzebski 2019, Sec. 3): the loss itself and its three experiments."""

import math

import numpy as np
import pytest
import torch

from lsx.landscape.toy.wedges import WedgeLoss, hyperplane_success, radial_profile, random_rotation, two_optima_tunnel


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny batched problems: extra threads only contend with other processes (measured 70x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_wedge_loss_is_the_distance_to_the_nearest_axis_wedge():
    w = WedgeLoss(4, 2)
    p = torch.tensor([3.0, -1.0, 0.5, 2.0], dtype=torch.float64)
    assert float(w(p)) == pytest.approx(math.sqrt(1.0 + 0.25))  # the two smallest |P_i| are 1 and 0.5
    q = w.nearest_point(p)
    assert torch.allclose(q, torch.tensor([3.0, 0.0, 0.0, 2.0], dtype=torch.float64))
    assert float(w(q)) == 0.0
    assert float((p - q).norm()) == pytest.approx(float(w(p)))
    batch = torch.stack([p, q, 2 * p])
    assert torch.allclose(w(batch), torch.stack([w(p), w(q), 2 * w(p)]))  # batched and 1-homogeneous


def test_rotated_wedges_are_the_rotated_loss():
    D, n = 12, 4
    Q = random_rotation(D, seed=7)
    assert torch.allclose(Q @ Q.T, torch.eye(D, dtype=torch.float64), atol=1e-12)
    assert torch.equal(Q, random_rotation(D, seed=7)) and not torch.allclose(Q, random_rotation(D, seed=8))
    axis, rot = WedgeLoss(D, n), WedgeLoss(D, n, rotation_seed=7)
    c = torch.randn(5, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    P = c @ Q  # rows: Qᵀ c, so that Q P = c
    assert torch.allclose(rot(P), axis(c), atol=1e-12)
    near = rot.nearest_point(P)
    assert float(rot(near).abs().max()) < 1e-12
    assert torch.allclose((P - near).norm(dim=1), rot(P), atol=1e-12)
    basis = rot.wedge_basis(near[0])
    assert torch.allclose(basis.T @ basis, torch.eye(n, dtype=torch.float64), atol=1e-12)
    assert float(rot(near[0] + 3.0 * basis[:, 1])) < 1e-12  # moving inside the wedge keeps zero loss


def test_bad_wedge_dimensions():
    for D, n in [(10, 0), (10, 10), (1, 1), (10, 12)]:
        with pytest.raises(ValueError, match="1 <= n < D"):
            WedgeLoss(D, n)
    with pytest.raises(ValueError, match="last dimension"):
        WedgeLoss(5, 2)(torch.zeros(4))
    with pytest.raises(ValueError, match="every d in 1..D"):
        hyperplane_success(10, 3, [0, 4], trials=2, seed=0)


@pytest.mark.parametrize("D,n,rotation_seed", [(20, 5, None), (30, 20, 3)])
def test_random_hyperplane_optimisation_succeeds_iff_d_reaches_D_minus_n(D, n, rotation_seed):
    t = D - n
    dims = [t - 6, t - 3, t + 3, t + 5]
    res = hyperplane_success(D, n, dims, trials=8, seed=1, rotation_seed=rotation_seed, steps=800)
    rate = dict(zip(res["dims"].tolist(), res["success_rate"].tolist()))
    assert rate[t - 6] == 0.0 and rate[t - 3] <= 0.125
    assert rate[t + 3] >= 0.875 and rate[t + 5] == 1.0
    assert res["threshold_dim"] == t
    # below the threshold the plane misses every wedge: the loss only drops part of the way
    assert np.all(res["final_loss"][0] > 100 * res["tol"])
    assert np.all(res["final_loss"][-1] < res["tol"])
    assert res["final_loss"].shape == (4, 8)


def test_two_optima_tunnel_on_the_toy():
    res = two_optima_tunnel(20, 8, seed=2, num_segments=8, optimum_steps=600, connector_steps=300)
    assert np.all(res["optima_loss"] < 1e-3)
    lin, con = res["linear_loss"], res["connector_loss"]
    assert lin.max() > 0.5  # the straight line leaves the low-loss set
    assert con.max() < 1e-2 * lin.max()  # the connector stays on it
    assert not res["diverged"].any() and res["warnings"] == []
    # every node stayed on its hyperplane normal to the line
    pts, line = res["points"], res["line_points"]
    u = (pts[-1] - pts[0]) / np.linalg.norm(pts[-1] - pts[0])
    assert np.abs((pts - line) @ u).max() < 1e-10 * np.linalg.norm(pts, axis=1).max()
    cos = res["cosines"]
    assert cos.shape == (7, 7) and np.allclose(cos, cos.T) and np.allclose(np.diag(cos), 1.0)
    assert res["summary"]["two_block_contrast"] > 0  # each half leans towards its own endpoint's wedge


def test_radial_profile_looks_like_a_round_well():
    D, n = 30, 10
    res = radial_profile(D, n, seed=0, num_directions=25, distances=[0.0, 0.25, 0.5, 1.0])
    assert res["center_loss"] == 0.0
    assert res["losses"].shape == (25, 4)
    slope = res["mean"][1:] / res["distances"][1:]
    assert np.allclose(slope, res["expected_slope"], rtol=0.1)  # loss ≈ r·sqrt((D−n)/D) along any random u
    assert np.all(res["relative_spread"][1:] < 0.25)  # all random directions look alike...
    assert np.all(res["along_wedge"] == 0.0)  # ...although the wedge's own directions are flat
