"""Hessian toolkit against the exact Hessian of a tiny network and of quadratics."""

import numpy as np
import pytest
import torch
from torch import nn

from lsx.landscape.curvature.hessian import (
    count_short_directions,
    exact_hessian,
    hutchinson_trace,
    hvp_operator,
    krylov_size,
    slq_density,
    top_eigenpairs,
    trace_estimate,
)
from lsx.landscape.engine.flat import FlatParams, functional_loss


def tiny_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.randint(0, 2, (20,))
    flat = FlatParams(model)
    return functional_loss(model, flat, [(x, y)]), flat.get()


def quadratic(eigs, seed=0):
    n = len(eigs)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    H = q @ torch.diag(torch.as_tensor(eigs, dtype=torch.float64)) @ q.T
    return (lambda t: 0.5 * t @ H @ t), H


def test_hvp_and_eigsh_match_exact_hessian_of_a_network():
    f, th = tiny_problem()
    H = exact_hessian(f, th).numpy()
    op = hvp_operator(f, th)
    v = np.random.default_rng(0).standard_normal(th.numel())
    np.testing.assert_allclose(op.matvec(v), H @ v, rtol=1e-8, atol=1e-10)
    ev = np.linalg.eigvalsh(H)
    top = top_eigenpairs(f, th, 3, "LA", tol=0)
    bottom = top_eigenpairs(f, th, 2, "SA", tol=0)
    np.testing.assert_allclose(top.values, ev[::-1][:3], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.sort(bottom.values), ev[:2], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(H @ top.vectors[:, 0], top.values[0] * top.vectors[:, 0], atol=1e-7)


def test_l2_shifts_the_spectrum():
    f, H = quadratic([5.0, 1.0, 0.5, 0.1])
    th = torch.zeros(4, dtype=torch.float64)
    assert top_eigenpairs(f, th, 1, "LA", l2=0.3).values[0] == pytest.approx(5.3, rel=1e-5)
    assert top_eigenpairs(f, th, 1, "LA", l2=0.3, tol=0).values[0] == pytest.approx(5.3, rel=1e-9)


def test_trace_and_density_on_a_quadratic():
    eigs = [10.0, 4.0, 2.0, 1.5, 1.0, 0.5, 0.0, -1.0]
    f, H = quadratic(eigs)
    th = torch.zeros(len(eigs), dtype=torch.float64)
    mean, se = hutchinson_trace(f, th, 400, seed=1)
    assert abs(mean - sum(eigs)) < 4 * se + 0.5
    dens = slq_density(f, th, num_probes=3, lanczos_steps=8, seed=0)
    area = np.trapezoid(dens["density"], dens["grid"])
    assert area == pytest.approx(1.0, abs=0.02)
    assert np.allclose(np.sort(dens["nodes"][0].astype(float)), np.sort(eigs), atol=1e-6)  # Lanczos with n steps is exact


def test_short_directions_count_and_bad_inputs():
    f, H = quadratic([9.0, 8.0, 7.0, 0.1, 0.05, 0.01, 0.0, 0.0, 0.0, 0.0])
    th = torch.zeros(10, dtype=torch.float64)
    assert count_short_directions(f, th, threshold=1.0, k_max=9) == 3
    with pytest.raises(ValueError, match="must be in 1..9 for 10 parameters"):
        top_eigenpairs(f, th, 10)
    res = top_eigenpairs(*tiny_problem(), k=4, which="LA", maxiter=1)
    assert isinstance(res.converged, bool) and (res.converged or "did not converge" in res.message)


def test_default_top1_is_accurate_with_few_hessian_vector_products():
    # a Hessian-like spectrum: a few outliers above a bulk near zero
    eigs = [20.0, 9.0, 6.0] + list(np.linspace(-0.2, 1.0, 197))
    f, H = quadratic(eigs, seed=3)
    th = torch.zeros(len(eigs), dtype=torch.float64)
    res = top_eigenpairs(f, th, 1)
    assert res.converged
    assert res.values[0] == pytest.approx(20.0, rel=1e-5)  # the documented value tolerance
    v = torch.as_tensor(res.vectors[:, 0])
    assert float(v.norm()) == pytest.approx(1.0)
    # value error ≈ r²/gap ≤ 1e-5·λ, so the residual r is at most ~sqrt(1e-5·λ·gap) ≈ 0.05
    assert float(torch.linalg.norm(H @ v - res.values[0] * v)) <= 0.05
    assert res.matvecs < 21  # scipy's default basis of 20 vectors spends at least 21 products
    top3 = top_eigenpairs(f, th, 3)
    np.testing.assert_allclose(top3.values, [20.0, 9.0, 6.0], rtol=1e-5)


def test_krylov_size_is_small_for_the_top_and_default_for_the_bottom():
    assert krylov_size(1, 1000, "LA") == 4 and krylov_size(3, 1000, "LM") == 8 and krylov_size(3, 6, "LA") == 6
    assert krylov_size(2, 1000, "SA") is None
    f, _ = quadratic([3.0, 2.0, 1.0, 0.5])
    with pytest.raises(ValueError, match="ncv=2"):
        top_eigenpairs(f, torch.zeros(4, dtype=torch.float64), 2, ncv=2)


def test_adaptive_trace_stops_at_the_requested_standard_error():
    eigs = list(np.linspace(0.5, 3.0, 60))
    f, H = quadratic(eigs, seed=1)
    th = torch.zeros(60, dtype=torch.float64)
    est = trace_estimate(f, th, max_samples=500, rel_tol=0.02, seed=2)
    assert 10 <= est.samples < 500
    assert est.stderr <= 0.02 * abs(est.mean)
    assert abs(est.mean - sum(eigs)) < 5 * est.stderr
    fixed = trace_estimate(f, th, max_samples=25, seed=2)
    assert fixed.samples == 25
    capped = trace_estimate(f, th, max_samples=12, rel_tol=1e-9, seed=2)
    assert capped.samples == 12  # the cap holds when the target cannot be met
    assert hutchinson_trace(f, th, 500, seed=2, rel_tol=0.02) == (est.mean, est.stderr)
    with pytest.raises(ValueError, match="rel_tol"):
        trace_estimate(f, th, 10, rel_tol=0.0)
