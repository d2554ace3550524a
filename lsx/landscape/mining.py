"""Mining directions whose 1D curve has a chosen shape (Xu et al., Algorithms 1 and 2).

This is a documented *interpretation* of the two algorithms, built from their summaries
(Algorithm 1: minimize E_λ L(θ+λε) with α growing from 0 to 1; Algorithm 2: optimize the
direction with spacing γ and the same α schedule):

- the direction ε keeps a fixed norm (that of the initial direction, e.g. filter-normalized);
- at step t the weight α_t = t/T scales the probed offsets, so optimization starts local and
  ends at the full view scale (a continuation schedule: the carved valleys stay connected to θ);
- **w-peak** (Algorithm 1): offsets λ ~ U(±[s/4, s]), away from θ: lowering the loss on both
  sides of θ while θ itself is fixed makes θ the peak between two basins;
- **vvv-basin** (Algorithm 2): offsets on the lattice λ ∈ {±γ, ±2γ, …, ±Kγ} at full scale (α = 1:
  a continuation from θ would pick the locally flattest direction, which has no such basins):
  lowering the loss at evenly spaced points carves a basin at each of them.
Generic over a differentiable ``loss_fn(theta) -> scalar``; the result says whether the mined
curve has the intended type (via :func:`lsx.landscape.curves.classify_curve`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .curves import classify_curve

LossFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class MinedDirection:
    direction: torch.Tensor
    lams: np.ndarray
    curve_before: np.ndarray
    curve_after: np.ndarray
    type_before: str
    type_after: str
    objective: list[float] = field(default_factory=list)


def _curve(loss_fn: LossFn, theta: torch.Tensor, d: torch.Tensor, lams: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.array([float(loss_fn(theta + float(l) * d)) for l in lams])


def mine_direction(
    loss_fn: LossFn, theta: torch.Tensor, init: torch.Tensor, offsets: Callable[[torch.Generator], torch.Tensor],
    steps: int = 200, lr: float = 0.05, seed: int = 0, scale: float = 1.0, num: int = 41, anneal: bool = True,
) -> tuple[torch.Tensor, list[float], np.ndarray, np.ndarray, np.ndarray]:
    """Minimize mean_λ L(θ + α_t λ ε̂) over ε (‖ε̂‖ fixed), α_t = t/T (or 1 without ``anneal``);
    ``offsets(gen)`` draws the λs."""
    if init.shape != theta.shape:
        raise ValueError(f"initial direction has {init.numel()} entries, θ has {theta.numel()}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    norm = init.norm()
    eps = init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([eps], lr=lr * float(norm) / np.sqrt(theta.numel()))
    gen = torch.Generator().manual_seed(seed)
    log = []
    for t in range(1, steps + 1):
        alpha = t / steps if anneal else 1.0
        lam = offsets(gen).to(theta.dtype)
        d = eps * (norm / eps.norm())
        obj = torch.stack([loss_fn(theta + alpha * l * d) for l in lam]).mean()
        opt.zero_grad()
        obj.backward()
        opt.step()
        log.append(float(obj.detach()))
    d = (eps * (norm / eps.norm())).detach()
    lams = np.linspace(-scale, scale, num)
    return d, log, lams, _curve(loss_fn, theta, init, lams), _curve(loss_fn, theta, d, lams)


def mine_w_peak(loss_fn: LossFn, theta: torch.Tensor, init: torch.Tensor, scale: float = 1.0, batch: int = 4,
                steps: int = 200, lr: float = 0.05, seed: int = 0, num: int = 41) -> MinedDirection:
    """Algorithm 1: a direction along which θ sits on a peak between two basins."""
    def offsets(gen: torch.Generator) -> torch.Tensor:
        mag = scale * (0.25 + 0.75 * torch.rand(batch, generator=gen, dtype=torch.float64))
        sign = torch.where(torch.arange(batch) % 2 == 0, 1.0, -1.0).to(torch.float64)
        return mag * sign

    d, log, lams, before, after = mine_direction(loss_fn, theta, init, offsets, steps, lr, seed, scale, num)
    return MinedDirection(d, lams, before, after, classify_curve(lams, before), classify_curve(lams, after), log)


def mine_vvv_basin(loss_fn: LossFn, theta: torch.Tensor, init: torch.Tensor, gamma: float = 0.5, k: int = 2,
                   steps: int = 200, lr: float = 0.05, seed: int = 0, num: int = 41) -> MinedDirection:
    """Algorithm 2: a direction with basins at θ ± γ, ±2γ, … (K on each side)."""
    if gamma <= 0 or k < 1:
        raise ValueError(f"gamma must be > 0 and k >= 1, got gamma={gamma}, k={k}")
    lattice = torch.tensor([s * j * gamma for j in range(1, k + 1) for s in (1, -1)], dtype=torch.float64)
    # no α continuation here: near θ the lattice objective prefers the locally flattest direction,
    # which has no basins at ±γ; the basins must be carved at their final offsets
    d, log, lams, before, after = mine_direction(loss_fn, theta, init, lambda gen: lattice, steps, lr, seed,
                                                 scale=gamma * (k + 0.5), num=num, anneal=False)
    return MinedDirection(d, lams, before, after, classify_curve(lams, before), classify_curve(lams, after), log)
