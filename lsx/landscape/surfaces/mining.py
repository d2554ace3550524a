"""Mining directions whose 1D curve has a chosen shape (Xu et al., Algorithms 1 and 2).

**As the paper writes them** (:func:`mine_paper`, the default of both): the direction ε starts at
ε₀ = 0 and its norm is free (no renormalization); at step t the window grows, α_t = α·t/T, offsets λ
are drawn in [−α_t, α_t] and ε takes a gradient step on the objective (taken here as the paper's Eq. 3,
which is not reproduced in this repository)
    min_ε E_λ L(θ + λε).
From ε = 0 the first steps follow ±∇L(θ) (the λ draws do not cancel exactly), then the second-order
term E[λ²]·Hε grows the negative-curvature part of ε and shrinks the positive one: the loss is lowered
on both sides of θ, which leaves θ on a peak (**w-peak**).
- Algorithm 1 (**w-peak**): λ ~ U[−α_t, α_t].
- Algorithm 2 (**vvv-basin**): the same loop with λ drawn from the lattice of spacing γ inside the
  window, λ ∈ {±γ, ±2γ, …} ∩ [−α_t, α_t] (steps with no lattice point in the window do nothing).
Details the summaries in DESIGN.md do not fix, each a named option: ``samples`` λ draws per step
(default 4), the optimizer (``adam``, default, or ``sgd``) and its ``lr``; the loss is the full loss on
the job's fixed examples (no mini-batches); the mined curve is drawn with ε as mined (free norm) on
λ ∈ [−α, α]. Measured on the ``xu_taxonomy`` CPU preset (10 training seeds): Algorithm 1 gives a w-peak
on every seed; Algorithm 2 as read here gives w-peaks (9) and a w-basin (1), no vvv-basin.

**Earlier interpretations, kept as named options** (not the paper's algorithms):
- ``fixed_norm`` w-peak (:func:`mine_w_peak`): ε starts at a (filter-normalized) Gaussian and keeps
  its norm; offsets λ ~ U(±[s/4, s]) scaled by α_t = t/T;
- ``lattice_barrier`` vvv-basin (:func:`mine_vvv_basin`): ε keeps its norm; the objective lowers the loss
  on the lattice λ ∈ {±γ, …, ±Kγ} at full scale *and* raises it half-way between lattice points up to
  a barrier L(θ) + Δ with a hinge, β·mean relu(L(θ)+Δ − L(θ ± (j−½)γ ε̂)). The hinge builds the
  vvv shape into the objective. Observed on the CPU MLP (3 direction seeds × {k=2 γ=0.5, k=3 γ=0.5,
  k=2 γ=0.3}): 8 of 9 curves got three basins.
Generic over a differentiable ``loss_fn(theta) -> scalar``; every result says whether the mined curve
has the intended type (via :func:`lsx.landscape.surfaces.curves.classify_curve`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .curves import classify_curve

LossFn = Callable[[torch.Tensor], torch.Tensor]
OPTIMIZERS = ("adam", "sgd")


@dataclass
class MinedDirection:
    direction: torch.Tensor
    lams: np.ndarray
    curve_before: np.ndarray
    curve_after: np.ndarray
    type_before: str
    type_after: str
    objective: list[float] = field(default_factory=list)
    norms: list[float] = field(default_factory=list)  # ‖ε‖ after each step (free-norm algorithms)


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
    """The ``fixed_norm`` w-peak variant (not the paper's Algorithm 1): fixed ‖ε‖, λ ∈ ±[s/4, s]."""
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
    """The ``lattice_barrier`` vvv-basin objective (not the paper's Algorithm 2): basins at θ, θ ± γ,
    ±2γ, … (K on each side), separated by barriers of height ≥ ``barrier`` above L(θ) at the half-way
    points (weight ``beta``; 0 disables)."""
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


Sampler = Callable[[float, torch.Generator], torch.Tensor]


def uniform_offsets(samples: int) -> Sampler:
    """Algorithm 1's offsets: ``samples`` draws of λ ~ U[−α_t, α_t]."""
    def draw(alpha: float, gen: torch.Generator) -> torch.Tensor:
        return alpha * (2 * torch.rand(samples, generator=gen, dtype=torch.float64) - 1)
    return draw


def lattice_offsets(samples: int, gamma: float) -> Sampler:
    """Algorithm 2's offsets: ``samples`` draws from {±γ, ±2γ, …} ∩ [−α_t, α_t] (none while α_t < γ)."""
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")

    def draw(alpha: float, gen: torch.Generator) -> torch.Tensor:
        k = int(np.floor(alpha / gamma + 1e-9))
        if k < 1:
            return torch.zeros(0, dtype=torch.float64)
        j = torch.randint(1, k + 1, (samples,), generator=gen)
        sign = torch.where(torch.rand(samples, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
        return sign * j.to(torch.float64) * gamma
    return draw


def mine_paper(
    loss_fn: LossFn, theta: torch.Tensor, offsets: Sampler, target: str, alpha: float = 1.0, steps: int = 300,
    lr: float = 1e-3, optimizer: str = "adam", seed: int = 0, num: int = 41, reference: torch.Tensor | None = None,
    center_tol: float = 0.1, progress: bool = False,
) -> MinedDirection:
    """Xu et al.'s mining loop: ε₀ = 0, free norm, α_t = α·t/T, ε ← step on mean_λ L(θ + λε), λ from ``offsets``.

    ``reference`` (e.g. a filter-normalized Gaussian) gives the "before" curve for comparison only;
    the mining itself starts at zero. ``target`` names the intended type (recorded, not optimized for)."""
    if steps < 1 or alpha <= 0 or lr <= 0:
        raise ValueError(f"steps, alpha and lr must be positive, got steps={steps}, alpha={alpha}, lr={lr}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    eps = torch.zeros_like(theta).requires_grad_(True)
    opt = torch.optim.Adam([eps], lr=lr) if optimizer == "adam" else torch.optim.SGD([eps], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    log, norms = [], []
    for t in tqdm(range(1, steps + 1), desc=f"mining {target}", disable=not progress, leave=False):
        lams = offsets(alpha * t / steps, gen)
        if lams.numel() == 0:
            continue
        obj = torch.stack([loss_fn(theta + float(l) * eps) for l in lams]).mean()
        opt.zero_grad()
        obj.backward()
        opt.step()
        log.append(float(obj.detach()))
        norms.append(float(eps.detach().norm()))
    d = eps.detach().clone()
    lams = np.linspace(-alpha, alpha, num)
    after = _curve(loss_fn, theta, d, lams)
    before = _curve(loss_fn, theta, reference, lams) if reference is not None else np.full(num, np.nan)
    type_before = classify_curve(lams, before, center_tol=center_tol) if reference is not None else "none"
    return MinedDirection(d, lams, before, after, type_before, classify_curve(lams, after, center_tol=center_tol),
                          log, norms)


def mine_w_peak_paper(loss_fn: LossFn, theta: torch.Tensor, alpha: float = 1.0, samples: int = 4, **kw) -> MinedDirection:
    """Algorithm 1 as written: λ ~ U[−α_t, α_t] from ε₀ = 0 (see :func:`mine_paper` for the options)."""
    return mine_paper(loss_fn, theta, uniform_offsets(int(samples)), "w-peak", alpha=alpha, **kw)


def mine_vvv_basin_paper(loss_fn: LossFn, theta: torch.Tensor, alpha: float = 1.0, gamma: float = 0.5, samples: int = 4,
                         **kw) -> MinedDirection:
    """Algorithm 2 as read here: Algorithm 1's loop with λ on the γ-lattice inside [−α_t, α_t]."""
    if gamma > alpha:
        raise ValueError(f"gamma={gamma} exceeds alpha={alpha}: no lattice point would ever be in the window")
    return mine_paper(loss_fn, theta, lattice_offsets(int(samples), float(gamma)), "vvv-basin", alpha=alpha, **kw)
