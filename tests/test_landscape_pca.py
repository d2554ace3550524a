"""Trajectory PCA (Li Sec. 7) on synthetic trajectories with a known plane, and weight histograms (Li Fig. 3)."""

import numpy as np
import pytest
import torch
from torch import nn

from lsx.landscape.engine.flat import FlatParams
from lsx.landscape.surfaces.pca import trajectory_pca, variance_captured
from lsx.landscape.surfaces.weights import weight_histograms, weight_values


def basis(n_dim, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.linalg.qr(torch.randn(n_dim, k, generator=g, dtype=torch.float64))[0].T  # k orthonormal rows


def planar_trajectory(n=9, dim=60, seed=0):
    u, v, w = basis(dim, 3, seed)
    t = torch.linspace(0, 1, n, dtype=torch.float64)
    base = torch.randn(dim, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    traj = base + 3 * (1 - t)[:, None] * u + torch.sin(4 * t)[:, None] * v  # final point: base + sin(4)·v
    return traj, (u, v, w), t


def span_distance(dirs, plane):
    """Largest distance of a direction from span(plane) (0 when each direction lies in the plane)."""
    Q = torch.linalg.qr(torch.stack(plane).T)[0]
    d = torch.as_tensor(dirs)
    return float((d - (d @ Q) @ Q.T).norm(dim=1).max())


@pytest.mark.parametrize("center", [True, False])
def test_pca_recovers_a_known_plane(center):
    traj, (u, v, _), _ = planar_trajectory()
    flat = FlatParams(nn.Linear(60, 1, bias=False).double())
    pca = trajectory_pca(traj, flat, ignore="biasbn", center=center)
    assert pca.directions.shape == (2, 60)
    np.testing.assert_allclose(pca.directions @ pca.directions.T, np.eye(2), atol=1e-10)
    assert span_distance(pca.directions, (u, v)) < 1e-10
    assert pca.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-12)
    assert pca.explained_variance_2d == pytest.approx(1.0, abs=1e-10)
    assert np.max(pca.off_plane_distance) < 1e-10
    # coordinates reproduce the checkpoints: θ_i − θ_n = Σ_j c_ij d_j
    diffs = (traj - traj[-1]).numpy()
    np.testing.assert_allclose(pca.coords @ pca.directions, diffs, atol=1e-10)
    assert np.all(pca.coords[-1] == 0)


def test_pca_matches_sklearn_on_the_difference_matrix():
    from sklearn.decomposition import PCA

    traj = torch.randn(12, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64).cumsum(0)
    pca = trajectory_pca(traj, None, ignore="none", k=2, center=True)
    ref = PCA(n_components=2).fit((traj[:-1] - traj[-1]).numpy())  # what Li et al.'s code does
    np.testing.assert_allclose(pca.explained_variance_ratio[:2], ref.explained_variance_ratio_, rtol=1e-9)
    np.testing.assert_allclose(np.abs(pca.directions @ ref.components_.T), np.eye(2), atol=1e-9)


@pytest.mark.parametrize("center", [True, False])
def test_known_off_plane_component_is_measured(center):
    traj, (u, v, w), _ = planar_trajectory(n=11)
    diffs = traj - traj[-1]
    a, b = diffs[:-1] @ u, diffs[:-1] @ v  # in-plane coordinates of the 10 non-final checkpoints
    # an off-plane offset c_i·w with c orthogonal (over checkpoints) to 1, a and b: then w carries no
    # covariance with the plane, so the top-2 plane is still exactly span(u, v) and the distance off it is |c_i|
    B = torch.stack([torch.ones_like(a), a, b], 1)
    r = torch.randn(10, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    c = r - B @ torch.linalg.lstsq(B, r[:, None]).solution[:, 0]
    c = 0.2 * c / c.abs().max()
    bent = traj.clone()
    bent[:-1] += c[:, None] * w
    pca = trajectory_pca(bent, None, ignore="none", center=center, k=2)
    assert span_distance(pca.directions, (u, v)) < 1e-10
    np.testing.assert_allclose(pca.off_plane_distance, np.append(c.abs().numpy(), 0.0), atol=1e-12)
    rows = (bent - bent[-1])[:-1]
    rows = rows - rows.mean(0) if center else rows
    total = float((rows**2).sum())
    assert pca.explained_variance_ratio[2] == pytest.approx(float((c**2).sum()) / total, rel=1e-9)
    assert pca.explained_variance_2d == pytest.approx(1 - float((c**2).sum()) / total, rel=1e-9)


def test_ignore_biasbn_excludes_biases_and_bn():
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 2)).double()
    flat = FlatParams(model)
    g = torch.Generator().manual_seed(0)
    traj = torch.randn(6, flat.numel, generator=g, dtype=torch.float64).cumsum(0)
    pca = trajectory_pca(traj, flat, ignore="biasbn")
    skipped = flat.mask(["bias", "bn"]).numpy()
    assert np.all(pca.directions[:, skipped] == 0) and np.all(pca.mask == ~skipped)
    full = trajectory_pca(traj, flat, ignore="none")
    assert np.any(full.directions[:, skipped] != 0)


