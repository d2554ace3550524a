"""Hessian-vector products and what they buy: top/bottom eigenpairs, trace, spectral density.

Everything works on a differentiable ``loss_fn(theta_flat) -> scalar`` (a network loss from
:func:`lsx.landscape.engine.flat.functional_loss`, or any toy function). H·v is computed by double
backward; scipy's ``eigsh`` (ARPACK Lanczos) gets it as a LinearOperator — the Hessian is
never formed except by :func:`exact_hessian`, kept for small models and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from lsx.landscape.engine.progress import Progress, ticker

LossFn = Callable[[torch.Tensor], torch.Tensor]


def _counted(hvp: Callable[[torch.Tensor], torch.Tensor], progress: Progress, total: int, desc: str):
    """``hvp`` that reports its products as :func:`lsx.landscape.engine.progress.ticker` says (a bar, or a log line
    every 30 s off a terminal: a Hessian stage can run for many minutes), and the tick to close it with."""
    if not progress:
        return hvp, lambda done: None
    tick, count = ticker(progress, max(1, int(total)), desc, unit="HVP"), [0]

    def counted(v: torch.Tensor) -> torch.Tensor:
        out = hvp(v)
        count[0] += 1
        tick(count[0])
        return out

    return counted, tick


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


def hvp_operator(
    loss_fn: LossFn,
    theta: torch.Tensor,
    l2: float = 0.0,
    dtype=np.float64,
    hvp: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> LinearOperator:
    """The Hessian at θ as a scipy LinearOperator (float64 on the scipy side); ``hvp`` a ready product to wrap."""
    hvp = hvp or hvp_function(loss_fn, theta, l2)
    n = theta.numel()
    calls = {"n": 0}

    def matvec(v: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        t = torch.as_tensor(np.asarray(v).reshape(-1), dtype=theta.dtype, device=theta.device)
        return hvp(t).cpu().double().numpy()

    op = LinearOperator((n, n), matvec=matvec, dtype=dtype)
    op.calls = calls  # scipy is untyped here (LinearOperator is Any)
    return op


@dataclass
class EigenResult:
    values: np.ndarray  # sorted descending
    vectors: np.ndarray  # (numel, k) columns matching values
    converged: bool
    message: str
    matvecs: int


def krylov_size(k: int, n: int, which: str) -> int | None:
    """ARPACK's Lanczos basis size for k pairs: small for the top of the spectrum, scipy's default otherwise.

    Why: a network Hessian's largest eigenvalues are a few well-separated outliers, so a basis of 2k+2
    vectors converges them in a handful of Hessian-vector products (k=1: 5–7 HVPs where scipy's default
    of 20 spends 21). The smallest eigenvalues sit in a dense cluster near 0, where a small basis
    restarts hundreds of times (measured: 747 HVPs for k=1 with 4 vectors vs 51 with the default), so
    ``SA`` keeps scipy's default (None).
    """
    if which == "SA":
        return None
    return min(n, max(2 * k + 2, 4))


def top_eigenpairs(
    loss_fn: LossFn,
    theta: torch.Tensor,
    k: int,
    which: str = "LA",
    tol: float | None = None,
    maxiter: int | None = None,
    seed: int = 0,
    l2: float = 0.0,
    ncv: int | None = None,
    progress: Progress = False,
) -> EigenResult:
    """k extreme eigenpairs of the Hessian by Lanczos (LA largest, SA smallest, LM largest |λ|).

    ``tol`` None (the default) for LA/LM and k ≤ 8 runs :func:`lanczos_extreme`, which stops as soon as
    every wanted eigenvalue's estimated error is below 1e-5 relative — at a network Hessian's well-separated
    top that takes 4–6 Hessian-vector products for k=1 (PyHessian's power iteration: 5–14, at ~1e-3
    error). Otherwise (SA, larger k, or an explicit ``tol``) ARPACK's ``eigsh`` runs with ``tol`` as its
    relative residual ‖Hv − λv‖ ≤ tol·|λ| (None → 1e-3; 0 = machine precision; pass a small tol when the
    eigenvectors themselves matter) and the basis size ``ncv`` (None: :func:`krylov_size`).
    ``maxiter`` is ARPACK's restart limit, or the Lanczos step limit.
    Non-convergence is reported (converged=False, with the pairs found so far), not raised. ``progress`` reports
    Hessian-vector products against the step cap (Lanczos) or ARPACK's cap, restarts x basis size (eigsh).
    """
    n = theta.numel()
    if which not in ("LA", "SA", "LM"):
        raise ValueError(f"which={which!r}; valid: LA (largest), SA (smallest), LM (largest magnitude)")
    if not 1 <= k < n:
        raise ValueError(f"k={k} eigenpairs requested, but it must be in 1..{n - 1} for {n} parameters")
    if ncv is not None and not k < int(ncv) <= n:
        raise ValueError(f"ncv={ncv}: the Lanczos basis must hold more than k={k} and at most {n} vectors")
    if tol is not None and float(tol) < 0:
        raise ValueError(f"tol={tol}: a relative residual tolerance is >= 0 (0 = machine precision)")
    if tol is None and ncv is None and which in ("LA", "LM") and k <= 8:
        cap = min(n, int(maxiter) if maxiter else 30 + 10 * k)
        hvp, tick = _counted(hvp_function(loss_fn, theta, l2), progress, cap, f"Hessian Lanczos {which} (k={k})")
        start = torch.as_tensor(np.random.default_rng(seed).standard_normal(n))
        try:
            return lanczos_extreme(hvp, n, k, which, start, value_tol=1e-5, max_steps=maxiter)
        finally:
            tick(None)
    if ncv is None:
        ncv = krylov_size(k, n, which)
    tol = 1e-3 if tol is None else float(tol)
    basis = ncv or min(n, max(2 * k + 1, 20))  # scipy's default basis size
    hvp, tick = _counted(
        hvp_function(loss_fn, theta, l2),
        progress,
        (int(maxiter) if maxiter else 10 * n) * basis,
        f"Hessian eigsh {which} (k={k}; of ARPACK's cap)",
    )
    op = hvp_operator(loss_fn, theta, l2, hvp=hvp)
    v0 = np.random.default_rng(seed).standard_normal(n)
    try:
        vals, vecs = eigsh(op, k=k, which=which, tol=tol, maxiter=maxiter, v0=v0, ncv=ncv)
        ok, msg = True, "converged"
    except ArpackNoConvergence as err:
        vals, vecs = err.eigenvalues, err.eigenvectors
        ok, msg = False, f"ARPACK did not converge: {len(vals)} of {k} eigenpairs found ({err})"
    finally:
        tick(None)
    order = np.argsort(vals)[::-1]
    return EigenResult(np.asarray(vals)[order], np.asarray(vecs)[:, order], ok, msg, op.calls["n"])


def lanczos_extreme(
    hvp: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    k: int,
    which: str,
    v0: torch.Tensor,
    value_tol: float = 1e-4,
    max_steps: int | None = None,
) -> EigenResult:
    """The k largest (LA) or largest-magnitude (LM) eigenpairs by Lanczos with full reorthogonalization.

    Why not power iteration (PyHessian): Lanczos extracts the best approximation from the whole Krylov
    space, so the top eigenvalue converges in a few products even when λ₂/λ₁ is close to 1. Stopping
    rule: a Ritz pair (θ, y) of step j has residual r = β_j·|last entry of y|, and θ's error is at most
    r and about r²/gap (gap to the next Ritz value) — stop when min(r, r²/gap) ≤ value_tol·|θ| for all k.
    ``max_steps`` None means min(n, 30 + 10k). The basis is kept in float64 (steps x n).
    """
    steps_cap = min(n, int(max_steps) if max_steps else 30 + 10 * k)
    dtype = v0.dtype if v0.is_floating_point() else torch.float64
    q = v0.double() / v0.double().norm()
    basis: list[torch.Tensor] = []
    alphas: list[float] = []
    betas: list[float] = []
    beta, q_prev = 0.0, torch.zeros_like(q)
    vals, S, ok, err_est = np.zeros(0), np.zeros((0, 0)), False, np.inf
    for j in range(steps_cap):
        basis.append(q)
        w = hvp(q.to(dtype)).double() - beta * q_prev
        alpha = float(w @ q)
        w = w - alpha * q
        Q = torch.stack(basis)
        w = w - Q.T @ (Q @ w)  # full reorthogonalization (twice is enough; once suffices for few steps)
        w = w - Q.T @ (Q @ w)
        alphas.append(alpha)
        beta = float(w.norm())
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        ev, vec = np.linalg.eigh(T)
        order = np.argsort(-np.abs(ev) if which == "LM" else -ev)
        vals, S = ev[order], vec[:, order]
        if len(vals) > k or beta < 1e-12 * max(1.0, abs(vals[0])):
            r = beta * np.abs(S[-1, :k])
            nxt = vals[1 : k + 1] if len(vals) > k else np.full(k, -np.inf)
            gap = np.maximum(np.abs(vals[:k] - nxt), 1e-300)
            err_est = float(np.max(np.minimum(r, r**2 / gap) / np.maximum(np.abs(vals[:k]), 1e-300)))
            if err_est <= value_tol or beta < 1e-12 * max(1.0, abs(vals[0])):
                ok = True
                break
        betas.append(beta)
        q_prev, q = q, w / beta
    kk = min(k, len(vals))
    Q = torch.stack(basis)  # (steps, n)
    vectors = (Q.T @ torch.as_tensor(S[:, :kk])).numpy()
    top = np.argsort(vals[:kk])[::-1]
    msg = "converged" if ok else f"Lanczos did not converge in {len(alphas)} steps (estimated relative error {err_est:.1e})"
    return EigenResult(vals[:kk][top], vectors[:, top], ok, msg, len(alphas))


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


class TraceEstimate(NamedTuple):
    mean: float
    stderr: float
    samples: int


def rademacher(n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """A Hutchinson probe: n independent ±1 entries from ``generator``, in ``like``'s dtype and on its device."""
    return (torch.randint(0, 2, (n,), generator=generator) * 2 - 1).to(like.dtype).to(like.device)


