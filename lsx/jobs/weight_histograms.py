"""``analysis=weight_histograms``: weight distributions of several trained models (Li et al. Fig. 3)."""

from __future__ import annotations

from lsx.landscape.surfaces.weights import weight_histograms
from lsx.plots.surfaces import plot_weight_histograms
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import endpoint_checkpoints, load_point, same_architecture


@register_job("weight_histograms")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    if not a["models"]:
        raise ValueError("analysis.models is empty; list at least one model spec")
    ckpts = endpoint_checkpoints(ctx, list(a["models"]))
    same_architecture(ckpts)
    points = [load_point(c) for c in ckpts]
    labels = [spec.get("label") or f"model {i}" for i, spec in enumerate(a["models"])]
    h = weight_histograms({lab: p.theta for lab, p in zip(labels, points)}, points[0].flat, a["ignore"], int(a["bins"]))
    plot_weight_histograms({k: (h.density[k], h.edges) for k in labels}, ctx.path("weight_histograms.png"))
    atomic_savez(ctx.path("weight_histograms.npz"), edges=h.edges, **{f"counts_{i}": h.counts[k] for i, k in enumerate(labels)})
    metrics = {f"{k}_{s}": v for k in labels for s, v in h.stats[k].items() if s in ("std", "mean_abs")}
    return JobOutput(metrics, {"plot": "weight_histograms.png", "histograms": "weight_histograms.npz"})
