"""``analysis=surface2d``: filter-normalized 2D surface around one optimum (Li et al. Fig. 1, 5–7).

With ``convexity.enabled`` also Li et al.'s convexity map (principal curvatures; the published version's
'A note of caution' section, not in the ICLR 2018 submission text): at every ``hessian_every``-th grid
point (rows and columns, anchored at the centre) the extreme Hessian eigenvalues of the train loss
(all parameters, BN in eval mode with the centre's statistics), the map of |λ_min/λ_max|, and a chaos
summary (fraction of the mapped points with significant negative curvature, mean negative ratio).
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import numpy as np
import torch

from lsx.distributed import run_memo_loop_sharded
from lsx.landscape.curvature.sharpness import chaos_summary, principal_curvatures, strided_indices
from lsx.plots.surfaces import plot_surface_views
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import (
    axis,
    center_checkpoint,
    evaluate_points,
    load_point,
    param_subset,
    random_directions,
    record_centre_loss,
    value_at_origin,
)

METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


@register_job("surface2d")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    if len(a["direction_seeds"]) != 2:
        raise ValueError(f"analysis.direction_seeds needs 2 seeds (one per axis), got {list(a['direction_seeds'])}")
    if a["plot_metric"] not in METRICS:
        raise ValueError(f"analysis.plot_metric {a['plot_metric']!r}; valid: {', '.join(METRICS)}")
    x, y = axis(a["x"], "analysis.x"), axis(a["y"], "analysis.y")
    extra_metrics = {}
    if a.get("pretrain_optima"):  # quickstart: train every optimum of optima.seeds (cached) and report them
        for r in ctx.optima():
            extra_metrics[f"optimum_seed{r.seed}_test_acc"] = r.summary.get("test_acc")
    ckpt = center_checkpoint(ctx)
    p = load_point(ckpt, bn=a["bn"])
    subset = param_subset(ctx, p.flat)  # analysis.params: the directions move only these
    dirs = random_directions(p, a["direction_seeds"], a["norm"], a["ignore"], subset)
    X, Y = np.meshgrid(x, y)  # rows follow y, columns follow x: values[i_y, i_x]
    coords = np.stack([X.ravel(), Y.ravel()], axis=1)
    prov = {
        "kind": "random_gaussian",
        "seeds": list(map(int, a["direction_seeds"])),
        "norm": a["norm"],
        "ignore": a["ignore"],
        "bn": a["bn"],
        "center": str(ckpt.path),
    }
    if subset is not None:
        prov["params"] = subset.record()
    res = evaluate_points(ctx, p, dirs, coords, "surface.h5", prov, a["bn"], a["chunk"], a["flush_every"])
    grids = {k: np.asarray(res[k]).reshape(len(y), len(x)) for k in METRICS}
    atomic_savez(ctx.path("surface_grid.npz"), x=x, y=y, **grids)
    views = plot_surface_views(
        x,
        y,
        grids[a["plot_metric"]],
        ctx.job_dir,
        "surface",
        label=a["plot_metric"].replace("_", " "),
        log=bool(a["log_scale"]),
        points={"θ*": (0.0, 0.0)} if x[0] <= 0 <= x[-1] and y[0] <= 0 <= y[-1] else None,
    )
    i0 = (np.abs(y).argmin(), np.abs(x).argmin())
    tl = grids["train_loss"]
    record_centre_loss(ctx, ckpt, a["bn"], value_at_origin(tl, y, x))
    metrics = {
        "center_train_loss": float(tl[i0]),
        "center_test_acc": float(grids["test_acc"][i0]),
        "max_train_loss": float(np.nanmax(tl)),
        "min_train_loss": float(np.nanmin(tl)),
        "nan_points": int(np.isnan(tl).sum()),
        "grid": [len(x), len(y)],
        **extra_metrics,
    }
    arts = {f"plot_{k}": v.name for k, v in views.items()}
    arts.update(data="surface.h5", grid="surface_grid.npz")
    conv = a.get("convexity") or {}
    if conv.get("enabled", False):
        m, art = convexity_map(ctx, ckpt, p, dirs, x, y, grids["train_loss"], conv)
        metrics.update(m)
        arts.update(art)
    return JobOutput(metrics, arts)


def _curvatures(f, theta: torch.Tensor, subset, tol: float, seed: int):
    """(λ_min, λ_max) of the Hessian at θ, or of its block H[S, S] with a parameter subset."""
    if subset is not None:
        from lsx.landscape.engine.subset import subset_loss

        f, theta = subset_loss(f, theta, subset.index)
    return principal_curvatures(f, theta, tol=tol, seed=seed)


def convexity_map(
    ctx: JobContext, ckpt, p, dirs: torch.Tensor, x: np.ndarray, y: np.ndarray, loss: np.ndarray, conv: dict
) -> tuple[dict, dict]:
    """λ_min, λ_max at strided grid points (one resumable stage per point), the ratio map and its summary."""
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    from .hessian import network_loss

    every = int(conv.get("hessian_every", 1))
    idx = strided_indices((len(y), len(x)), every)
    f, flat = network_loss(ctx, ckpt.build_model(), int(conv["num_examples"]))
    if flat.num_params != p.flat.num_params:
        raise ValueError("convexity: the surface's flat layout does not match the model's parameters (use bn: keep or upbn)")
    subset = param_subset(ctx, flat)  # the curvatures of the block H[S, S] the surface moves in
    tol, seed = float(conv.get("tol", 1e-2)), int(conv.get("seed", 0))

    def curvatures(n: int, theta: torch.Tensor, at: str):
        c = _curvatures(f, theta, subset, tol, seed)
        if ctx.progress:
            print(f"convexity: point {n + 1}/{len(idx)} ({at}): λ_min {c.lambda_min:.3g}, λ_max {c.lambda_max:.3g}", flush=True)
        return c

    def points(memo) -> tuple[np.ndarray, np.ndarray]:  # one resumable stage per point: curvature_<iy>_<ix>
        lo = np.full(len(x) * len(y), np.nan)
        hi = np.full(len(x) * len(y), np.nan)
        for n, i in enumerate(idx):
            iy, ix = divmod(int(i), len(x))
            k = flat.num_params
            theta = p.theta[:k] + float(x[ix]) * dirs[0][:k] + float(y[iy]) * dirs[1][:k]
            c = memo(f"{iy}_{ix}", partial(curvatures, n, theta, f"x={x[ix]:.3g}, y={y[iy]:.3g}"))
            lo[i], hi[i] = c.lambda_min, c.lambda_max
        return lo, hi

    # the points are independent: under torchrun/SLURM each is computed on one rank and saved in blocks
    lo, hi = run_memo_loop_sharded(ctx, "curvature_", points, lambda: SimpleNamespace(lambda_min=np.nan, lambda_max=np.nan))
    lo, hi = lo.reshape(len(y), len(x)), hi.reshape(len(y), len(x))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(lo / hi)
    summary = chaos_summary(lo[np.isfinite(lo)], hi[np.isfinite(lo)], float(conv.get("threshold", 0.1)))
    atomic_savez(ctx.path("convexity.npz"), x=x, y=y, lambda_min=lo, lambda_max=hi, ratio=ratio, hessian_every=every)
    fig, ax = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
    X, Y = np.meshgrid(x, y)
    ax.contour(X, Y, np.log10(np.clip(loss, 1e-8, None)), levels=15, colors="0.6", linewidths=0.6)
    mask = np.isfinite(ratio)
    sc = ax.scatter(
        X[mask],
        Y[mask],
        c=ratio[mask],
        cmap="viridis",
        vmin=0,
        vmax=max(0.5, float(np.nanmax(ratio)) if mask.any() else 0.5),
        s=max(20, 1600 / max(1, int(np.sqrt(mask.sum()))) ** 2),
        marker="s",
    )
    fig.colorbar(sc, ax=ax, label="|λ_min / λ_max|")
    ax.set_xlabel("α (direction 1)")
    ax.set_ylabel("β (direction 2)")
    ax.set_title(
        f"convexity map (n={int(mask.sum())} points, every {every}): non-convex fraction " f"{summary['nonconvex_fraction']:.2f}",
        fontsize=9,
    )
    save_figure(fig, ctx.path("convexity_map.png"))
    ic = (int(np.abs(y).argmin()), int(np.abs(x).argmin()))
    metrics = {f"convexity_{k}": v for k, v in summary.items()}
    metrics.update(
        convexity_center_ratio=float(ratio[ic]),
        convexity_center_lambda_max=float(hi[ic]),
        convexity_center_lambda_min=float(lo[ic]),
        convexity_threshold=float(conv.get("threshold", 0.1)),
    )
    return metrics, {"convexity_map": "convexity_map.png", "convexity": "convexity.npz"}
