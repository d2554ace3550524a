"""Xu et al.'s curve taxonomy on synthetic curves of every kind, with the minimum's position deciding."""

import numpy as np
import pytest

from lsx.landscape.surfaces.curves import classify_curve, curve_type_alternatives, extrema, minimum_position
from lsx.landscape.surfaces.stationary import count_stationary_points, stationary_points

LAM = np.linspace(-1, 1, 41)  # the paper's 41 points on [−s, s], s = 1
WIDE = np.linspace(-1, 2, 61)  # the independent-checkpoint window λ ∈ [−1, 2]


@pytest.mark.parametrize(
    "lams, y, kind",
    [
        (LAM, LAM**2, "v-basin"),
        (LAM, (LAM - 0.05) ** 2, "v-basin"),  # minimum within the tolerance (0.1 · 1)
        (LAM, LAM + 2, "v-side"),  # monotone
        (LAM, (LAM - 0.5) ** 2, "v-side"),  # minimum inside the window, off the point
        (LAM, (LAM + 0.3) ** 2, "v-side"),
        (LAM, (LAM**2 - 0.25) ** 2, "w-peak"),  # the point on the peak between two basins
        (LAM, -(LAM**2), "w-peak"),  # basins beyond the window's ends
        (LAM, -(LAM**2) * (1 + 1.5 * LAM), "w-peak"),  # one basin inside (left), one beyond the right end
        (LAM, LAM**2 * (1 - 1.5 * LAM), "w-basin"),  # the point in a basin, the other beyond the right end
        (LAM, (LAM - 0.05) ** 2 * (LAM + 0.7) ** 2, "w-basin"),  # two basins, the point in one
        (WIDE, WIDE**2 * (WIDE - 1) ** 2, "w-basin"),  # θ and an independent optimum at λ = 1
        (LAM, np.cos(12 * LAM) + 0.2 * LAM**2, "vvv-basin"),
        (LAM, -((LAM - 0.8) ** 2), "v-side"),  # a rim off the point: the point on its slope
        (LAM, LAM**3 - 0.75 * LAM, "v-side"),  # the point on the slope from a rim to a basin
        (LAM, -np.cos(5 * (LAM - 0.25)), "other"),  # two rims and a basin, none at the point
        (LAM, (LAM - 0.3) ** 2 * (LAM + 0.9) ** 2, "w-basin"),  # two basins, the point on one's side
        (WIDE, (WIDE + 0.3) ** 2 * (WIDE - 1.3) ** 2, "w-basin"),  # both minima beyond the two checkpoints
    ],
)
def test_classifier_on_synthetic_curves(lams, y, kind):
    assert classify_curve(lams, y) == kind


def test_tolerance_is_a_fraction_of_the_window():
    y = (LAM - 0.25) ** 2
    assert classify_curve(LAM, y) == "v-side"
    assert classify_curve(LAM, y, center_tol=0.3) == "v-basin"
    assert minimum_position(LAM, y) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="center_tol"):
        classify_curve(LAM, y, center_tol=0.0)
    with pytest.raises(ValueError, match="must contain"):
        classify_curve(LAM + 2, y)


def test_stationary_points_follow_the_papers_rule():
    y = np.array([3.0, 1.0, 2.0, 2.0, 0.0, 5.0])
    # (y_t − y_{t+1})(y_t − y_{t−1}) > 0: index 1 (min) and 4 (min); the plateau 2,2 is not stationary;
    # endpoints never count
    assert stationary_points(y).tolist() == [1, 4]
    assert count_stationary_points(np.cos(12 * LAM)) == 7


