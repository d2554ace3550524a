"""``analysis=curves1d``: 1D curves along several random directions with stationary-point counts."""

from __future__ import annotations

import numpy as np

from lsx.landscape.surfaces.stationary import count_stationary_points
from lsx.plots.surfaces import plot_curves
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import (
    axis,
    evaluate_points,
    load_point,
    param_subset,
    random_directions,
    record_centre_loss,
    value_at_origin,
)


@register_job("curves1d")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    k = int(a["num_directions"])
    if k < 1:
        raise ValueError(f"analysis.num_directions must be >= 1, got {k}")
    xs = axis(a["range"], "analysis.range")
    ckpt = ctx.train(seed=int(a["target_seed"])).load()
    p = load_point(ckpt, bn=a["bn"])
    seeds = [int(a["direction_seed"]) + i for i in range(k)]
    subset = param_subset(ctx, p.flat)  # analysis.params: the directions move only these
    dirs = random_directions(p, seeds, a["norm"], a["ignore"], subset)
    # point j of direction i has coordinate xs[j] on axis i and 0 elsewhere
    coords = np.zeros((k * len(xs), k))
    for i in range(k):
        coords[i * len(xs) : (i + 1) * len(xs), i] = xs
    prov = {
        "kind": "random_gaussian",
        "seeds": seeds,
        "norm": a["norm"],
        "ignore": a["ignore"],
        "bn": a["bn"],
        "center": str(ckpt.path),
    }
    if subset is not None:
        prov["params"] = subset.record()
    res = evaluate_points(ctx, p, dirs, coords, "curves.h5", prov, a["bn"], a["chunk"], a["flush_every"])
    curves = {m: np.asarray(res[m]).reshape(k, len(xs)) for m in ("train_loss", "train_acc", "test_loss", "test_acc")}
    record_centre_loss(ctx, ckpt, a["bn"], value_at_origin(curves["train_loss"][0], xs))
    counts = [count_stationary_points(c) for c in curves["train_loss"]]
    labels = [f"dir seed {s}: {n} stationary pts" for s, n in zip(seeds, counts)]
    plot_curves(
        xs,
        curves["train_loss"],
        labels,
        ctx.path("curves_train_loss.png"),
        "train loss",
        log=bool(a["log_scale"]),
        title=f"{ckpt.model_name}: {k} {a['norm']}-normalized directions",
    )
    plot_curves(xs, curves["test_acc"], labels, ctx.path("curves_test_acc.png"), "test accuracy")
    atomic_savez(ctx.path("curves.npz"), x=xs, seeds=np.array(seeds), stationary_points=np.array(counts), **curves)
    metrics = {
        "stationary_points": counts,
        "mean_stationary_points": float(np.mean(counts)),
        "max_train_loss": float(np.nanmax(curves["train_loss"])),
        "center_train_loss": float(curves["train_loss"][0, np.abs(xs).argmin()]),
    }
    return JobOutput(
        metrics,
        {
            "plot_train_loss": "curves_train_loss.png",
            "plot_test_acc": "curves_test_acc.png",
            "data": "curves.h5",
            "curves": "curves.npz",
        },
    )
