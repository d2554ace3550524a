"""Coordinates of 1D lines, 2D grids and free point lists, validated once so every job fails the same clear way.

Layout convention (used by the engine, the stores, the jobs and the plots): a 2D grid's values are
``values[i_y, i_x]`` — rows follow ``y`` (the second direction), columns follow ``x`` (the first
direction), as ``np.meshgrid(x, y)`` and ``matplotlib.contour(x, y, values)`` expect. Points are listed
row by row (``i = i_y * len(x) + i_x``), so ``values_flat.reshape(len(y), len(x))`` is the grid, and a
non-square grid (e.g. 21 x 11) can never have its axes swapped silently: :class:`Grid` keeps both axis
vectors and checks every reshape against them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np


def _as_count(num: Any, name: str) -> int:
    if isinstance(num, bool) or not isinstance(num, numbers.Integral):
        if isinstance(num, numbers.Real) and float(num).is_integer():
            num = int(float(num))
        else:
            raise ValueError(f"{name}: num must be a positive integer, got {num!r}; e.g. {name}.num=21")
    if int(num) < 1:
        raise ValueError(f"{name}: num must be >= 1 (got {num}); e.g. {name}.num=21")
    return int(num)


def linspace_axis(lo: float, hi: float, num: int | float, name: str = "range") -> np.ndarray:
    """``num`` evenly spaced coordinates on [lo, hi], both ends included.

    0 at an endpoint is fine (e.g. α∈[0, 1] for an interpolation). ``num=1`` gives ``[lo]``.
    Raises ``ValueError`` for num < 1, non-finite bounds, or an empty range (min >= max).
    """
    num = _as_count(num, name)
    lo_f, hi_f = float(lo), float(hi)
    if not (np.isfinite(lo_f) and np.isfinite(hi_f)):
        raise ValueError(f"{name}: min and max must be finite, got [{lo}, {hi}]")
    if not lo_f < hi_f:
        raise ValueError(f"{name}: empty range [{lo}, {hi}]; min must be < max (e.g. {name}.min=-1 {name}.max=1)")
    return np.linspace(lo_f, hi_f, num) if num > 1 else np.array([lo_f])


def axis_from_spec(spec: Mapping[str, Any], name: str = "range") -> np.ndarray:
    """Coordinates of one axis from a ``{min, max, num}`` mapping (a config node)."""
    missing = [k for k in ("min", "max", "num") if k not in spec]
    if missing:
        raise ValueError(f"{name}: missing {', '.join(missing)}; an axis is {{min: -1.0, max: 1.0, num: 21}}")
    return linspace_axis(spec["min"], spec["max"], spec["num"], name=name)


def grid_points(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(len(y)·len(x), 2) coordinates, row-major over y, so ``values.reshape(len(y), len(x))``."""
    X, Y = np.meshgrid(np.asarray(x, float), np.asarray(y, float))
    return np.stack([X.ravel(), Y.ravel()], axis=1)