def test_noise_on_a_flat_bottom_is_not_a_basin_but_strict_counting_sees_it():
    # a flat bottom (|λ| ≤ 0.08, inside the tolerance) with float-rounding-size wiggles, 1e-6 of the loss
    lam = np.linspace(-1, 1, 201)
    y = 1.0 + np.clip(np.abs(lam) - 0.08, 0, None) ** 2 + 1e-6 * np.random.default_rng(0).standard_normal(len(lam))
    assert classify_curve(lam, y) == "v-basin"
    assert count_stationary_points(y) > 1
    assert len(extrema(y, 0.0)[0]) > 1  # rtol=0: the paper's strict count
    assert curve_type_alternatives(lam, y) != ["v-basin"]  # so the type rests on the filter: flagged
    with pytest.raises(ValueError, match="same length"):
        classify_curve(LAM, y[:-1])
    with pytest.raises(ValueError, match="rtol"):
        extrema(y, -1.0)


def _blow_up(lams, lo, hi, rate=20.0):
    """exp(rate · distance outside [lo, hi]) − 1: a curve reaching ~1e8 at the window's far ends (BN ResNet, No UpBN)."""
    return np.expm1(rate * (np.clip(lo - lams, 0, None) + np.clip(lams - hi, 0, None)))


def test_small_real_extrema_count_on_curves_that_reach_1e8():
    # the independent checkpoint's curve: a basin at θ (0.005), a hill (~52), a dip at λ = 1 (loss 5), 5e8 at λ = 2
    inner = np.clip(WIDE, 0, 1)
    y = 0.005 + 50 * np.sin(np.pi * inner) ** 2 + 5 * inner + _blow_up(WIDE, 0.0, 1.0)
    assert np.nanmax(y) > 1e8
    assert classify_curve(WIDE, y) == "w-basin" and curve_type_alternatives(WIDE, y) == ["w-basin"]
    assert len(extrema(y)[0]) == 2
    # the N.E. curve: λ = 0 a peak 4e-4 above two dips at ±0.1, on a loss of 0.2, the ends at 1e8
    lam = np.linspace(-1, 1, 41)
    y = 0.2 + 4e-4 * ((lam / 0.1) ** 2 - 1) ** 2 * (np.abs(lam) <= 0.1) + 4e-4 * (np.abs(lam) > 0.1) * (lam / 0.1) ** 2
    y = y - 4e-4 + _blow_up(lam, -0.5, 0.5, 40.0)
    assert np.nanmax(y) > 1e8 and classify_curve(lam, y) == "w-peak"
    assert curve_type_alternatives(lam, y) == ["w-peak"]


def test_a_type_decided_by_one_grid_step_is_flagged():
    y = (LAM - 0.1) ** 2  # the minimum exactly at the tolerance (0.1 of the half window): one grid step decides
    assert len(curve_type_alternatives(LAM, y)) == 2
    assert curve_type_alternatives(LAM, (LAM - 0.5) ** 2) == ["v-side"]
    assert curve_type_alternatives(LAM, LAM**2) == ["v-basin"]


def test_eigen_directions_are_unit_eigenvectors_ordered_from_the_extreme():
    import torch

    from lsx.landscape.surfaces.directions import hessian_eigen_directions, unit_direction

    A = torch.diag(torch.tensor([5.0, 2.0, 0.5, -0.3, -1.0], dtype=torch.float64))

    def f(t):
        return 0.5 * t @ A @ t

    theta = torch.zeros(5, dtype=torch.float64)
    pe, vals_pe, ok = hessian_eigen_directions(f, theta, 2, "LA")
    ne, vals_ne, _ = hessian_eigen_directions(f, theta, 2, "SA")
    assert ok and np.allclose(vals_pe, [5.0, 2.0]) and np.allclose(vals_ne, [-1.0, -0.3])
    assert torch.allclose(pe.norm(dim=1), torch.ones(2, dtype=torch.float64))
    assert abs(float(pe[0][0])) == pytest.approx(1.0) and abs(float(ne[0][4])) == pytest.approx(1.0)
    d = unit_direction(ne[0], 0.5)
    assert float(d.norm()) == pytest.approx(0.5) and float(d @ A @ d) / 0.25 == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="zero direction"):
        unit_direction(torch.zeros(3))
