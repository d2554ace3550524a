"""Nudged elastic band in string-method form (Draxler et al. 2018, Sec. 3.1, Algorithm 1).

A chain of pivots θ_0 … θ_{n−1} between two fixed end points relaxes towards a minimum energy
path: each interior pivot moves along the loss gradient with its component along the path
removed (so pivots do not slide down into the minima), the path tangent being the "improved
tangent" of Henkelman & Jónsson (2000), which avoids kinks where the energy changes fast.
Instead of spring forces, after every optimizer step the pivots are put back at equal arc length
along the piecewise linear path through them, as the paper does (the string method).

``loss_fn(theta, step)`` takes one flat parameter vector and the global step index and returns a
differentiable scalar; the step index lets the caller cycle minibatches (every pivot and both end
points see the same batch within a step, so their energies are comparable). It is called once per
pivot. Non-finite losses or gradients are counted and that pivot is left where it is for the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
import torch

LossFn = Callable[[torch.Tensor, int], torch.Tensor]
OptimizerFactory = Callable[..., torch.optim.Optimizer]

#: Default optimizer of the paper: SGD with momentum 0.9 (called as ``factory(params, lr=, weight_decay=)``).
sgd_momentum: OptimizerFactory = partial(torch.optim.SGD, momentum=0.9)


def check_path(pivots: torch.Tensor, min_pivots: int = 2) -> None:
    """A path is an (n, d) tensor of finite pivots with distinct end points."""
    if not isinstance(pivots, torch.Tensor) or pivots.dim() != 2:
        raise ValueError(f"pivots must be a 2-D tensor (num_pivots, num_params), got {getattr(pivots, 'shape', type(pivots))}")
    if pivots.shape[0] < min_pivots:
        raise ValueError(f"a path needs at least {min_pivots} pivots (end points included), got {pivots.shape[0]}")
    if not torch.isfinite(pivots).all():
        raise ValueError("the path contains non-finite coordinates")
    if torch.equal(pivots[0], pivots[-1]):
        raise ValueError("the two end points are identical: there is no path to relax between them")


def linear_path(start: torch.Tensor, end: torch.Tensor, num_interior: int) -> torch.Tensor:
    """``num_interior`` equally spaced pivots on the segment, with both end points: (num_interior + 2, d)."""
    if start.dim() != 1 or end.dim() != 1:
        raise ValueError(f"end points must be flat vectors, got shapes {tuple(start.shape)} and {tuple(end.shape)}")
    if start.shape != end.shape:
        raise ValueError(
            f"end points have different sizes ({start.numel()} vs {end.numel()}); they are not the same architecture"
        )
    if num_interior < 0:
        raise ValueError(f"number of interior pivots must be >= 0, got {num_interior}")
    t = torch.linspace(0, 1, num_interior + 2, dtype=torch.float64)[:, None].to(start.device)
    path = (start.to(torch.float64)[None] * (1 - t) + end.to(torch.float64)[None] * t).to(start.dtype)
    path[0], path[-1] = start, end
    check_path(path)
    return path


def improved_tangents(path: torch.Tensor, energies) -> torch.Tensor:
    """Unit tangents at the interior pivots, (n − 2, d) (Henkelman & Jónsson 2000, Eqs. 8–11).

    With τ⁺ = θ_{i+1} − θ_i and τ⁻ = θ_i − θ_{i−1}: τ = τ⁺ when the energy rises through pivot i
    towards i+1, τ = τ⁻ when it rises towards i−1; at an extremum, the mix
    τ⁺·ΔE_max + τ⁻·ΔE_min (if E_{i+1} > E_{i−1}, else the weights swap), with
    ΔE_max/min = max/min(|E_{i+1} − E_i|, |E_{i−1} − E_i|). A flat neighbourhood (zero weights)
    falls back to the central difference θ_{i+1} − θ_{i−1}.
    """
    e = torch.as_tensor(np.asarray(energies, dtype=np.float64))
    if e.shape != (path.shape[0],):
        raise ValueError(f"{e.numel()} energies for {path.shape[0]} pivots")
    tp = path[2:] - path[1:-1]
    tm = path[1:-1] - path[:-2]
    e_prev, e_here, e_next = e[:-2], e[1:-1], e[2:]
    d_next, d_prev = (e_next - e_here).abs(), (e_prev - e_here).abs()
    d_max, d_min = torch.maximum(d_next, d_prev), torch.minimum(d_next, d_prev)
    up_forward = (e_next > e_here) & (e_here > e_prev)
    up_backward = (e_next < e_here) & (e_here < e_prev)
    w_next = torch.where(e_next > e_prev, d_max, d_min)
    w_prev = torch.where(e_next > e_prev, d_min, d_max)
    w_next = torch.where(up_forward, 1.0, torch.where(up_backward, 0.0, w_next))
    w_prev = torch.where(up_forward, 0.0, torch.where(up_backward, 1.0, w_prev))
    dt = path.dtype
    tau = w_next.to(dt)[:, None] * tp + w_prev.to(dt)[:, None] * tm
    norms = tau.norm(dim=1, keepdim=True)
    flat = (norms[:, 0] <= 0) | ~torch.isfinite(norms[:, 0])
    if flat.any():
        tau[flat] = (path[2:] - path[:-2])[flat]
        norms = tau.norm(dim=1, keepdim=True)
    return tau / norms.clamp_min(torch.finfo(dt).tiny)


def project_out_tangent(grad: torch.Tensor, tangent: torch.Tensor) -> torch.Tensor:
    """The gradient's component perpendicular to the (unit) tangent: g − (g·τ)τ."""
    return grad - (grad @ tangent) * tangent


