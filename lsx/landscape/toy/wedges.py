"""The n-wedge toy landscape (Fort & Jastrzebski 2019, Sec. 3) and its three experiments.

The low-loss set is a union of n-dimensional "wedges": in (optionally rotated) coordinates c,
every axis-aligned n-dimensional coordinate subspace. The loss is the distance to the nearest
one: sort |c_i|, keep the D−n smallest, L = sqrt(Σ c_i²) over them. Exact, cheap and with a known
answer, it reproduces the paper's qualitative claims:

1. optimising inside a random d-dimensional affine hyperplane reaches zero loss iff d ≳ D−n
   (a generic d-plane meets an n-subspace of R^D only when d + n ≥ D);
2. two independent optima lie on different wedges: the straight line between them has high
   loss, the hyperplane-constrained connector does not, and the deviations from the line form
   two blocks (each half of the tunnel leans into its own endpoint's wedge);
3. seen along random directions from a point on a wedge, the loss looks like a round well,
   although n directions are exactly flat.

The problems are tiny and batched: on a CPU shared with other processes run them with
``torch.set_num_threads(1)`` (measured 70x faster than 2 contending threads).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from ..paths.connectors import low_loss_connector


def random_rotation(dim: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A Haar-random orthogonal matrix: QR of a seeded Gaussian, signs fixed by diag(R) > 0."""
    g = torch.Generator().manual_seed(int(seed))
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(r.diagonal()).where(r.diagonal() != 0, torch.ones(()))[None, :]
    return q.to(dtype)


class WedgeLoss:
    """Distance to the union of the (rotated) axis-aligned n-dimensional coordinate subspaces of R^D.

    Works on a point (D,) or a batch (..., D); differentiable (torch autograd). With
    ``rotation_seed`` the wedges are rotated by a random orthogonal Q: coordinates c = Q P.
    """

    def __init__(self, D: int, n: int, rotation_seed: int | None = None, dtype: torch.dtype = torch.float64) -> None:
        if not (isinstance(D, int) and isinstance(n, int)) or D < 2 or not 1 <= n < D:
            raise ValueError(f"need integers D >= 2 and 1 <= n < D (wedge dimension below the space's), got D={D}, n={n}")
        self.D, self.n, self.rotation_seed = D, n, rotation_seed
        self.rotation = None if rotation_seed is None else random_rotation(D, rotation_seed, dtype)

    def coords(self, P: torch.Tensor) -> torch.Tensor:
        """Wedge-aligned coordinates c = Q P (identity without rotation)."""
        if P.shape[-1] != self.D:
            raise ValueError(f"points have last dimension {P.shape[-1]}, expected D={self.D}")
        return P if self.rotation is None else P @ self.rotation.to(P.dtype).T

    def __call__(self, P: torch.Tensor) -> torch.Tensor:
        c = self.coords(P)
        smallest = torch.topk(c.abs(), self.D - self.n, dim=-1, largest=False).values
        return torch.linalg.vector_norm(smallest, dim=-1)

    def nearest_point(self, P: torch.Tensor) -> torch.Tensor:
        """The closest point of the low-loss set (the D−n smallest coordinates set to zero)."""
        c = self.coords(P).clone()
        idx = torch.topk(c.abs(), self.D - self.n, dim=-1, largest=False).indices
        c.scatter_(-1, idx, 0.0)
        return c if self.rotation is None else c @ self.rotation.to(c.dtype)

    def wedge_basis(self, P: torch.Tensor) -> torch.Tensor:
        """Orthonormal basis (D, n) of the wedge nearest to the point P (its n long directions)."""
        c = self.coords(P)
        idx = torch.topk(c.abs(), self.n, largest=True).indices
        e = torch.zeros(self.D, self.n, dtype=P.dtype)
        e[idx, torch.arange(self.n)] = 1.0
        return e if self.rotation is None else self.rotation.to(P.dtype).T @ e


