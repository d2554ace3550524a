"""Hessian-vector products and what they buy: top/bottom eigenpairs, trace, spectral density.

Everything works on a differentiable ``loss_fn(theta_flat) -> scalar`` (a network loss from
:func:`lsx.landscape.flat.functional_loss`, or any toy function). H·v is computed by double
backward; scipy's ``eigsh`` (ARPACK Lanczos) gets it as a LinearOperator — the Hessian is
never formed except by :func:`exact_hessian`, kept for small models and tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

LossFn = Callable[[torch.Tensor], torch.Tensor]


def hvp_function(loss_fn: LossFn, theta: torch.Tensor, l2: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """v ↦ (H + l2·I) v at θ; the gradient graph is built once and reused for every product.

    Denormal floats are flushed to zero (process-wide): near a converged optimum the double
    backward is full of ~1e-40 values, and x86 denormal arithmetic made each product ~100x slower.
    """
    torch.set_flush_denormal(True)
    th = theta.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(th), th, create_graph=True)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        (hv,) = torch.autograd.grad(grad, th, grad_outputs=v.to(th.dtype), retain_graph=True)
        return hv.detach() + l2 * v if l2 else hv.detach()

    return hvp


def hvp_operator(loss_fn: LossFn, theta: torch.Tensor, l2: float = 0.0, dtype=np.float64) -> LinearOperator:
    """The Hessian at θ as a scipy LinearOperator (float64 on the scipy side)."""
    hvp = hvp_function(loss_fn, theta, l2)
    n = theta.numel()
    calls = {"n": 0}

    def matvec(v: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        t = torch.as_tensor(np.asarray(v).reshape(-1), dtype=theta.dtype, device=theta.device)
        return hvp(t).cpu().double().numpy()

    op = LinearOperator((n, n), matvec=matvec, dtype=dtype)
    op.calls = calls  # type: ignore[attr-defined]
    return op


@dataclass
class EigenResult:
    values: np.ndarray     # sorted descending
    vectors: np.ndarray    # (numel, k) columns matching values
    converged: bool
    message: str
    matvecs: int


def top_eigenpairs(
    loss_fn: LossFn, theta: torch.Tensor, k: int, which: str = "LA", tol: float = 0.0,
    maxiter: int | None = None, seed: int = 0, l2: float = 0.0,
) -> EigenResult:
    """k extreme eigenpairs of the Hessian by Lanczos (LA largest, SA smallest, LM largest |λ|).

    Non-convergence is reported (converged=False, with the pairs ARPACK did find), not raised.
    """
    n = theta.numel()
    if which not in ("LA", "SA", "LM"):
        raise ValueError(f"which={which!r}; valid: LA (largest), SA (smallest), LM (largest magnitude)")
    if not 1 <= k < n:
        raise ValueError(f"k={k} eigenpairs requested, but it must be in 1..{n - 1} for {n} parameters")
    op = hvp_operator(loss_fn, theta, l2)
    v0 = np.random.default_rng(seed).standard_normal(n)
    try:
        vals, vecs = eigsh(op, k=k, which=which, tol=tol, maxiter=maxiter, v0=v0)
        ok, msg = True, "converged"
    except ArpackNoConvergence as err:
        vals, vecs = err.eigenvalues, err.eigenvectors
        ok, msg = False, f"ARPACK did not converge: {len(vals)} of {k} eigenpairs found ({err})"
    order = np.argsort(vals)[::-1]
    return EigenResult(np.asarray(vals)[order], np.asarray(vecs)[:, order], ok, msg, op.calls["n"])  # type: ignore[attr-defined]


def count_short_directions(loss_fn: LossFn, theta: torch.Tensor, threshold: float, k_max: int, seed: int = 0) -> int:
    """Number of Hessian eigenvalues above ``threshold`` (Fort's "short directions"), up to k_max.

    Grows k geometrically until an eigenvalue below the threshold appears or k_max is reached.
    """
    k = min(8, k_max)
    while True:
        res = top_eigenpairs(loss_fn, theta, k, "LA", tol=1e-3, seed=seed)  # counting above a threshold needs no more
        count = int((res.values > threshold).sum())
        if count < k or k >= k_max:
            return count
        k = min(2 * k, k_max)


def hutchinson_trace(loss_fn: LossFn, theta: torch.Tensor, num_samples: int, seed: int = 0, l2: float = 0.0) -> tuple[float, float]:
    """tr(H) ≈ mean of vᵀHv over Rademacher v; returns (mean, standard error)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    hvp = hvp_function(loss_fn, theta, l2)
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(num_samples):
        v = (torch.randint(0, 2, (theta.numel(),), generator=g) * 2 - 1).to(theta.dtype).to(theta.device)
        vals.append(float(v @ hvp(v)))
    a = np.asarray(vals)
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")


def lanczos(hvp: Callable[[torch.Tensor], torch.Tensor], n: int, steps: int, v0: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos tridiagonalization with full reorthogonalization; returns (alphas, betas)."""
    steps = min(steps, n)
    Q = torch.zeros(steps, n, dtype=torch.float64)
    q = v0.double() / v0.double().norm()
    alphas, betas = [], []
    beta, q_prev = 0.0, torch.zeros_like(q)
    for j in range(steps):
        Q[j] = q
        w = hvp(q.to(v0.dtype)).double() - beta * q_prev
        alpha = float(w @ q)
        w = w - alpha * q
        w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)  # full reorthogonalization
        alphas.append(alpha)
        beta = float(w.norm())
        if j == steps - 1 or beta < 1e-10:
            break
        betas.append(beta)
        q_prev, q = q, w / beta
    return np.asarray(alphas), np.asarray(betas[: len(alphas) - 1])


def slq_density(
    loss_fn: LossFn, theta: torch.Tensor, num_probes: int = 4, lanczos_steps: int = 40, seed: int = 0,
    grid: np.ndarray | None = None, sigma: float | None = None,
) -> dict[str, np.ndarray]:
    """Eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019), Gaussian-broadened.

    Returns grid, density (integrates to ~1), and the Ritz nodes/weights of every probe.
    """
    hvp = hvp_function(loss_fn, theta)
    n = theta.numel()
    g = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    for _ in range(num_probes):
        v0 = torch.randn(n, generator=g, dtype=torch.float64).to(theta.dtype)
        a, b = lanczos(hvp, n, lanczos_steps, v0)
        T = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
        ev, evec = np.linalg.eigh(T)
        nodes.append(ev)
        weights.append(evec[0] ** 2)
    all_nodes = np.concatenate(nodes)
    lo, hi = all_nodes.min(), all_nodes.max()
    span = max(hi - lo, 1e-12)
    sigma = sigma or span / 100
    grid = np.linspace(lo - 0.05 * span, hi + 0.05 * span, 400) if grid is None else np.asarray(grid)
    dens = np.zeros_like(grid)
    for ev, w in zip(nodes, weights):
        dens += (w[None, :] * np.exp(-((grid[:, None] - ev[None, :]) ** 2) / (2 * sigma**2))).sum(1)
    dens /= num_probes * np.sqrt(2 * np.pi) * sigma
    return {"grid": grid, "density": dens, "nodes": np.array(nodes, dtype=object), "weights": np.array(weights, dtype=object)}


def exact_hessian(loss_fn: LossFn, theta: torch.Tensor) -> torch.Tensor:
    """The full Hessian (numel x numel) — only for small models and for checking the rest."""
    return torch.autograd.functional.hessian(lambda t: loss_fn(t), theta.detach())