def arc_lengths(path: torch.Tensor) -> np.ndarray:
    """Cumulative Euclidean length along the piecewise linear path, starting at 0 (float64)."""
    seg = (path[1:] - path[:-1]).to(torch.float64).norm(dim=1)
    return np.concatenate([[0.0], torch.cumsum(seg, 0).cpu().numpy()])


def redistribute(path: torch.Tensor) -> torch.Tensor:
    """The same number of pivots at equal arc length along the piecewise linear path (end points kept)."""
    n = path.shape[0]
    cum = torch.as_tensor(arc_lengths(path))
    total = float(cum[-1])
    if n <= 2 or total <= 0:
        return path.clone()
    targets = torch.linspace(0, total, n, dtype=torch.float64)[1:-1]
    seg = torch.searchsorted(cum, targets, right=True).clamp(1, n - 1) - 1
    seg_len = cum[seg + 1] - cum[seg]
    frac = torch.where(seg_len > 0, (targets - cum[seg]) / torch.where(seg_len > 0, seg_len, 1.0), 0.0)
    idx = seg.to(path.device)
    frac = frac.to(path.device, path.dtype)[:, None]
    out = path.clone()
    out[1:-1] = path[idx] + frac * (path[idx + 1] - path[idx])
    return out


@dataclass
class NEBResult:
    """The relaxed path and what happened on the way."""

    pivots: torch.Tensor  # (n, d), end points included, detached
    energies: np.ndarray  # losses of the last step at the pivots (before its update; minibatch values)
    steps: int
    nan_steps: list[int] = field(default_factory=list)  # global step indices with a non-finite loss/gradient
    nan_count: int = 0  # pivot evaluations that were non-finite
    log: list[dict] = field(default_factory=list)  # every ``log_every`` steps: step, max, mean energy

    @property
    def had_nan(self) -> bool:
        return self.nan_count > 0


def _energy(loss_fn: LossFn, theta: torch.Tensor, step: int) -> float:
    with torch.no_grad():
        return float(loss_fn(theta, step))


def neb(
    loss_fn: LossFn,
    pivots: torch.Tensor,
    steps: int,
    lr: float,
    *,
    optimizer: OptimizerFactory | None = None,
    weight_decay: float = 0.0,
    start_step: int = 0,
    log_every: int = 0,
) -> NEBResult:
    """Relax the interior pivots of ``pivots`` (n, d) for ``steps`` optimizer steps.

    ``optimizer`` is a factory called as ``factory(params, lr=lr, weight_decay=weight_decay)`` with one
    parameter tensor per interior pivot (default: SGD, momentum 0.9 — the paper's choice, which also uses
    weight decay 1e-4 on networks). Weight decay is the optimizer's own (applied to the full parameter,
    not projected; redistribution removes what it does along the path). A pivot whose loss or gradient is
    non-finite gets no gradient for that step (the optimizer skips it) and the step is recorded.
    """
    check_path(pivots, min_pivots=3)
    if steps < 0:
        raise ValueError(f"number of steps must be >= 0, got {steps}")
    if not lr > 0:
        raise ValueError(f"learning rate must be > 0, got {lr}")
    factory = optimizer or sgd_momentum
    start, end = pivots[0].detach().clone(), pivots[-1].detach().clone()
    params = [p.detach().clone().requires_grad_(True) for p in pivots[1:-1]]
    opt = factory(params, lr=lr, weight_decay=weight_decay)
    n = pivots.shape[0]
    energies = np.full(n, np.nan)
    nan_steps: list[int] = []
    nan_count = 0
    log: list[dict] = []
    for k in range(steps):
        step = start_step + k
        energies[0] = _energy(loss_fn, start, step)
        energies[-1] = _energy(loss_fn, end, step)
        grads: list[torch.Tensor | None] = []
        for i, p in enumerate(params, start=1):
            loss = loss_fn(p, step)
            e = float(loss.detach())
            g = None
            if np.isfinite(e):
                g = torch.autograd.grad(loss, p, allow_unused=True)[0]
                g = torch.zeros_like(p) if g is None else g.detach()
                if not bool(torch.isfinite(g).all()):
                    g = None
            energies[i] = e if g is not None else np.nan
            grads.append(g)
        bad = sum(g is None for g in grads) + int(not np.isfinite(energies[0])) + int(not np.isfinite(energies[-1]))
        if bad:
            nan_steps.append(step)
            nan_count += bad
        with torch.no_grad():
            path = torch.stack([start, *[p.detach() for p in params], end])
            tangents = improved_tangents(path, _finite_for_tangent(energies))
            for p, g, tau in zip(params, grads, tangents):
                p.grad = None if g is None else project_out_tangent(g, tau)
        opt.step()
        with torch.no_grad():
            path = redistribute(torch.stack([start, *[p.detach() for p in params], end]))
            for p, new in zip(params, path[1:-1]):
                p.copy_(new)
        if log_every and (k % log_every == 0 or k == steps - 1):
            fin = energies[np.isfinite(energies)]
            log.append(
                {
                    "step": step,
                    "max": float(fin.max()) if fin.size else float("nan"),
                    "mean": float(fin.mean()) if fin.size else float("nan"),
                }
            )
    final = torch.stack([start, *[p.detach() for p in params], end])
    return NEBResult(final, energies.copy(), steps, nan_steps, nan_count, log)


def _finite_for_tangent(energies: np.ndarray) -> np.ndarray:
    """Non-finite energies count as the highest finite one, so neighbours' tangents stay defined."""
    e = energies.copy()
    bad = ~np.isfinite(e)
    if bad.any():
        e[bad] = e[~bad].max() if (~bad).any() else 0.0
    return e
