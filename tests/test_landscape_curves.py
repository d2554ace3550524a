"""Xu et al.'s curve taxonomy on synthetic curves of every kind, with the minimum's position deciding."""
import numpy as np
import pytest

from lsx.landscape.surfaces.curves import classify_curve, extrema, minimum_position
from lsx.landscape.surfaces.stationary import count_stationary_points, stationary_points

LAM = np.linspace(-1, 1, 41)  # the paper's 41 points on [−s, s], s = 1
WIDE = np.linspace(-1, 2, 61)  # the independent-checkpoint window λ ∈ [−1, 2]


@pytest.mark.parametrize(
    "lams, y, kind",
    [
        (LAM, LAM**2, "v-basin"),
        (LAM, (LAM - 0.05) ** 2, "v-basin"),                      # minimum within the tolerance (0.1 · 1)
        (LAM, LAM + 2, "v-side"),                                  # monotone
        (LAM, (LAM - 0.5) ** 2, "v-side"),                         # minimum inside the window, off the point
        (LAM, (LAM + 0.3) ** 2, "v-side"),
        (LAM, (LAM**2 - 0.25) ** 2, "w-peak"),                     # the point on the peak between two basins
        (LAM, -(LAM**2), "w-peak"),                                # basins beyond the window's ends
        (LAM, -(LAM**2) * (1 + 1.5 * LAM), "w-peak"),            # one basin inside (left), one beyond the right end
        (LAM, LAM**2 * (1 - 1.5 * LAM), "w-basin"),              # the point in a basin, the other beyond the right end
        (LAM, (LAM - 0.05) ** 2 * (LAM + 0.7) ** 2, "w-basin"),    # two basins, the point in one
        (WIDE, WIDE**2 * (WIDE - 1) ** 2, "w-basin"),             # θ and an independent optimum at λ = 1
        (LAM, np.cos(12 * LAM) + 0.2 * LAM**2, "vvv-basin"),
        (LAM, -((LAM - 0.8) ** 2), "other"),                       # a peak, but not at the point
        (LAM, LAM**3 - 0.75 * LAM, "other"),                       # one basin and one peak, both off the point
        (LAM, (LAM - 0.3) ** 2 * (LAM + 0.9) ** 2, "w-basin"),     # two basins, the point on one's side
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
    y = LAM**4 + 1e-5 * (-1.0) ** np.arange(len(LAM))
    assert classify_curve(LAM, y) == "v-basin"
    assert count_stationary_points(y) > 1
    assert len(extrema(y, 0.0)[0]) > 1  # rel_prominence=0: the paper's strict count
    with pytest.raises(ValueError, match="same length"):
        classify_curve(LAM, y[:-1])


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
