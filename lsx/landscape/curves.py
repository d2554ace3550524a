"""The Xu et al. taxonomy of 1D loss curves: v-basin, v-side, w-basin, w-peak, vvv-basin.

Classification uses the curve's interior extrema, counted with a prominence tolerance so that
float noise on a flat bottom does not create spurious basins (scipy.signal.find_peaks):
- no extremum: **v-side** (monotone on the window: the point sits on a slope);
- one minimum, no maximum: **v-basin** (one basin around the point);
- two minima with a maximum between them: **w-peak** when that maximum is the extremum closest
  to λ=0 (the point sits on the peak between two basins), else **w-basin** (two basins, e.g.
  the path to an independently trained checkpoint);
- a single maximum closest to λ=0 and no interior minimum: **w-peak** as well (the two basins lie at
  or beyond the ends of the window);
- three or more minima: **vvv-basin**;
- anything else (e.g. a single maximum away from λ=0): **other**.
Strict counting without tolerance (as in Xu et al.'s stationary points) is
:func:`lsx.landscape.stationary.count_stationary_points`.
"""
from __future__ import annotations

import numpy as np
from scipy.signal import find_peaks

CURVE_TYPES = ("v-basin", "v-side", "w-basin", "w-peak", "vvv-basin", "other")


def extrema(y: np.ndarray, rel_prominence: float = 0.005) -> tuple[np.ndarray, np.ndarray]:
    """Indices of interior minima and maxima whose prominence is ≥ rel_prominence · (max − min)."""
    y = np.asarray(y, dtype=float)
    finite = y[np.isfinite(y)]
    if finite.size < 3:
        return np.zeros(0, int), np.zeros(0, int)
    span = float(finite.max() - finite.min())
    if span == 0:
        return np.zeros(0, int), np.zeros(0, int)
    yy = np.where(np.isfinite(y), y, finite.max())
    prom = rel_prominence * span
    maxima, _ = find_peaks(yy, prominence=prom)
    minima, _ = find_peaks(-yy, prominence=prom)
    return minima, maxima


def classify_curve(lams: np.ndarray, losses: np.ndarray, rel_prominence: float = 0.005) -> str:
    """One of :data:`CURVE_TYPES` for the curve L(θ + λd) sampled at ``lams``."""
    lams = np.asarray(lams, dtype=float)
    losses = np.asarray(losses, dtype=float)
    if lams.shape != losses.shape or lams.ndim != 1:
        raise ValueError(f"lams and losses must be 1-D arrays of the same length, got {lams.shape} and {losses.shape}")
    mins, maxs = extrema(losses, rel_prominence)
    if len(mins) == 0 and len(maxs) == 0:
        return "v-side"
    if len(mins) == 1 and len(maxs) == 0:
        return "v-basin"
    if len(mins) >= 3:
        return "vvv-basin"
    centre = int(np.argmin(np.abs(lams)))
    if len(mins) == 0 and len(maxs) == 1:
        lo, hi = centre - max(1, len(lams) // 10), centre + max(1, len(lams) // 10)
        return "w-peak" if lo <= maxs[0] <= hi else "other"
    if len(mins) == 2 and len(maxs) >= 1:
        between = [m for m in maxs if mins[0] < m < mins[1]]
        if between:
            closest = min(list(mins) + list(maxs), key=lambda i: abs(i - centre))
            return "w-peak" if closest in between else "w-basin"
    return "other"
