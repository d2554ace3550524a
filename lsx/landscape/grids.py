"""Coordinates of 1D lines and 2D grids, validated once so every job fails the same clear way.

Layout convention (used by jobs and plots): a 2D grid's values are ``values[i_y, i_x]`` with
``x`` the first direction; points are listed row by row (``np.meshgrid(x, y)`` raveled), so
non-square grids never swap axes.
"""
from __future__ import annotations

import numpy as np


def linspace_axis(lo: float, hi: float, num: int, name: str = "range") -> np.ndarray:
    """``num`` evenly spaced coordinates on [lo, hi]; 0 at an endpoint is fine (e.g. α∈[0, 1])."""
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError(f"{name}: min and max must be finite, got [{lo}, {hi}]")
    if int(num) < 1:
        raise ValueError(f"{name}: num must be >= 1 (got {num}); e.g. {name}.num=21")
    if int(num) > 1 and not lo < hi:
        raise ValueError(f"{name}: empty range [{lo}, {hi}]; min must be < max")
    return np.linspace(lo, hi, int(num)) if int(num) > 1 else np.array([float(lo)])


def grid_points(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(len(y)·len(x), 2) coordinates, row-major over y, so ``values.reshape(len(y), len(x))``."""
    X, Y = np.meshgrid(np.asarray(x, float), np.asarray(y, float))
    return np.stack([X.ravel(), Y.ravel()], axis=1)
