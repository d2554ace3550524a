"""Li et al. Sec. 6 convexity map and the filter-normalized sharpness on functions with known curvature."""

import numpy as np
import pytest
import torch

from lsx.landscape.curvature.sharpness import (
    chaos_summary,
    convexity_ratio,
    filter_normalized_sharpness,
    principal_curvatures,
    strided_indices,
)

F64 = torch.float64


def _quadratic(eigs, seed=0):
    """½ θᵀAθ with A = Q diag(eigs) Qᵀ for a random rotation Q: the Hessian everywhere is A."""
    n = len(eigs)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=F64))
    a = q @ torch.diag(torch.tensor(eigs, dtype=F64)) @ q.T
    return lambda th: 0.5 * th @ a @ th


@pytest.mark.parametrize(
    "eigs, lo, hi",
    [
        ([1.0, 2.0, 4.0, 7.0, 10.0], 1.0, 10.0),  # convex bowl: λ_min ≥ 0.02 λ_max, SA fallback
        ([0.0, 1e-3, 3.0, 5.0, 10.0], 0.0, 10.0),  # flat direction
        ([-2.0, 1.0, 3.0, 6.0, 8.0], -2.0, 8.0),  # saddle: the shifted run finds λ_min
        ([-9.0, -1.0, 0.5, 2.0, 4.0], -9.0, 4.0),  # the largest-magnitude eigenvalue is negative
    ],
)
def test_principal_curvatures_of_a_quadratic(eigs, lo, hi):
    f = _quadratic(eigs)
    c = principal_curvatures(f, torch.full((len(eigs),), 0.3, dtype=F64), tol=1e-10)
    assert c.lambda_min == pytest.approx(lo, abs=1e-6) and c.lambda_max == pytest.approx(hi, abs=1e-6)
    assert c.ratio == pytest.approx(abs(lo / hi), abs=1e-6) and c.converged


def test_chaos_summary_counts_significant_negative_curvature():
    lo = np.array([1.0, -0.05, -0.5, -2.0, np.nan])
    hi = np.array([10.0, 10.0, 10.0, 4.0, 1.0])
    s = chaos_summary(lo, hi, threshold=0.1)
    assert s["points"] == 4
    assert s["nonconvex_fraction"] == pytest.approx(1 / 4)  # only |−2/4| = 0.5 > 0.1
    assert s["mean_negative_ratio"] == pytest.approx((0.005 + 0.05 + 0.5) / 4)
    assert s["max_ratio"] == pytest.approx(0.5)
    assert chaos_summary(lo, hi, threshold=0.01)["nonconvex_fraction"] == pytest.approx(2 / 4)
    # weights: a point standing for 3x the area counts 3x
    w = chaos_summary(lo, hi, 0.1, weights=[1, 1, 1, 3, 1])
    assert w["nonconvex_fraction"] == pytest.approx(3 / 6)
    assert chaos_summary([1.0, 2.0], [3.0, 4.0])["nonconvex_fraction"] == 0.0  # convex bowl: no chaos
    with pytest.raises(ValueError, match="must match"):
        chaos_summary([1.0], [1.0, 2.0])
    assert np.isnan(convexity_ratio(1.0, 0.0))


def test_strided_indices_keep_the_centre_and_the_stride():
    idx = strided_indices((5, 7), 2)
    rows, cols = sorted(set(idx // 7)), sorted(set(idx % 7))
    assert rows == [0, 2, 4] and cols == [1, 3, 5]
    assert len(strided_indices((3, 3), 1)) == 9
    with pytest.raises(ValueError, match="hessian_every"):
        strided_indices((3, 3), 0)


def test_filter_normalized_sharpness_of_a_quadratic_is_half_r2_dAd():
    eigs = [1.0, 4.0]
    f = _quadratic(eigs)
    theta = torch.zeros(2, dtype=F64)
    d1, d2 = torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    out = filter_normalized_sharpness(lambda pts: [float(f(theta + p)) for p in pts], float(f(theta)), [d1, d2], 0.5)
    a = torch.func.hessian(f)(theta)
    expected = [0.5 * 0.25 * float(d @ a @ d) for d in (d1, d2)]
    np.testing.assert_allclose(out["rises"], expected, rtol=1e-12)
    assert out["mean"] == pytest.approx(np.mean(expected))
    # the first-order term cancels: a linear tilt adds nothing
    g = lambda th: f(th) + 3.0 * th.sum()  # noqa: E731
    tilted = filter_normalized_sharpness(lambda pts: [float(g(theta + p)) for p in pts], float(g(theta)), [d1, d2], 0.5)
    assert tilted["mean"] == pytest.approx(out["mean"])
    with pytest.raises(ValueError, match="radius"):
        filter_normalized_sharpness(lambda pts: [0, 0], 0.0, [d1], 0.0)
