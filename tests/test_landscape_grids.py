"""Coordinate arrays: validation, non-square layout values[i_y, i_x], lines with 0 at an endpoint, point lists."""

import numpy as np
import pytest

from lsx.landscape.engine.grids import axis_from_spec, grid2d, grid_from_axes, line, linspace_axis, point_list


def test_axis_validation_messages():
    with pytest.raises(ValueError, match="analysis.x: num must be >= 1"):
        linspace_axis(-1, 1, 0, "analysis.x")
    with pytest.raises(ValueError, match="num must be a positive integer"):
        linspace_axis(-1, 1, 2.5)
    with pytest.raises(ValueError, match="empty range"):
        linspace_axis(1, 1, 5)
    with pytest.raises(ValueError, match="min must be < max"):
        linspace_axis(2, 1, 5)
    with pytest.raises(ValueError, match="finite"):
        linspace_axis(-np.inf, 1, 5)
    with pytest.raises(ValueError, match="missing num"):
        axis_from_spec({"min": 0, "max": 1}, "analysis.alpha")
    assert linspace_axis(0, 1, 3).tolist() == [0, 0.5, 1]
    assert linspace_axis(-1, 0, 3).tolist() == [-1, -0.5, 0]
    assert linspace_axis(-1, 1, 1).tolist() == [-1]
    assert axis_from_spec({"min": 0, "max": 1, "num": 5}).tolist() == [0, 0.25, 0.5, 0.75, 1]


def test_non_square_grid_layout_is_values_iy_ix():
    g = grid2d((-1, 1, 21), {"min": 0, "max": 1, "num": 11})
    assert g.shape == (11, 21) and g.points.shape == (231, 2)
    assert len(g.x) == 21 and len(g.y) == 11
    f = g.points[:, 0] + 10 * g.points[:, 1]  # a function whose value tells x and y apart
    v = g.reshape(f)
    for i_y in (0, 4, 10):
        for i_x in (0, 7, 20):
            assert v[i_y, i_x] == pytest.approx(g.x[i_x] + 10 * g.y[i_y])
            assert tuple(g.points[g.index(i_x, i_y)]) == (g.x[i_x], g.y[i_y])
    with pytest.raises(ValueError, match="231 points"):
        g.reshape(np.zeros(230))


def test_line_points_and_explicit_axes():
    ln = line(0.0, 1.0, 5, "alpha")
    assert ln.shape == (5,) and ln.points.shape == (5, 1) and ln.points[0, 0] == 0.0 and ln.axis_names == ("alpha",)
    g = grid_from_axes(np.array([0.0, 0.5, 2.0]), np.array([-1.0, 1.0]))
    assert g.shape == (2, 3)
    with pytest.raises(ValueError, match="strictly increasing"):
        grid_from_axes(np.array([0.0, 0.0, 1.0]))
    p = point_list([[0.1, 0.2], [0.3, -0.4], [5.0, 5.0]])
    assert p.kind == "points" and p.shape == (3,)
    assert point_list([0.0, 1.0]).points.shape == (2, 1)
    with pytest.raises(ValueError, match="3 directions"):
        point_list([[0.1, 0.2]], num_directions=3)
    with pytest.raises(ValueError, match="non-empty"):
        point_list(np.zeros((0, 2)))