def test_three_checkpoints_with_centering_still_give_a_plane_through_the_path():
    traj, _, _ = planar_trajectory(n=3)
    pca = trajectory_pca(traj, None, ignore="none", center=True)
    assert pca.directions.shape == (2, 60)
    np.testing.assert_allclose(pca.directions @ pca.directions.T, np.eye(2), atol=1e-10)
    assert np.max(pca.off_plane_distance) < 1e-10
    assert pca.explained_variance_ratio[0] == pytest.approx(1.0) and pca.explained_variance_ratio[1] == 0


def test_pca_bad_inputs():
    traj, _, _ = planar_trajectory()
    with pytest.raises(ValueError, match="at least 3 checkpoints"):
        trajectory_pca(traj[:2], None, ignore="none")
    with pytest.raises(ValueError, match="needs the model's FlatParams"):
        trajectory_pca(traj, None, ignore="biasbn")
    with pytest.raises(ValueError, match="identical"):
        trajectory_pca(traj[:1].repeat(4, 1), None, ignore="none")
    line_traj = traj[-1] + torch.linspace(0, 1, 5, dtype=torch.float64)[:, None] * traj[0]
    with pytest.raises(ValueError, match="spans only 1"):
        trajectory_pca(line_traj, None, ignore="none", center=False)


def test_weight_histograms_share_edges_and_skip_biases():
    model = nn.Sequential(nn.Linear(20, 10), nn.BatchNorm1d(10), nn.Linear(10, 3))
    flat = FlatParams(model)
    small = flat.get()
    large = 3 * small
    large[flat.mask(["bias", "bn"])] = 100.0  # would dominate the range if biases/BN were counted
    h = weight_histograms({"small": small, "large": large}, flat, ignore="biasbn", bins=30)
    assert h.edges.shape == (31,) and h.edges[-1] < 100
    n_weights = int(flat.mask(["weight"]).sum())
    assert h.counts["small"].sum() == n_weights == h.stats["large"]["n"]
    for d in h.density.values():
        assert float((d * np.diff(h.edges)).sum()) == pytest.approx(1.0)
    assert h.stats["large"]["std"] == pytest.approx(3 * h.stats["small"]["std"], rel=1e-5)
    np.testing.assert_array_equal(weight_values(small, flat, "biasbn"), small[flat.mask(["weight"])].numpy())
    everything = weight_histograms([small], flat, ignore="none", bins=5)
    assert everything.stats["checkpoint 0"]["n"] == flat.numel
    with pytest.raises(ValueError, match="bins must be >= 1"):
        weight_histograms([small], flat, bins=0)


def test_variance_captured_by_pca_directions_equals_their_explained_variance():
    g = torch.Generator().manual_seed(3)
    traj = torch.cumsum(torch.randn(12, 200, generator=g, dtype=torch.float64), 0)  # a random walk: many directions
    pca = trajectory_pca(traj, ignore="none")
    assert variance_captured(traj, pca.directions) == pytest.approx(pca.explained_variance_2d, rel=1e-9)
    assert variance_captured(traj, pca.directions[:1]) == pytest.approx(pca.explained_variance_ratio[0], rel=1e-9)
    # a non-orthonormal basis of the same plane captures the same share
    mixed = np.stack([pca.directions[0] * 3 + pca.directions[1], pca.directions[1] * 0.5])
    assert variance_captured(traj, mixed) == pytest.approx(pca.explained_variance_2d, rel=1e-9)


def test_random_directions_capture_about_k_over_dim_of_a_planar_path():
    """Li Sec. 7.1: a random plane captures ~2/dim of a low-dimensional path's variance, the PCA plane all of it."""
    dim = 4000
    traj, _, _ = planar_trajectory(n=9, dim=dim)
    shares = [
        variance_captured(traj, torch.randn(2, dim, generator=torch.Generator().manual_seed(s), dtype=torch.float64))
        for s in range(40)
    ]
    assert np.mean(shares) == pytest.approx(2 / dim, rel=0.35)
    assert variance_captured(traj, trajectory_pca(traj, ignore="none").directions) == pytest.approx(1.0, abs=1e-10)
    # the mask restricts the entries (directions outside it count as zero there)
    mask = np.zeros(dim, dtype=bool)
    mask[: dim // 2] = True
    d = torch.zeros(1, dim, dtype=torch.float64)
    d[0, dim // 2] = 1.0
    with pytest.raises(ValueError, match="linearly dependent"):
        variance_captured(traj, d, mask=mask)
    with pytest.raises(ValueError, match="directions must be"):
        variance_captured(traj, torch.ones(2, dim + 1))