def trace_estimate(
    loss_fn: LossFn,
    theta: torch.Tensor,
    max_samples: int,
    rel_tol: float | None = None,
    min_samples: int = 10,
    seed: int = 0,
    l2: float = 0.0,
    progress: Progress = False,
) -> TraceEstimate:
    """tr(H) ≈ mean of vᵀHv over Rademacher v, stopping early once the standard error is small enough.

    Why adaptive: the variance of vᵀHv is 2·Σ_{i≠j} H_ij², unknown beforehand; a fixed count either
    wastes Hessian-vector products or leaves the error large. With ``rel_tol`` the loop stops as soon as
    stderr ≤ rel_tol·|mean| (after at least ``min_samples``, so the stderr itself is trustworthy), and at
    ``max_samples`` regardless; ``rel_tol`` None draws exactly ``max_samples``.
    """
    if max_samples < 1:
        raise ValueError(f"the number of trace samples must be >= 1, got {max_samples}")
    if rel_tol is not None and not rel_tol > 0:
        raise ValueError(f"rel_tol={rel_tol}: a relative standard error target is > 0 (or None for a fixed count)")
    if min_samples < 2:
        raise ValueError(f"min_samples={min_samples}: a standard error needs at least 2 samples")
    hvp, tick = _counted(hvp_function(loss_fn, theta, l2), progress, max_samples, "Hessian trace (Hutchinson probes)")
    g = torch.Generator().manual_seed(seed)
    vals: list[float] = []
    try:
        while len(vals) < max_samples:
            v = rademacher(theta.numel(), g, theta)
            vals.append(float(v @ hvp(v)))
            if rel_tol is not None and len(vals) >= min_samples:
                a = np.asarray(vals)
                if a.std(ddof=1) / np.sqrt(len(a)) <= rel_tol * abs(a.mean()):
                    break
    finally:
        tick(None)
    a = np.asarray(vals)
    se = float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")
    return TraceEstimate(float(a.mean()), se, len(a))


