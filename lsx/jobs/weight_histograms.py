"""``analysis=weight_histograms``: weight distributions of several trained models (Li et al. Fig. 3)."""
from __future__ import annotations

import numpy as np

from lsx.plots.surfaces import plot_weight_histograms

from .base import JobContext, JobOutput, register_job
from .landscape_common import endpoint_checkpoint, load_point


@register_job("weight_histograms")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    if not a["models"]:
        raise ValueError("analysis.models is empty; list at least one model spec")
    values = {}
    for i, spec in enumerate(a["models"]):
        p = load_point(endpoint_checkpoint(ctx, spec))
        w = p.theta
        if a["ignore"] == "biasbn":
            w = w[p.flat.mask(["weight"])]
        values[spec.get("label") or f"model {i}"] = w.numpy()
    lo = min(float(v.min()) for v in values.values())
    hi = max(float(v.max()) for v in values.values())
    edges = np.linspace(lo, hi, int(a["bins"]) + 1)
    hists = {k: (np.histogram(v, bins=edges, density=True)[0], edges) for k, v in values.items()}
    plot_weight_histograms(hists, ctx.path("weight_histograms.png"))
    np.savez(ctx.path("weight_histograms.npz"), edges=edges, **{f"counts_{i}": h[0] for i, h in enumerate(hists.values())})
    metrics = {f"{k}_std": float(v.std()) for k, v in values.items()} | {f"{k}_mean_abs": float(np.abs(v).mean()) for k, v in values.items()}
    return JobOutput(metrics, {"plot": "weight_histograms.png", "histograms": "weight_histograms.npz"})
