"""``analysis=plane``: the loss on the plane through three independently trained optima."""

from __future__ import annotations

import numpy as np
import torch

from lsx.landscape.permutation.align import align_checkpoints
from lsx.plots.surfaces import plot_surface_views
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import evaluate_points, load_point, param_subset, record_centre_loss, restricted, same_architecture


def plane_basis(t0: torch.Tensor, t1: torch.Tensor, t2: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """Orthonormal (Gram–Schmidt) basis u, v of the plane and the 2D positions of the three points."""
    a, b = t1 - t0, t2 - t0
    u = a / a.norm()
    b_perp = b - (b @ u) * u
    if float(b_perp.norm()) < 1e-12 * float(b.norm() + 1e-30):
        raise ValueError("the three optima are collinear (or two are identical); they span no plane")
    v = b_perp / b_perp.norm()
    pos = np.array([[0.0, 0.0], [float(a @ u), 0.0], [float(b @ u), float(b @ v)]])
    return torch.stack([u, v]), pos


def subset_plane(thetas: list[torch.Tensor], subset) -> tuple[torch.Tensor, np.ndarray]:
    """:func:`plane_basis` of the three points, or with a parameter subset (``analysis.params``) of θ_0 and the other
    two moved from it only in the selected parameters: the plane then lies in the subset, through θ_0."""
    t0 = thetas[0]
    return plane_basis(t0, *(t0 + restricted(subset, t - t0) for t in thetas[1:]))


def three_seeds(seeds) -> list[int]:
    seeds = [int(s) for s in seeds]
    if len(seeds) != 3 or len(set(seeds)) != 3:
        raise ValueError(f"analysis.seeds must be 3 different training seeds, got {seeds}")
    return seeds


def plane_grid(pos: np.ndarray, margin: float, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Axes around the three projected points (``margin`` × their extent beyond them) and the point list."""
    if n < 2:
        raise ValueError(f"analysis.num must be >= 2, got {n}")
    lo, hi = pos.min(0), pos.max(0)
    pad = float(margin) * (hi - lo).max()
    x, y = np.linspace(lo[0] - pad, hi[0] + pad, n), np.linspace(lo[1] - pad, hi[1] + pad, n)
    X, Y = np.meshgrid(x, y)
    return x, y, np.stack([X.ravel(), Y.ravel()], 1)


@register_job("plane")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    seeds = three_seeds(a["seeds"])
    ckpts = [r.load() for r in ctx.optima(seeds)]
    same_architecture(ckpts)
    ckpts = align_checkpoints(ckpts, a.get("align"), lambda: ctx.landscape_subset().train[0])  # analysis.align
    pts = [load_point(c, a["bn"]) for c in ckpts]
    subset = param_subset(ctx, pts[0].flat)  # analysis.params: the plane moves only these
    basis, pos = subset_plane([p.theta for p in pts], subset)
    n = int(a["num"])
    x, y, coords = plane_grid(pos, a["margin"], n)
    prov = {"kind": "plane_of_three", "checkpoints": [str(c.path) for c in ckpts], "positions": pos.tolist(), "bn": a["bn"]}
    if subset is not None:
        prov["params"] = subset.record()
    res = evaluate_points(ctx, pts[0], basis, coords, "plane.h5", prov, a["bn"], a["chunk"], a["flush_every"])
    grids = {k: np.asarray(res[k]).reshape(n, n) for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    for c in ckpts:  # the grid need not pass through the optima
        record_centre_loss(ctx, c, a["bn"])
    atomic_savez(ctx.path("plane_grid.npz"), x=x, y=y, positions=pos, **grids)
    views = plot_surface_views(
        x,
        y,
        grids["train_loss"],
        ctx.job_dir,
        "plane",
        "train loss",
        log=bool(a["log_scale"]),
        points={f"seed {s}": tuple(p) for s, p in zip(seeds, pos)},
    )
    arts = {f"plot_{k}": v.name for k, v in views.items()}
    arts.update(data="plane.h5", grid="plane_grid.npz")
    metrics = {
        "distances": [float(np.linalg.norm(pos[i] - pos[j])) for i, j in ((0, 1), (0, 2), (1, 2))],
        "max_train_loss": float(np.nanmax(grids["train_loss"])),
        "min_train_loss": float(np.nanmin(grids["train_loss"])),
    }
    return JobOutput(metrics, arts)
