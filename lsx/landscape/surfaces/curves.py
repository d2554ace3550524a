"""The Xu et al. taxonomy of 1D loss curves: v-basin, v-side, w-basin, w-peak, vvv-basin.

Extrema are the paper's stationary points (:func:`lsx.landscape.surfaces.stationary.stationary_points`:
(y_t − y_{t+1})(y_t − y_{t−1}) > 0, endpoints excluded; Xu et al. App. A.3). Of these, the ones whose
prominence is below ``rtol`` · |y| *at the extremum itself* are dropped: float rounding of a mean loss
(float32, ~1e-6 relative) can make a flat stretch wiggle, but an extremum 1e-4 of its own loss deep is
real. The criterion is local on purpose: an earlier rule (prominence < 0.5% of the curve's max − min)
hid real extrema whenever the window's far ends blew up (a BN ResNet's curves reach 1e8 there).
Prominence is scipy's (the drop to the higher of the two bases that separate the extremum from a
lower/higher point), so it too is set by the neighbourhood, never by the window's ends.
``rtol=0`` keeps every stationary point: the paper's strict count.

:func:`curve_type_alternatives` says whether a type rests on one grid step or on the filter: the types
the curve gets with the filter off (the strict count) and with the "at the point" tolerance moved by one
grid step either way. A claim built on a curve with more than one alternative is inconclusive by rule.

The type then depends on *where* the extrema lie relative to the studied point λ = 0. "At the point"
means within ``center_tol`` · h of it, h being the window's half-length ((λ_last − λ_first)/2; 0.1 by
default, i.e. 2 grid steps of the paper's 41 points on [−s, s]):
- no extremum: **v-side** (monotone on the window: the point sits on a slope);
- one minimum and no maximum: **v-basin** when the minimum is at the point, else **v-side** (the
  basin's bottom is inside the window but the point sits on its side);
- two minima with a maximum between them: **w-peak** when that maximum is at the point (the point
  sits on the peak between two basins), else **w-basin** (two basins, the point in one of them — at its
  bottom or on its side, as the paper has no "w-side" — e.g. the path to an independently trained
  checkpoint, whose minima lie beyond both end points when the two models are not fully trained);
- a single maximum at the point with no interior minimum, or with one minimum on one side: **w-peak** as
  well (a basin lies at or beyond an end of the window);
- one minimum at the point and one maximum off it: **w-basin** (the second basin lies beyond that end);
- one maximum off the point and at most one minimum, also off it: **v-side** (the point sits on a slope
  between a rim and a valley; the paper's Fig. 4 v-side curves rise to such a rim beyond the point, e.g.
  an MLP at initialization along the direction to its trained checkpoint);
- three or more minima: **vvv-basin**;
- anything else (e.g. two maxima and one minimum): **other**.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import peak_prominences

from .stationary import local_maxima, local_minima

CURVE_TYPES = ("v-basin", "v-side", "w-basin", "w-peak", "vvv-basin", "other")
RTOL = 1e-4  # an extremum at least this fraction of its own loss deep (prominence) is real


def _prominent(y: np.ndarray, idx: np.ndarray, level: np.ndarray, rtol: float) -> np.ndarray:
    if idx.size == 0 or rtol <= 0:
        return idx
    p, _, _ = peak_prominences(y, idx)
    return idx[p >= rtol * np.abs(level[idx])]


def extrema(y: np.ndarray, rtol: float = RTOL) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the stationary minima and maxima whose prominence is ≥ ``rtol`` · |y| at the extremum.

    Non-finite samples (diverged far points) are treated as the curve's largest finite value."""
    if not 0 <= rtol < 1:
        raise ValueError(f"rtol must be in [0, 1) (a fraction of the loss at the extremum), got {rtol}")
    y = np.asarray(y, dtype=float)
    finite = y[np.isfinite(y)]
    if finite.size < 3 or float(finite.max() - finite.min()) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    yy = np.where(np.isfinite(y), y, finite.max())
    return _prominent(-yy, local_minima(yy), yy, rtol), _prominent(yy, local_maxima(yy), yy, rtol)


def _check(lams: np.ndarray, losses: np.ndarray, center_tol: float) -> None:
    if lams.shape != losses.shape or lams.ndim != 1:
        raise ValueError(f"lams and losses must be 1-D arrays of the same length, got {lams.shape} and {losses.shape}")
    if not 0 < center_tol < 1:
        raise ValueError(f"center_tol must be in (0, 1) (a fraction of the window's half-length), got {center_tol}")
    if lams.size and not lams[0] <= 0 <= lams[-1]:
        raise ValueError(f"the window [{lams[0]}, {lams[-1]}] must contain the studied point λ = 0")


def classify_curve(lams: np.ndarray, losses: np.ndarray, rtol: float = RTOL, center_tol: float = 0.1) -> str:
    """One of :data:`CURVE_TYPES` for the curve L(θ + λd) sampled at ``lams`` (θ is λ = 0)."""
    lams = np.asarray(lams, dtype=float)
    losses = np.asarray(losses, dtype=float)
    _check(lams, losses, center_tol)
    mins, maxs = extrema(losses, rtol)
    tol = center_tol * (lams[-1] - lams[0]) / 2 if lams.size else 0.0
    return _type(lams, losses, mins, maxs, tol)


def _type(lams: np.ndarray, losses: np.ndarray, mins: np.ndarray, maxs: np.ndarray, tol: float) -> str:
    def at_point(i: int) -> bool:
        return abs(lams[i]) <= tol

    if len(mins) >= 3:
        return "vvv-basin"
    if len(maxs) == 0:
        if len(mins) == 0:
            return "v-side"
        if len(mins) == 1:
            return "v-basin" if at_point(mins[0]) else "v-side"
    if len(mins) <= 1 and len(maxs) == 1:
        if at_point(maxs[0]):
            return "w-peak"
        if len(mins) == 1 and at_point(mins[0]):
            return "w-basin"
        return "v-side"  # no extremum at the point: it sits on a slope, a rim (and a basin) off it
    if len(mins) == 2:
        # the separating maximum (a two-sample plateau is not a strict stationary point, but separates)
        between = [m for m in maxs if mins[0] < m < mins[1]] or [mins[0] + int(np.argmax(losses[mins[0] : mins[1] + 1]))]
        return "w-peak" if any(at_point(m) for m in between) else "w-basin"
    return "other"


def curve_type_alternatives(lams: np.ndarray, losses: np.ndarray, rtol: float = RTOL, center_tol: float = 0.1) -> list[str]:
    """The distinct types of the curve under the default, the strict count (``rtol=0``) and the "at the
    point" tolerance moved by one grid step either way (sorted; one entry: the type is robust)."""
    lams = np.asarray(lams, dtype=float)
    losses = np.asarray(losses, dtype=float)
    _check(lams, losses, center_tol)
    if lams.size < 2:
        return [classify_curve(lams, losses, rtol, center_tol)]
    half = (lams[-1] - lams[0]) / 2
    step = float(np.max(np.diff(lams)))
    tols = [max(center_tol * half + d * step, 0.0) for d in (-1, 0, 1)]
    out = {_type(lams, losses, *extrema(losses, r), t) for r in (rtol, 0.0) for t in tols}
    return sorted(out)


def minimum_position(lams: np.ndarray, losses: np.ndarray) -> float:
    """λ of the lowest finite sample: where the curve's minimum lies relative to the point (λ = 0)."""
    losses = np.asarray(losses, dtype=float)
    if not np.isfinite(losses).any():
        return float("nan")
    return float(np.asarray(lams, dtype=float)[np.nanargmin(np.where(np.isfinite(losses), losses, np.nan))])
