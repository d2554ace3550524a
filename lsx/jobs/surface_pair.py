"""``analysis=surface_kinds``: a 2D surface spanned by any two of Xu et al.'s direction kinds
(e.g. P.E. × N.E. shows a saddle; Gaussian × independent checkpoint the "bottom of a wine bottle")."""

from __future__ import annotations

import numpy as np
import torch

from lsx.landscape.engine.grids import grid_points
from lsx.plots.surfaces import plot_surface_views
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .curve_taxonomy import _direction, check_kinds, study_point
from .landscape_common import axis, evaluate_points, record_centre_loss, value_at_origin


@register_job("surface_kinds")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    kinds = check_kinds([a["x_kind"], a["y_kind"]])
    x, y = axis(a["x"], "analysis.x"), axis(a["y"], "analysis.y")
    run_, epoch, p, later = study_point(ctx, kinds)
    pairs = [_direction(k, ctx, a, p, run_, later) for k in kinds]
    dirs = torch.stack([d for d, _ in pairs])
    prov = {"directions": [{"kind": k, **m} for k, (_, m) in zip(kinds, pairs)], "epoch": epoch, "bn": a["bn"]}
    res = evaluate_points(ctx, p, dirs, grid_points(x, y), "surface.h5", prov, a["bn"], a.get("chunk"), a["flush_every"])
    loss = np.asarray(res["train_loss"]).reshape(len(y), len(x))
    record_centre_loss(ctx, p.checkpoint, a["bn"], value_at_origin(loss, y, x))
    views = plot_surface_views(
        x,
        y,
        loss,
        ctx.job_dir,
        "surface",
        "train loss",
        log=bool(a["log_scale"]),
        points={"θ": (0.0, 0.0)},
        xlabel=f"λ ({kinds[0]})",
        ylabel=f"μ ({kinds[1]})",
    )
    atomic_savez(
        ctx.path("surface_grid.npz"), x=x, y=y, train_loss=loss, test_loss=np.asarray(res["test_loss"]).reshape(len(y), len(x))
    )
    arts = {f"plot_{k}": v.name for k, v in views.items()} | {"data": "surface.h5", "grid": "surface_grid.npz"}
    return JobOutput(
        {
            "min_train_loss": float(np.nanmin(loss)),
            "max_train_loss": float(np.nanmax(loss)),
            "center_train_loss": float(loss[np.abs(y).argmin(), np.abs(x).argmin()]),
        },
        arts,
    )
