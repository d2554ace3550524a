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
  a continuation from θ would pick the locally flattest direction, which has no such basins).
  Lowering the loss at evenly spaced points alone finds a flat valley through them (tested: on
  networks the curve stays one basin), so the objective also *raises* the loss half-way between
  lattice points up to a barrier L(θ) + Δ with a hinge, β·mean relu(L(θ)+Δ − L(θ ± (j−½)γ ε̂)):
  bounded (cross-entropy has no maximum to run to) and inactive once the barriers stand.
  Observed on the CPU MLP (3 direction seeds × {k=2 γ=0.5, k=3 γ=0.5, k=2 γ=0.3}): 8 of 9 curves
  get three basins, at θ and near ±Kγ, with the inner lattice points absorbed into the barriers
  (one k=3 run gave a w-basin); a log-sum-exp (minimax) lattice term or a hinge keeping lattice
  points below L(θ) did worse (mostly a single basin).
Generic over a differentiable ``loss_fn(theta) -> scalar``; the result says whether the mined
curve has the intended type (via :func:`lsx.landscape.curves.classify_curve`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

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


Objective = Callable[[Callable[[float], torch.Tensor], float, torch.Generator], torch.Tensor]


def lattice_mean(offsets: Callable[[torch.Generator], torch.Tensor]) -> Objective:
    """The plain mining objective mean_λ L(θ + α λ ε̂), λ drawn by ``offsets(gen)``."""
    def objective(loss_at: Callable[[float], torch.Tensor], alpha: float, gen: torch.Generator) -> torch.Tensor:
        return torch.stack([loss_at(alpha * float(l)) for l in offsets(gen)]).mean()
    return objective


def mine_direction(
    loss_fn: LossFn, theta: torch.Tensor, init: torch.Tensor, objective: Objective,
    steps: int = 200, lr: float = 0.05, seed: int = 0, scale: float = 1.0, num: int = 41, anneal: bool = True,
    progress: bool = False,
) -> tuple[torch.Tensor, list[float], np.ndarray, np.ndarray, np.ndarray]:
    """Minimize ``objective(loss_at, α_t, gen)`` over ε with ‖ε̂‖ fixed, where loss_at(λ) = L(θ + λ ε̂)
    and α_t = t/T (or 1 without ``anneal``)."""
    if init.shape != theta.shape:
        raise ValueError(f"initial direction has {init.numel()} entries, θ has {theta.numel()}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    norm = init.norm()
    eps = init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([eps], lr=lr * float(norm) / np.sqrt(theta.numel()))
    gen = torch.Generator().manual_seed(seed)
    log = []
    for t in tqdm(range(1, steps + 1), desc="mining", disable=not progress, leave=False):
        alpha = t / steps if anneal else 1.0
        d = eps * (norm / eps.norm())
        obj = objective(lambda lam, d=d: loss_fn(theta + lam * d), alpha, gen)
        opt.zero_grad()
        obj.backward()
        opt.step()
        log.append(float(obj.detach()))
    d = (eps * (norm / eps.norm())).detach()
    lams = np.linspace(-scale, scale, num)
    return d, log, lams, _curve(loss_fn, theta, init, lams), _curve(loss_fn, theta, d, lams)


def mine_w_peak(loss_fn: LossFn, theta: torch.Tensor, init: torch.Tensor, scale: float = 1.0, batch: int = 4,
                steps: int = 200, lr: float = 0.05, seed: int = 0, num: int = 41, progress: bool = False) -> MinedDirection:
    """Algorithm 1: a direction along which θ sits on a peak between two basins."""
    def offsets(gen: torch.Generator) -> torch.Tensor:
        mag = scale * (0.25 + 0.75 * torch.rand(batch, generator=gen, dtype=torch.float64))
        sign = torch.where(torch.arange(batch) % 2 == 0, 1.0, -1.0).to(torch.float64)
        return mag * sign

    d, log, lams, before, after = mine_direction(loss_fn, theta, init, lattice_mean(offsets), steps, lr, seed,
                                                 scale, num, progress=progress)
    return MinedDirection(d, lams, before, after, classify_curve(lams, before), classify_curve(lams, after), log)


def mine_vvv_basin(loss_fn: LossFn, theta: torch.Tensor, init: torch.Tensor, gamma: float = 0.5, k: int = 2,
                   barrier: float = 0.5, beta: float = 2.0, steps: int = 300, lr: float = 0.2, seed: int = 0,
                   num: int = 41, progress: bool = False) -> MinedDirection:
    """Algorithm 2: a direction with basins at θ, θ ± γ, ±2γ, … (K on each side), separated by
    barriers of height ≥ ``barrier`` above L(θ) at the half-way points (weight ``beta``; 0 disables)."""
    if gamma <= 0 or k < 1:
        raise ValueError(f"gamma must be > 0 and k >= 1, got gamma={gamma}, k={k}")
    if barrier < 0 or beta < 0:
        raise ValueError(f"barrier and beta must be >= 0, got barrier={barrier}, beta={beta}")
    lattice = [s * j * gamma for j in range(1, k + 1) for s in (1, -1)]
    halfway = [s * (j - 0.5) * gamma for j in range(1, k + 1) for s in (1, -1)]
    with torch.no_grad():
        target = float(loss_fn(theta)) + barrier

    def objective(loss_at: Callable[[float], torch.Tensor], alpha: float, gen: torch.Generator) -> torch.Tensor:
        low = torch.stack([loss_at(l) for l in lattice]).mean()
        if beta == 0:
            return low
        walls = torch.stack([torch.relu(target - loss_at(h)) for h in halfway]).mean()
        return low + beta * walls

    # no α continuation here: near θ the lattice objective prefers the locally flattest direction,
    # which has no basins at ±γ; the basins must be carved at their final offsets
    d, log, lams, before, after = mine_direction(loss_fn, theta, init, objective, steps, lr, seed,
                                                 scale=gamma * (k + 0.5), num=num, anneal=False,
                                                 progress=progress)
    return MinedDirection(d, lams, before, after, classify_curve(lams, before), classify_curve(lams, after), log)
