"""``analysis=interpolation``: θ(α) = θ_a + α(θ_b − θ_a) between two trained models (Li et al. Fig. 2)."""
from __future__ import annotations

import numpy as np

from lsx.landscape.directions import direction_between
from lsx.plots.surfaces import plot_interpolation

from .base import JobContext, JobOutput, register_job
from .landscape_common import axis, endpoint_checkpoint, evaluate_points, load_point, same_architecture


@register_job("interpolation")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    if len(a["endpoints"]) != 2:
        raise ValueError(f"analysis.endpoints needs exactly 2 entries, got {len(a['endpoints'])}")
    alphas = axis(a["alpha"], "analysis.alpha")
    alphas = np.union1d(alphas, [0.0, 1.0]) if alphas[0] <= 0 and alphas[-1] >= 1 else alphas  # the endpoints themselves
    ca, cb = (endpoint_checkpoint(ctx, e) for e in a["endpoints"])
    same_architecture([ca, cb])
    pa, pb = load_point(ca, a["bn"]), load_point(cb, a["bn"])
    d = direction_between(pa.theta, pb.theta)
    if float(d.norm()) == 0.0:
        raise ValueError("the two endpoints are identical; interpolation needs two different models")
    labels = [e.get("label") or f"endpoint {i}" for i, e in enumerate(a["endpoints"])]
    prov = {"kind": "checkpoint_to_checkpoint", "from": str(ca.path), "to": str(cb.path), "labels": labels, "bn": a["bn"]}
    res = evaluate_points(ctx, pa, d[None], alphas[:, None], "interpolation.h5", prov, a["bn"], a["chunk"], a["flush_every"])
    curves = {k: np.asarray(res[k]) for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    plot_interpolation(alphas, curves, ctx.path("interpolation.png"), title=f"{ca.model_name}: {labels[0]} → {labels[1]}", labels=labels)
    np.savez(ctx.path("interpolation.npz"), alpha=alphas, **curves)
    i0, i1 = np.abs(alphas).argmin(), np.abs(alphas - 1).argmin()
    inner = (alphas >= 0) & (alphas <= 1)
    metrics = {
        "train_loss_a": float(curves["train_loss"][i0]), "train_loss_b": float(curves["train_loss"][i1]),
        "test_acc_a": float(curves["test_acc"][i0]), "test_acc_b": float(curves["test_acc"][i1]),
        "max_train_loss_between": float(np.nanmax(curves["train_loss"][inner])) if inner.any() else float("nan"),
        "distance": float(d.norm()),
    }
    return JobOutput(metrics, {"plot": "interpolation.png", "data": "interpolation.h5", "curves": "interpolation.npz"})
