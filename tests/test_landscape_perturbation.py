"""Xu et al. Sec. 3 checks against analytic expectations on quadratics."""

import numpy as np
import pytest
import torch

from lsx.landscape.curvature.perturbation import descent_cosines, perturbation_loss_change, quadratic_model_along


def _quadratic(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    eig = torch.linspace(0.1, 3.0, n, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    H = q @ torch.diag(eig) @ q.T
    b = torch.randn(n, generator=g, dtype=torch.float64)
    return (lambda t: 0.5 * t @ H @ t + b @ t), H, b


def test_gaussian_directions_are_nearly_orthogonal_to_descent():
    f, H, b = _quadratic()
    cos = descent_cosines(f, torch.zeros(200, dtype=torch.float64), 300, seed=1)
    assert abs(cos.mean()) < 0.02 and cos.std() == pytest.approx(1 / np.sqrt(200), rel=0.2)


def test_mean_loss_change_is_half_sigma2_trace():
    f, H, b = _quadratic()
    theta = -torch.linalg.solve(H, b)  # the minimum: no first-order term
    res = perturbation_loss_change(f, theta, [0.01, 0.02], samples=200, seed=0, trace_samples=50)
    exact = 0.5 * np.array([0.01, 0.02]) ** 2 * float(torch.trace(H))
    np.testing.assert_allclose(res["mean"], exact, rtol=0.1)
    np.testing.assert_allclose(res["predicted_mean"], exact, rtol=0.15)


def test_second_order_model_is_exact_on_a_quadratic():
    f, H, b = _quadratic(50)
    d = torch.randn(50, dtype=torch.float64)
    res = quadratic_model_along(f, torch.ones(50, dtype=torch.float64), d, np.linspace(-1, 1, 7))
    np.testing.assert_allclose(res["true"], res["quadratic"], rtol=1e-9)
    with pytest.raises(ValueError, match="entries"):
        quadratic_model_along(f, torch.ones(50, dtype=torch.float64), d[:3], [0.0])
