"""Curvature summaries of a minimizer: Li et al.'s convexity map and a filter-normalized sharpness.

- :func:`principal_curvatures`: the extreme Hessian eigenvalues (λ_min, λ_max) at a point, found as Li
  et al.'s code does (``min_max_hessian_eigs``): λ_max by Lanczos (largest magnitude), then the spectrum
  shifted by 0.51·λ_max so that the most negative eigenvalue becomes the largest in magnitude; when the
  shifted run lands on the positive end instead (λ_min ≥ 0.02·λ_max, a nearly convex point), the
  smallest eigenvalue is asked for directly (``SA``).
- :func:`convexity_ratio`: |λ_min/λ_max| (Li Sec. 6, Fig. 7's maps): ~0 where the surface is convex,
  large where negative curvature is significant. :func:`chaos_summary` turns a map into numbers.
- :func:`filter_normalized_sharpness`: the mean loss rise at radius r along several filter-normalized
  random directions (Li Sec. 5: sharpness is only comparable across minimizers under filter normalization).

All Hessian work goes through :mod:`lsx.landscape.curvature.hessian` (eigsh on an HVP operator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .hessian import top_eigenpairs

LossFn = Callable[[torch.Tensor], torch.Tensor]

#: Li et al.'s shift factor: eigenvalues of H − 0.51·λ_max·I are ≤ 0.49·λ_max on the positive side.
SHIFT = 0.51


@dataclass
class Curvatures:
    lambda_min: float
    lambda_max: float
    converged: bool
    matvecs: int

    @property
    def ratio(self) -> float:
        return convexity_ratio(self.lambda_min, self.lambda_max)


def principal_curvatures(
    loss_fn: LossFn, theta: torch.Tensor, tol: float = 1e-2, maxiter: int | None = None, seed: int = 0
) -> Curvatures:
    """(λ_min, λ_max) of the Hessian of ``loss_fn`` at θ (see the module docstring for the method)."""
    top = top_eigenpairs(loss_fn, theta, 1, "LM", tol=tol, maxiter=maxiter, seed=seed)
    lam_top = float(top.values[0]) if len(top.values) else float("nan")
    matvecs, ok = top.matvecs, top.converged
    if not np.isfinite(lam_top):
        return Curvatures(float("nan"), float("nan"), False, matvecs)
    if lam_top < 0:  # the largest-magnitude eigenvalue is negative: it is λ_min; λ_max comes from LA
        top_la = top_eigenpairs(loss_fn, theta, 1, "LA", tol=tol, maxiter=maxiter, seed=seed)
        return Curvatures(lam_top, float(top_la.values[0]), ok and top_la.converged, matvecs + top_la.matvecs)
    shift = SHIFT * lam_top
    low = top_eigenpairs(loss_fn, theta, 1, "LM", tol=tol, maxiter=maxiter, seed=seed, l2=-shift)
    matvecs += low.matvecs
    ok = ok and low.converged
    lam_low = float(low.values[0]) + shift if len(low.values) else float("nan")
    if not np.isfinite(lam_low) or float(low.values[0]) > 0:  # found the positive end: ask for SA directly
        sa = top_eigenpairs(loss_fn, theta, 1, "SA", tol=tol, maxiter=maxiter, seed=seed)
        lam_low, matvecs, ok = float(sa.values[0]), matvecs + sa.matvecs, ok and sa.converged
    return Curvatures(min(lam_low, lam_top), lam_top, ok, matvecs)


def convexity_ratio(lambda_min, lambda_max):
    """|λ_min/λ_max| (NaN where λ_max is 0 or not finite); works on scalars and arrays."""
    lo, hi = np.asarray(lambda_min, dtype=float), np.asarray(lambda_max, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where((hi != 0) & np.isfinite(hi) & np.isfinite(lo), np.abs(lo / np.where(hi != 0, hi, 1.0)), np.nan)
    return float(r) if r.ndim == 0 else r


def chaos_summary(
    lambda_min: np.ndarray, lambda_max: np.ndarray, threshold: float = 0.1, weights: np.ndarray | None = None
) -> dict[str, float]:
    """Numbers for a convexity map (Li Sec. 6): how much of the region has significant negative curvature.

    - ``nonconvex_fraction``: (weighted) fraction of points with λ_min < 0 and |λ_min/λ_max| > ``threshold``;
    - ``mean_negative_ratio``: (weighted) mean of |λ_min/λ_max| over points with λ_min < 0, 0 elsewhere
      (the map's "yellowness": 0 for a convex region);
    - ``max_ratio``; ``points`` (finite points used).
    ``weights`` (e.g. the area each strided point stands for) default to equal.
    """
    lo, hi = np.asarray(lambda_min, dtype=float).ravel(), np.asarray(lambda_max, dtype=float).ravel()
    if lo.shape != hi.shape:
        raise ValueError(f"lambda_min has {lo.size} points and lambda_max {hi.size}; they must match")
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    r = np.asarray(convexity_ratio(lo, hi), dtype=float).ravel()
    w = np.ones_like(r) if weights is None else np.asarray(weights, dtype=float).ravel()
    ok = np.isfinite(r) & (w > 0)
    if not ok.any():
        return {"nonconvex_fraction": float("nan"), "mean_negative_ratio": float("nan"), "max_ratio": float("nan"), "points": 0}
    r, lo, w = r[ok], lo[ok], w[ok] / w[ok].sum()
    neg = lo < 0
    return {
        "nonconvex_fraction": float(np.sum(w * (neg & (r > threshold)))),
        "mean_negative_ratio": float(np.sum(w * np.where(neg, r, 0.0))),
        "max_ratio": float(r.max()),
        "points": int(ok.sum()),
    }


def strided_indices(shape: tuple[int, int], every: int) -> np.ndarray:
    """Flat indices of a (ny, nx) grid at rows and columns 0, every, 2·every, … (the centre row/column kept).

    Why: a Hessian eigen-solve per grid point costs hundreds of forward-backward passes; a stride keeps the
    map affordable. Where the grid is odd-sized around 0 the centre is included whenever ``every`` divides
    the distance to it (the stride is anchored at the centre).
    """
    if int(every) < 1:
        raise ValueError(f"hessian_every must be >= 1, got {every}")
    ny, nx = shape
    rows = _anchored(ny, int(every))
    cols = _anchored(nx, int(every))
    return np.array([i * nx + j for i in rows for j in cols], dtype=int)


def _anchored(n: int, every: int) -> list[int]:
    c = n // 2
    return sorted({c - k for k in range(0, c + 1, every)} | {c + k for k in range(0, n - c, every)})


def filter_normalized_sharpness(
    losses_at: Callable[[torch.Tensor], Sequence[float]],
    base_loss: float,
    directions: Sequence[torch.Tensor],
    radius: float,
) -> dict[str, np.ndarray | float]:
    """Mean loss rise at ±radius along each direction: ½(L(θ+rd) + L(θ−rd)) − L(θ), then over directions.

    ``losses_at(points)`` evaluates the loss at a (k, numel) stack of points (the caller's evaluator);
    ``directions`` are already normalized (filter-wise for Li's measure). The antithetic pair cancels the
    first-order term, so a model that is not exactly at a minimum is not called sharp for its slope.
    Returns per-direction rises, their mean and standard error.
    """
    if not radius > 0:
        raise ValueError(f"sharpness radius must be > 0, got {radius}")
    if len(directions) < 1:
        raise ValueError("sharpness needs at least one direction")
    rises = []
    for d in directions:
        up, down = losses_at(torch.stack([d * radius, -d * radius]))
        rises.append(0.5 * (float(up) + float(down)) - float(base_loss))
    a = np.asarray(rises)
    return {"rises": a, "mean": float(a.mean()), "stderr": float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")}
