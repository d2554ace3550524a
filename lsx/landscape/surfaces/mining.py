"""Mining directions whose 1D curve has a chosen shape (Xu et al., Sec. 2.4–2.5, Algorithms 1 and 2).

**Algorithm 1 (w-peak), as written** (:func:`mine_w_peak_paper`): Eq. 2, argmin_ε E_λ L(θ + λε). ε starts at
zero; for epoch e = 1..E the window is α_e = α·e/E (the paper: α grows from 0 to 1); every step draws
λ ~ U[−α_e, α_e] and takes the plain gradient step of Algo. 1, line 6,
    ε ← ε − η λ ∇L(θ̂),  θ̂ = θ + λε.
From ε = 0 the first steps follow ±∇L(θ); the second-order term E[λ²]·Hε then grows the negative-curvature
part of ε and shrinks the positive one, which lowers the loss on both sides of θ (a **w-peak**).
Named options: ``optimizer: adam`` (an earlier reading; Adam on the same objective) and ``samples`` > 1
(λ draws averaged per step; the paper draws one).

**Algorithm 2 (vvv-basin), as written** (:func:`mine_vvv_basin_paper`): Eq. 3,
    argmin_φ E_{λ ~ U[0.5−α, 0.5+α]} [ L(φ) + γ L((1−λ)θ + λφ) ],
one λ per step and the step of Algo. 2, line 5, φ ← φ − η(∇_φ L(φ) + γλ∇L(φ̂)), φ̂ = (1−λ)θ + λφ; then
ε = φ − θ and the curve L(θ + λε) is drawn on a window holding θ (λ = 0) and φ (λ = 1), [−1, 2] by
default (Fig. 10 marks both). The paper's grid: α ∈ {0, 0.1}, γ ∈ {0.1, 0.5, 0.9}. It does not say where
φ starts; ``phi_init`` names the choice (the job: a fresh initialization of the network, or another
trained model).

Both loops take one step per data batch (``batch_losses``, the paper's "for each batch"; the job cuts the
landscape examples into batches of 128, the paper's batch size); without batches an epoch is
``steps_per_epoch`` steps on the full loss (a named option: no gradient noise, so the negative-curvature part
of Algorithm 1's ε has nothing to grow from but the first steps' ±∇L). Generic over a differentiable
``loss_fn(theta) -> scalar``; every result says which type the mined curve has
(:func:`lsx.landscape.surfaces.curves.classify_curve`).

**Earlier interpretations, kept as named options** (not the paper's algorithms):
- ``fixed_norm`` w-peak (:func:`mine_w_peak`): ε starts at a (filter-normalized) Gaussian and keeps
  its norm; offsets λ ~ U(±[s/4, s]) scaled by α_t = t/T; Adam.
- ``lattice_barrier`` vvv-basin (:func:`mine_vvv_basin`): ε keeps its norm; the objective lowers the loss
  on the lattice λ ∈ {±γ, …, ±Kγ} *and* raises it half-way between lattice points up to a barrier
  L(θ) + Δ with a hinge, β·mean relu(L(θ)+Δ − L(θ ± (j−½)γ ε̂)): it builds the vvv shape into the objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

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
    loss_fn: LossFn,
    theta: torch.Tensor,
    init: torch.Tensor,
    objective: Objective,
    steps: int = 200,
    lr: float = 0.05,
    seed: int = 0,
    scale: float = 1.0,
    num: int = 41,
    anneal: bool = True,
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
        obj = objective(lambda lam: loss_fn(theta + lam * d), alpha, gen)  # called at once: d is this step's
        opt.zero_grad()
        obj.backward()
        opt.step()
        log.append(float(obj.detach()))
    d = (eps * (norm / eps.norm())).detach()
    lams = np.linspace(-scale, scale, num)
    return d, log, lams, _curve(loss_fn, theta, init, lams), _curve(loss_fn, theta, d, lams)


def mine_w_peak(
    loss_fn: LossFn,
    theta: torch.Tensor,
    init: torch.Tensor,
    scale: float = 1.0,
    batch: int = 4,
    steps: int = 200,
    lr: float = 0.05,
    seed: int = 0,
    num: int = 41,
    progress: bool = False,
) -> MinedDirection:
    """The ``fixed_norm`` w-peak variant (not the paper's Algorithm 1): fixed ‖ε‖, λ ∈ ±[s/4, s]."""

    def offsets(gen: torch.Generator) -> torch.Tensor:
        mag = scale * (0.25 + 0.75 * torch.rand(batch, generator=gen, dtype=torch.float64))
        sign = torch.where(torch.arange(batch) % 2 == 0, 1.0, -1.0).to(torch.float64)
        return mag * sign

    d, log, lams, before, after = mine_direction(
        loss_fn, theta, init, lattice_mean(offsets), steps, lr, seed, scale, num, progress=progress
    )
    return MinedDirection(d, lams, before, after, classify_curve(lams, before), classify_curve(lams, after), log)


def mine_vvv_basin(
    loss_fn: LossFn,
    theta: torch.Tensor,
    init: torch.Tensor,
    gamma: float = 0.5,
    k: int = 2,
    barrier: float = 0.5,
    beta: float = 2.0,
    steps: int = 300,
    lr: float = 0.2,
    seed: int = 0,
    num: int = 41,
    progress: bool = False,
) -> MinedDirection:
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
    d, log, lams, before, after = mine_direction(
        loss_fn, theta, init, objective, steps, lr, seed, scale=gamma * (k + 0.5), num=num, anneal=False, progress=progress
    )
    return MinedDirection(d, lams, before, after, classify_curve(lams, before), classify_curve(lams, after), log)


OPTIMIZERS = ("sgd", "adam")


def _optimizer(params: list[torch.Tensor], optimizer: str, lr: float) -> torch.optim.Optimizer:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    return torch.optim.SGD(params, lr=lr) if optimizer == "sgd" else torch.optim.Adam(params, lr=lr)


def _check_schedule(epochs: int, steps_per_epoch: int, lr: float, samples: int) -> None:
    if epochs < 1 or steps_per_epoch < 1 or samples < 1 or not lr > 0:
        raise ValueError(
            f"epochs, steps_per_epoch and samples must be >= 1 and lr > 0, got epochs={epochs}, "
            f"steps_per_epoch={steps_per_epoch}, samples={samples}, lr={lr}"
        )


def _batches(loss_fn: LossFn, batch_losses: Sequence[LossFn] | None, steps_per_epoch: int) -> list[LossFn]:
    """The losses one epoch steps through: the data batches when given (one step each), else the full loss."""
    if batch_losses is None:
        return [loss_fn] * steps_per_epoch
    if len(batch_losses) == 0:
        raise ValueError("batch_losses is empty; pass None to step on the full loss")
    return list(batch_losses)


def mine_w_peak_paper(
    loss_fn: LossFn,
    theta: torch.Tensor,
    alpha: float = 1.0,
    epochs: int = 30,
    steps_per_epoch: int = 10,
    lr: float = 0.1,
    optimizer: str = "sgd",
    samples: int = 1,
    seed: int = 0,
    num: int = 41,
    reference: torch.Tensor | None = None,
    center_tol: float = 0.1,
    progress: bool = False,
    batch_losses: Sequence[LossFn] | None = None,
) -> MinedDirection:
    """Algorithm 1 as written: ε₀ = 0, α_e = α·e/E, λ ~ U[−α_e, α_e], ε ← ε − ηλ∇L_b(θ + λε) (``sgd``),
    one step per data batch b of ``batch_losses`` (None: ``steps_per_epoch`` steps on the full loss).

    The mined curve (full loss) is drawn on λ ∈ [−α, α]; ``reference`` (e.g. a filter-normalized Gaussian)
    gives a "before" curve for comparison only."""
    _check_schedule(epochs, steps_per_epoch, lr, samples)
    batches = _batches(loss_fn, batch_losses, steps_per_epoch)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (the final window [−α, α]), got {alpha}")
    eps = torch.zeros_like(theta).requires_grad_(True)
    opt = _optimizer([eps], optimizer, lr)
    gen = torch.Generator().manual_seed(seed)
    log, norms = [], []
    for e in tqdm(range(1, epochs + 1), desc="Algorithm 1", disable=not progress, leave=False):
        a_e = alpha * e / epochs
        for f_b in batches:
            drawn = a_e * (2 * torch.rand(samples, generator=gen, dtype=torch.float64) - 1)
            # d/dε L(θ + λε) = λ∇L(θ̂): the step of Algo. 1, line 6
            obj = torch.stack([f_b(theta + float(lam) * eps) for lam in drawn]).mean()
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
    return MinedDirection(d, lams, before, after, type_before, classify_curve(lams, after, center_tol=center_tol), log, norms)


def eq3_objective(loss_fn: LossFn, theta: torch.Tensor, phi: torch.Tensor, lam: float, gamma: float) -> torch.Tensor:
    """The integrand of Eq. 3 at one λ: L(φ) + γ L((1−λ)θ + λφ)."""
    return loss_fn(phi) + gamma * loss_fn((1 - lam) * theta + lam * phi)


def mine_vvv_basin_paper(
    loss_fn: LossFn,
    theta: torch.Tensor,
    phi_init: torch.Tensor,
    alpha: float = 0.0,
    gamma: float = 0.1,
    epochs: int = 30,
    steps_per_epoch: int = 10,
    lr: float = 0.1,
    optimizer: str = "sgd",
    samples: int = 1,
    seed: int = 0,
    window: tuple[float, float] = (-1.0, 2.0),
    num: int = 61,
    center_tol: float = 0.1,
    progress: bool = False,
    batch_losses: Sequence[LossFn] | None = None,
) -> MinedDirection:
    """Algorithm 2 as written: φ ← φ − η(∇_φL_b(φ) + γλ∇L_b(φ̂)), λ ~ U[0.5−α, 0.5+α], from ``phi_init``, one
    step per data batch b (as :func:`mine_w_peak_paper`); ε = φ − θ, curve L(θ + λε) on ``window`` (θ at
    λ = 0, φ at λ = 1)."""
    _check_schedule(epochs, steps_per_epoch, lr, samples)
    batches = _batches(loss_fn, batch_losses, steps_per_epoch)
    if not 0 <= alpha <= 0.5 or gamma < 0:
        raise ValueError(
            f"need 0 <= alpha <= 0.5 (λ ∈ [0.5−α, 0.5+α] ⊂ [0, 1]) and gamma >= 0, got alpha={alpha}, " f"gamma={gamma}"
        )
    if phi_init.shape != theta.shape:
        raise ValueError(f"phi_init has {phi_init.numel()} entries, θ has {theta.numel()}")
    lo, hi = (float(w) for w in window)
    if not lo <= 0 < 1 <= hi:
        raise ValueError(f"window {window} must hold θ (λ = 0) and φ (λ = 1)")
    phi = phi_init.detach().clone().requires_grad_(True)
    opt = _optimizer([phi], optimizer, lr)
    gen = torch.Generator().manual_seed(seed)
    log = []
    for t in tqdm(range(epochs * len(batches)), desc="Algorithm 2", disable=not progress, leave=False):
        f_b = batches[t % len(batches)]
        drawn = 0.5 + alpha * (2 * torch.rand(samples, generator=gen, dtype=torch.float64) - 1)
        obj = torch.stack([eq3_objective(f_b, theta, phi, float(lam), gamma) for lam in drawn]).mean()
        opt.zero_grad()
        obj.backward()
        opt.step()
        log.append(float(obj.detach()))
    d = (phi.detach() - theta).clone()
    lams = np.linspace(lo, hi, num)
    after = _curve(loss_fn, theta, d, lams)
    before = _curve(loss_fn, theta, phi_init - theta, lams)
    return MinedDirection(
        d,
        lams,
        before,
        after,
        classify_curve(lams, before, center_tol=center_tol),
        classify_curve(lams, after, center_tol=center_tol),
        log,
        [float(d.norm())],
    )