def _minimize_batch(loss: Any, x0: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """Adam with cosine-decayed LR on a batch of independent problems (sum of per-row losses).

    Adam is element-wise, so summing the per-row losses optimises every row independently.
    The decay lets Adam settle into the cone-shaped (non-smooth) minimum of the distance loss.
    """
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss(x).sum().backward()
        opt.step()
        sched.step()
    return x.detach()


def _random_far_points(num: int, D: int, radius: float, g: torch.Generator) -> torch.Tensor:
    p = torch.randn(num, D, generator=g, dtype=torch.float64)
    return radius * p / p.norm(dim=-1, keepdim=True)


def hyperplane_success(
    D: int,
    n: int,
    dims: Sequence[int],
    trials: int,
    seed: int,
    rotation_seed: int | None = None,
    radius: float = 10.0,
    steps: int = 1000,
    lr: float = 0.1,
    tol: float = 1e-3,
) -> dict[str, np.ndarray | np.generic]:
    """Success rate of optimisation restricted to a random d-dim hyperplane P = Mθ + P0 (Sec. 3).

    M (D×d) has N(0, 1/D) entries, P0 is a random point at distance ``radius`` from the origin,
    θ starts at 0; success = final loss below ``tol``. The threshold is expected at d ≈ D−n.
    All trials of one d are optimised together (independent rows of one batch).
    """
    dims = [int(d) for d in dims]
    if trials < 1 or not dims or any(not 1 <= d <= D for d in dims):
        raise ValueError(f"need trials >= 1 and every d in 1..D={D}; got trials={trials}, dims={dims}")
    wedge = WedgeLoss(D, n, rotation_seed)
    g = torch.Generator().manual_seed(int(seed))
    final = np.zeros((len(dims), trials))
    initial = np.zeros((len(dims), trials))
    for i, d in enumerate(dims):
        M = torch.randn(trials, D, d, generator=g, dtype=torch.float64) / math.sqrt(D)
        P0 = _random_far_points(trials, D, radius, g)
        on_plane = lambda th: wedge((M @ th.unsqueeze(-1)).squeeze(-1) + P0)  # noqa: E731
        th = _minimize_batch(on_plane, torch.zeros(trials, d, dtype=torch.float64), steps, lr)
        with torch.no_grad():
            final[i] = on_plane(th).numpy()
            initial[i] = wedge(P0).numpy()
    return {
        "dims": np.asarray(dims),
        "success_rate": (final < tol).mean(axis=1),
        "final_loss": final,
        "median_final_loss": np.median(final, axis=1),
        "initial_loss": initial,
        "threshold_dim": np.int64(D - n),
        "tol": np.float64(tol),
    }


def two_optima_tunnel(
    D: int,
    n: int,
    seed: int,
    rotation_seed: int | None = None,
    radius: float = 10.0,
    optimum_steps: int = 1000,
    optimum_lr: float = 0.1,
    num_segments: int = 10,
    connector_steps: int = 500,
    connector_lr: float = 0.05,
    points_per_segment: int = 0,
) -> dict[str, Any]:
    """Two independently optimised optima, the loss on the line between them, and the 1-connector.

    Returns plain arrays: ``t``, ``linear_loss``, ``connector_loss``, ``cosines`` (deviations of
    the interior nodes, Fig. 3 middle), node losses, flags and a summary (max losses, contrast of
    the two-block structure: mean within-half cosine minus mean across-half cosine).
    """
    wedge = WedgeLoss(D, n, rotation_seed)
    g = torch.Generator().manual_seed(int(seed))
    starts = _random_far_points(2, D, radius, g)
    optima = _minimize_batch(wedge, starts, optimum_steps, optimum_lr)
    res = low_loss_connector(
        wedge,
        optima[0],
        optima[1],
        num_segments=num_segments,
        steps=connector_steps,
        lr=connector_lr,
        schedule="cosine",
        points_per_segment=points_per_segment,
    )
    return {
        "optima": optima.numpy(),
        "optima_loss": wedge(optima).detach().numpy(),
        "t": res.t,
        "linear_loss": res.linear["loss"],
        "connector_loss": res.connector["loss"],
        "node_start_loss": res.start_loss,
        "node_final_loss": res.final_loss,
        "diverged": res.diverged,
        "constraint_residual": res.constraint_residual,
        "cosines": res.cosines,
        "deviation_norms": res.deviation_norms,
        "points": res.points.numpy(),
        "line_points": res.line_points.numpy(),
        "summary": res.summary,
        "warnings": res.warnings,
    }


def radial_profile(
    D: int,
    n: int,
    seed: int,
    num_directions: int = 20,
    distances: Sequence[float] | np.ndarray | None = None,
    rotation_seed: int | None = None,
    radius: float = 10.0,
) -> dict[str, np.ndarray | np.generic]:
    """Loss vs distance along random unit directions from a point on a wedge (a round-looking well).

    The point is a random point at distance ``radius`` moved to its nearest wedge. For small r
    the loss is ≈ r·‖u_short‖ with ‖u_short‖ ≈ sqrt((D−n)/D) for every random u, so all
    directions look alike (``relative_spread`` = std/mean across directions is small) although
    the n directions of the wedge itself are flat (``along_wedge``: loss along one of them).
    """
    if num_directions < 1:
        raise ValueError(f"num_directions must be >= 1, got {num_directions}")
    wedge = WedgeLoss(D, n, rotation_seed)
    g = torch.Generator().manual_seed(int(seed))
    p = wedge.nearest_point(_random_far_points(1, D, radius, g)[0])
    r = np.linspace(0.0, radius, 41) if distances is None else np.asarray(distances, dtype=float)
    u = torch.randn(num_directions, D, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=-1, keepdim=True)
    rt = torch.as_tensor(r, dtype=torch.float64)
    with torch.no_grad():
        losses = wedge(p[None, None, :] + rt[None, :, None] * u[:, None, :]).numpy()
        w = wedge.wedge_basis(p)[:, 0]
        along = wedge(p[None, :] + rt[:, None] * w[None, :]).numpy()
    mean, std = losses.mean(axis=0), losses.std(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.where(mean > 0, std / np.where(mean > 0, mean, 1.0), np.nan)
    return {
        "distances": r,
        "losses": losses,
        "mean": mean,
        "std": std,
        "relative_spread": spread,
        "along_wedge": along,
        "expected_slope": np.float64(math.sqrt((D - n) / D)),
        "center": p.numpy(),
        "center_loss": np.float64(float(wedge(p))),
    }
