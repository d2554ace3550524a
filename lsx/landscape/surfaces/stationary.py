"""Stationary points of a sampled 1-D curve, counted as in Xu et al. (Sec. 2).

A sample t is stationary when (y_t − y_{t+1})·(y_t − y_{t−1}) > 0, i.e. it is a strict
local minimum or maximum of the sampled curve; the two endpoints are never counted.
NaN samples (diverged far points) break the comparison and are never stationary.
"""

from __future__ import annotations

import numpy as np


def stationary_points(y: np.ndarray) -> np.ndarray:
    """Indices of interior strict local extrema of ``y``."""
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"expected a 1-D curve, got shape {y.shape}")
    if y.size < 3:
        return np.zeros(0, dtype=int)
    mid, left, right = y[1:-1], y[:-2], y[2:]
    with np.errstate(invalid="ignore"):
        ok = (mid - right) * (mid - left) > 0
    return np.nonzero(ok)[0] + 1


def count_stationary_points(y: np.ndarray) -> int:
    """Number of interior strict local extrema of ``y``."""
    return int(stationary_points(y).size)


def local_minima(y: np.ndarray) -> np.ndarray:
    """Indices of interior strict local minima of ``y``."""
    y = np.asarray(y, dtype=float)
    idx = stationary_points(y)
    return idx[y[idx] < y[idx - 1]]


def local_maxima(y: np.ndarray) -> np.ndarray:
    """Indices of interior strict local maxima of ``y``."""
    y = np.asarray(y, dtype=float)
    idx = stationary_points(y)
    return idx[y[idx] > y[idx - 1]]
