"""Xu et al. Sec. 3 checks: why random (Gaussian) 1D curves look like basins.

- Gaussian directions are almost orthogonal to the descent direction −∇L (cosines ~ 1/√D, Fig. 5),
  so the first-order term vanishes and the curve is governed by curvature;
- for a small Gaussian perturbation σε, E[δL] ≈ ½σ² tr(H) (Fig. 13), checked against a Hutchinson
  estimate of the trace;
- along a direction d, L(θ+λd) ≈ L(θ) + λ gᵀd + ½λ² dᵀHd (Fig. 14), compared with the true curve.
All functions take a differentiable ``loss_fn(theta_flat) -> scalar``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from .hessian import hutchinson_trace, hvp_function

LossFn = Callable[[torch.Tensor], torch.Tensor]


def gradient(loss_fn: LossFn, theta: torch.Tensor) -> torch.Tensor:
    t = theta.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_fn(t), t)
    return g.detach()


def descent_cosines(
    loss_fn: LossFn, theta: torch.Tensor, num: int, seed: int = 0, mask: torch.Tensor | None = None
) -> np.ndarray:
    """Cosines between ``num`` Gaussian directions and −∇L at θ (restricted to ``mask`` if given)."""
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    g = -gradient(loss_fn, theta)
    if mask is not None:
        g = g * mask
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(num):
        d = torch.randn(theta.numel(), generator=gen, dtype=torch.float64).to(theta.dtype)
        if mask is not None:
            d = d * mask
        out.append(float(d @ g / (d.norm() * g.norm() + 1e-30)))
    return np.asarray(out)


def perturbation_loss_change(
    loss_fn: LossFn, theta: torch.Tensor, sigmas: Sequence[float], samples: int, seed: int = 0, trace_samples: int = 20
) -> dict[str, np.ndarray | np.generic]:
    """δL = L(θ+σε) − L(θ), ε ~ N(0, I), per σ; with the prediction ½σ² tr(H) (Hutchinson).

    Antithetic pairs (±ε, averaged) cancel the first-order term σgᵀε exactly, whose noise would
    otherwise swamp the ½σ²εᵀHε signal at small σ away from a perfect minimum.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    with torch.no_grad():
        base = float(loss_fn(theta))
    tr, tr_se = hutchinson_trace(loss_fn, theta, trace_samples, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    deltas = np.zeros((len(sigmas), samples))
    with torch.no_grad():
        for i, s in enumerate(sigmas):
            for j in range(samples):
                eps = torch.randn(theta.numel(), generator=gen, dtype=torch.float64).to(theta.dtype)
                up, down = float(loss_fn(theta + float(s) * eps)), float(loss_fn(theta - float(s) * eps))
                deltas[i, j] = 0.5 * (up + down) - base
    sig = np.asarray(sigmas, dtype=float)
    return {
        "sigmas": sig,
        "delta": deltas,
        "mean": deltas.mean(1),
        "std": deltas.std(1),
        "predicted_mean": 0.5 * sig**2 * tr,
        "trace": np.float64(tr),
        "trace_stderr": np.float64(tr_se),
    }


def quadratic_model_along(
    loss_fn: LossFn, theta: torch.Tensor, direction: torch.Tensor, lams: Sequence[float]
) -> dict[str, np.ndarray | np.generic]:
    """True L(θ+λd) vs its second-order Taylor model at λ=0 (with gᵀd and dᵀHd)."""
    if direction.shape != theta.shape:
        raise ValueError(f"direction has {direction.numel()} entries, θ has {theta.numel()}")
    g = gradient(loss_fn, theta)
    curv = float(direction @ hvp_function(loss_fn, theta)(direction))
    slope = float(g @ direction)
    lam = np.asarray(lams, dtype=float)
    with torch.no_grad():
        base = float(loss_fn(theta))
        true = np.array([float(loss_fn(theta + float(l) * direction)) for l in lam])
    return {
        "lams": lam,
        "true": true,
        "quadratic": base + slope * lam + 0.5 * curv * lam**2,
        "slope": np.float64(slope),
        "curvature": np.float64(curv),
    }


def cosine_scale_ratio(cosines: np.ndarray, dim: int) -> float:
    """std of the cosines × √D: 1 when Gaussian directions are as orthogonal to −∇L as Sec. 2.3 says
    (cos(ε, g) for ε ~ N(0, I_D) has mean 0 and variance exactly 1/D for any fixed g)."""
    c = np.asarray(cosines, dtype=float)
    if c.size < 2 or dim < 1:
        raise ValueError(f"need >= 2 cosines and dim >= 1, got {c.size} cosines and dim={dim}")
    return float(c.std(ddof=1) * np.sqrt(dim))


def bulk_edge(nodes: Iterable[np.ndarray], weights: Iterable[np.ndarray], q: float = 0.9) -> float:
    """The ``q``-quantile of |λ| under the SLQ spectral measure (Ritz nodes weighted by their weights,
    averaged over probes): the half-width of the bulk that holds a fraction q of the spectrum."""
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}")
    x = np.abs(np.concatenate([np.asarray(n, dtype=float) for n in nodes]))
    w = np.concatenate([np.asarray(v, dtype=float) for v in weights])
    if x.size == 0 or not w.sum() > 0:
        raise ValueError("the SLQ measure is empty")
    order = np.argsort(x)
    cum = np.cumsum(w[order]) / w.sum()
    return float(x[order][np.searchsorted(cum, q)])


def spectrum_at(
    loss_fn: LossFn, theta: torch.Tensor, lams: Sequence[float], slq_probes: int = 4, slq_steps: int = 40, seed: int = 0
) -> dict:
    """Sec. 3 / Fig. 8 / Fig. 13 at one checkpoint: λ_max, λ_min (Lanczos / eigsh), the SLQ bulk edge
    (90% of the spectral mass within ±edge), and the curve L(θ + λ v_min) along the unit N.E. direction
    with its peak height L(θ) − min_λ L (0 when the curve has no dip: no w-peak)."""
    from .hessian import slq_density, top_eigenpairs

    top = top_eigenpairs(loss_fn, theta, 1, "LA", seed=seed)
    bottom = top_eigenpairs(loss_fn, theta, 1, "SA", tol=1e-4, seed=seed)
    dens = slq_density(loss_fn, theta, slq_probes, slq_steps, seed=seed)
    v = torch.as_tensor(np.ascontiguousarray(bottom.vectors[:, 0]), dtype=theta.dtype)
    v = v / v.norm()
    lam = np.asarray(lams, dtype=float)
    with torch.no_grad():
        curve = np.array([float(loss_fn(theta + float(x) * v)) for x in lam])
    i0 = int(np.argmin(np.abs(lam)))
    return {
        "lambda_max": float(top.values[0]),
        "lambda_min": float(bottom.values[0]),
        "converged": bool(top.converged and bottom.converged),
        "bulk_edge": bulk_edge(dens["nodes"], dens["weights"]),
        "ne_lams": lam,
        "ne_curve": curve,
        "ne_peak_height": float(curve[i0] - np.nanmin(curve)),
    }