@dataclass(frozen=True, eq=False)
class Grid:
    """The points an analysis evaluates, and how their values are laid out.

    ``kind`` is ``"line"`` (one axis), ``"grid"`` (two axes, values[i_y, i_x]) or ``"points"`` (a free
    list, e.g. a PCA plane's irregular samples or a path). ``points`` is always ``(P, K)``: one row of
    coordinates per point, one column per direction.
    """

    kind: str
    points: np.ndarray
    axes: tuple[np.ndarray, ...] = ()
    axis_names: tuple[str, ...] = ()

    @property
    def num_points(self) -> int:
        return int(self.points.shape[0])

    @property
    def num_directions(self) -> int:
        return int(self.points.shape[1])

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one metric's values: (len(x),), (len(y), len(x)) or (P,)."""
        if self.kind == "line":
            return (len(self.axes[0]),)
        if self.kind == "grid":
            return (len(self.axes[1]), len(self.axes[0]))
        return (self.num_points,)

    @property
    def x(self) -> np.ndarray | None:
        return self.axes[0] if self.axes else None

    @property
    def y(self) -> np.ndarray | None:
        return self.axes[1] if len(self.axes) > 1 else None

    def reshape(self, values: np.ndarray) -> np.ndarray:
        """Per-point values (length P) laid out as :attr:`shape` (values[i_y, i_x] for a grid)."""
        values = np.asarray(values)
        if values.shape == self.shape:
            return values
        if values.size != self.num_points:
            raise ValueError(f"{values.size} values for a {self.kind} of {self.num_points} points {self.shape}")
        return values.reshape(self.shape)

    def index(self, i_x: int, i_y: int | None = None) -> int:
        """Row of ``points`` holding the grid point (x[i_x], y[i_y]) (or x[i_x] on a line)."""
        if self.kind == "line":
            return int(range(len(self.axes[0]))[i_x])
        if self.kind == "grid":
            if i_y is None:
                raise ValueError("a 2D grid point needs both i_x and i_y")
            return int(range(len(self.axes[1]))[i_y]) * len(self.axes[0]) + int(range(len(self.axes[0]))[i_x])
        return int(range(self.num_points)[i_x])


def line(lo: float, hi: float, num: int, name: str = "range") -> Grid:
    """A 1D line of ``num`` points on [lo, hi] along one direction."""
    x = linspace_axis(lo, hi, num, name)
    return Grid("line", x[:, None].copy(), (x,), (name,))


def grid2d(
    x_range: Sequence[float] | Mapping[str, Any],
    y_range: Sequence[float] | Mapping[str, Any],
    names: tuple[str, str] = ("x", "y"),
) -> Grid:
    """A 2D grid from two ``(min, max, num)`` ranges (tuples or ``{min, max, num}`` mappings).

    The x range belongs to the first direction, y to the second; values are ``[i_y, i_x]``.
    """
    axes = []
    for r, name in zip((x_range, y_range), names):
        if isinstance(r, Mapping):
            axes.append(axis_from_spec(r, name))
        else:
            r = tuple(r)
            if len(r) != 3:
                raise ValueError(f"{name}: a range is (min, max, num), got {r!r}")
            axes.append(linspace_axis(r[0], r[1], r[2], name))
    x, y = axes
    return Grid("grid", grid_points(x, y), (x, y), tuple(names))


def grid_from_axes(x: np.ndarray, y: np.ndarray | None = None, names: tuple[str, ...] = ("x", "y")) -> Grid:
    """A line (``y`` None) or grid from explicit, strictly increasing axis vectors."""
    axes = [np.asarray(x, dtype=np.float64)] + ([] if y is None else [np.asarray(y, dtype=np.float64)])
    for a, name in zip(axes, names):
        if a.ndim != 1 or a.size < 1:
            raise ValueError(f"{name}: an axis is a non-empty 1-D array, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: axis has non-finite values")
        if a.size > 1 and not np.all(np.diff(a) > 0):
            raise ValueError(f"{name}: axis values must be strictly increasing")
    if y is None:
        return Grid("line", axes[0][:, None].copy(), (axes[0],), names[:1])
    return Grid("grid", grid_points(*axes), tuple(axes), tuple(names[:2]))


def point_list(points: Any, num_directions: int | None = None) -> Grid:
    """An arbitrary list of points: a (P, K) array (a 1-D array means K=1)."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(f"points must be a non-empty (P, K) array of coordinates, got shape {p.shape}")
    if num_directions is not None and p.shape[1] != num_directions:
        raise ValueError(f"points have {p.shape[1]} coordinates each but there are {num_directions} directions")
    if not np.all(np.isfinite(p)):
        raise ValueError("points contain non-finite coordinates")
    return Grid("points", p)


def as_grid(coords: Any) -> Grid:
    """A :class:`Grid` unchanged, anything array-like as a point list."""
    return coords if isinstance(coords, Grid) else point_list(coords)
