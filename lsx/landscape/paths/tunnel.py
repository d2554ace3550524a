"""Radial tunnel width (Fort & Jastrzebski 2019, Sec. 4.4): how far one can move from an optimum.

Along K random unit directions u_k, find the distance r_k at which the training loss first
exceeds a threshold — by geometric bracketing (double the step until the loss is above the
threshold) and bisection to a relative tolerance, not by a fixed grid, so each direction costs
~log2(max/initial) + log2(1/tol) loss evaluations. The angular width is r_k / ‖θ‖.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from ..engine.memo import Memo, compute_now
from ..surfaces.directions import random_unit_direction

THRESHOLD_MODES = ("absolute", "relative_factor", "relative_delta")
ANGLES = ("arctan", "ratio")


def angular_width(distance: np.ndarray | float, theta_norm: float, angle: str = "arctan") -> np.ndarray:
    """The angle (radians) under which distance r is seen from the origin at radius ‖θ‖."""
    if angle not in ANGLES:
        raise ValueError(f"unknown angle {angle!r}; valid: {', '.join(ANGLES)}")
    if not theta_norm > 0:
        raise ValueError(f"‖θ‖ must be > 0 for an angular width, got {theta_norm}")
    r = np.asarray(distance, dtype=float) / theta_norm
    return np.arctan(r) if angle == "arctan" else r


def threshold_value(mode: str, value: float, base_loss: float) -> float:
    """The loss level that ends the tunnel: absolute, factor × L(θ), or L(θ) + delta."""
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"unknown threshold mode {mode!r}; valid: {', '.join(THRESHOLD_MODES)}")
    t = {"absolute": value, "relative_factor": value * base_loss, "relative_delta": base_loss + value}[mode]
    if not t > base_loss:
        raise ValueError(f"threshold {t:.6g} ({mode}={value}) is not above the loss at the optimum L(θ)={base_loss:.6g}")
    return float(t)


@dataclass
class RadialResult:
    distance: float  # first distance where loss > threshold (NaN when not reached)
    reached: bool
    evaluations: int
    bracket: tuple[float, float]


def radial_distance(
    loss_at: Callable[[float], float],
    threshold: float,
    initial_step: float,
    max_distance: float,
    rtol: float = 1e-3,
) -> RadialResult:
    """First r in (0, max_distance] with loss_at(r) > threshold, by doubling then bisection.

    ``loss_at(0)`` is assumed below the threshold; NaN/inf losses count as above it (divergence).
    Returns the upper end of the final bracket [lo, hi] with (hi − lo) ≤ rtol·hi.
    """
    if initial_step <= 0 or max_distance <= 0 or rtol <= 0:
        raise ValueError(f"initial_step, max_distance and rtol must be > 0 (got {initial_step}, {max_distance}, {rtol})")
    above = lambda r: not (loss_at(r) <= threshold)  # noqa: E731  (NaN counts as above)
    n, lo, hi = 0, 0.0, float(initial_step)
    while True:
        n += 1
        if above(min(hi, max_distance)):
            hi = min(hi, max_distance)
            break
        lo = min(hi, max_distance)
        if lo >= max_distance:
            return RadialResult(float("nan"), False, n, (lo, float("inf")))
        hi *= 2.0
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        n += 1
        if above(mid):
            hi = mid
        else:
            lo = mid
    return RadialResult(hi, True, n, (lo, hi))


@dataclass
class TunnelWidth:
    distances: np.ndarray  # (K,) r_k, NaN where not reached
    angular: np.ndarray  # (K,) arctan(r_k/‖θ‖) or r_k/‖θ‖ (``angle``)
    reached: np.ndarray  # (K,) bool
    evaluations: int
    theta_norm: float
    base_loss: float
    threshold: float
    angle: str = "arctan"
    summary: dict[str, float] = field(default_factory=dict)


def tunnel_width(
    loss_fn: Callable[[torch.Tensor], float],
    theta: torch.Tensor,
    num_directions: int,
    seed: int,
    threshold_mode: str = "relative_delta",
    threshold: float = 1.0,
    initial_step: float | None = None,
    max_distance: float | None = None,
    rtol: float = 1e-3,
    mask: torch.Tensor | None = None,
    memo: Memo = compute_now,
    progress: bool = False,
    angle: str = "arctan",
    orthogonal: bool = True,
) -> TunnelWidth:
    """Width of the low-loss tunnel around θ along ``num_directions`` random unit directions.

    ``mask`` (bool, same size as θ) restricts directions to some entries (e.g. weights only);
    defaults: initial step 1% of ‖θ‖, maximal distance 10·‖θ‖. ``orthogonal`` removes each
    direction's component along θ (then ``arctan`` is the exact angle). Each direction's search
    goes through ``memo`` (key ``direction_<k>``), so a job can resume between directions.
    """
    if num_directions < 1:
        raise ValueError(f"num_directions must be >= 1, got {num_directions}")
    if angle not in ANGLES:
        raise ValueError(f"unknown angle {angle!r}; valid: {', '.join(ANGLES)}")
    norm = float(theta.norm())
    base = float(loss_fn(theta))
    thr = threshold_value(threshold_mode, threshold, base)
    step = initial_step or 0.01 * norm
    far = max_distance or 10.0 * norm
    dists, reached, evals = [], [], 0
    for k in tqdm(range(num_directions), desc="tunnel directions", disable=not progress, leave=False):
        u = random_unit_direction(theta.numel(), seed * 100_003 + k, dtype=theta.dtype, device=theta.device)
        if mask is not None:
            u = u * mask
        if orthogonal:
            along = theta * mask if mask is not None else theta
            if float(along.norm()) > 0:
                u = u - (u @ along) / (along @ along) * along
        u = u / u.norm()
        r = memo(f"direction_{k}", partial(radial_distance, lambda t: float(loss_fn(theta + t * u)), thr, step, far, rtol))
        dists.append(r.distance)
        reached.append(r.reached)
        evals += r.evaluations
    d = np.asarray(dists, dtype=float)
    ang = angular_width(d, norm, angle)
    ok = np.isfinite(ang)
    summary = {
        "width_mean": float(np.mean(ang[ok])) if ok.any() else float("nan"),
        "width_std": float(np.std(ang[ok])) if ok.any() else float("nan"),
        "width_median": float(np.median(ang[ok])) if ok.any() else float("nan"),
        "width_q10": float(np.quantile(ang[ok], 0.1)) if ok.any() else float("nan"),
        "width_q90": float(np.quantile(ang[ok], 0.9)) if ok.any() else float("nan"),
        "distance_mean": float(np.mean(d[ok])) if ok.any() else float("nan"),
        "distance_std": float(np.std(d[ok])) if ok.any() else float("nan"),
        "theta_norm": norm,
        "fraction_reached": float(np.mean(reached)),
        "evaluations": evals,
    }
    return TunnelWidth(d, ang, np.asarray(reached), evals, norm, base, thr, angle, summary)