def hutchinson_trace(
    loss_fn: LossFn,
    theta: torch.Tensor,
    num_samples: int,
    seed: int = 0,
    l2: float = 0.0,
    rel_tol: float | None = None,
    min_samples: int = 10,
    progress: Progress = False,
) -> tuple[float, float]:
    """tr(H) ≈ mean of vᵀHv over Rademacher v; returns (mean, standard error).

    ``num_samples`` is the count, or the maximum when ``rel_tol`` asks to stop early (:func:`trace_estimate`).
    """
    est = trace_estimate(loss_fn, theta, num_samples, rel_tol, min(min_samples, max(2, num_samples)), seed, l2, progress)
    return est.mean, est.stderr


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
    loss_fn: LossFn,
    theta: torch.Tensor,
    num_probes: int = 4,
    lanczos_steps: int = 40,
    seed: int = 0,
    grid: np.ndarray | None = None,
    sigma: float | None = None,
    progress: Progress = False,
) -> dict[str, np.ndarray]:
    """Eigenvalue density by stochastic Lanczos quadrature (Ghorbani et al. 2019), Gaussian-broadened.

    Returns grid, density (integrates to ~1), and the Ritz nodes/weights of every probe.
    """
    n = theta.numel()
    hvp, tick = _counted(
        hvp_function(loss_fn, theta), progress, num_probes * min(lanczos_steps, n), f"Hessian density (SLQ, {num_probes} probes)"
    )
    g = torch.Generator().manual_seed(seed)
    nodes, weights = [], []
    try:
        for _ in range(num_probes):
            v0 = torch.randn(n, generator=g, dtype=torch.float64).to(theta.dtype)
            a, b = lanczos(hvp, n, lanczos_steps, v0)
            T = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
            ev, evec = np.linalg.eigh(T)
            nodes.append(ev)
            weights.append(evec[0] ** 2)
    finally:
        tick(None)
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
