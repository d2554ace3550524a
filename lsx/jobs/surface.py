"""``analysis=surface2d``: filter-normalized 2D surface around one optimum (Li et al. Fig. 1, 5–7)."""
from __future__ import annotations

import numpy as np
import torch

from lsx.landscape.directions import random_direction
from lsx.plots.surfaces import plot_surface_views

from .base import JobContext, JobOutput, register_job
from .landscape_common import axis, center_checkpoint, evaluate_points, load_point

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
    dirs = torch.stack([random_direction(p.flat, p.theta, int(s), a["norm"], a["ignore"]) for s in a["direction_seeds"]])
    X, Y = np.meshgrid(x, y)  # rows follow y, columns follow x: values[i_y, i_x]
    coords = np.stack([X.ravel(), Y.ravel()], axis=1)
    prov = {"kind": "random_gaussian", "seeds": list(map(int, a["direction_seeds"])), "norm": a["norm"],
            "ignore": a["ignore"], "bn": a["bn"], "center": str(ckpt.path)}
    res = evaluate_points(ctx, p, dirs, coords, "surface.h5", prov, a["bn"], a["chunk"], a["flush_every"])
    grids = {k: np.asarray(res[k]).reshape(len(y), len(x)) for k in METRICS}
    np.savez(ctx.path("surface_grid.npz"), x=x, y=y, **grids)
    views = plot_surface_views(x, y, grids[a["plot_metric"]], ctx.job_dir, "surface", label=a["plot_metric"].replace("_", " "),
                               log=bool(a["log_scale"]), points={"θ*": (0.0, 0.0)} if x[0] <= 0 <= x[-1] and y[0] <= 0 <= y[-1] else None)
    i0 = (np.abs(y).argmin(), np.abs(x).argmin())
    tl = grids["train_loss"]
    metrics = {
        "center_train_loss": float(tl[i0]), "center_test_acc": float(grids["test_acc"][i0]),
        "max_train_loss": float(np.nanmax(tl)), "min_train_loss": float(np.nanmin(tl)),
        "nan_points": int(np.isnan(tl).sum()), "grid": [len(x), len(y)], **extra_metrics,
    }
    arts = {f"plot_{k}": v.name for k, v in views.items()}
    arts.update(data="surface.h5", grid="surface_grid.npz")
    return JobOutput(metrics, arts)
