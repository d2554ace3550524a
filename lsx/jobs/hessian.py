"""``analysis=hessian``: Hessian spectrum at an optimum — top/bottom eigenvalues (Lanczos), trace
(Hutchinson), density (SLQ) — and Draxler's check that the smallest eigenvalues vanish at minima."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.curvature.hessian import hutchinson_trace, slq_density, top_eigenpairs
from lsx.landscape.engine.flat import FlatParams, functional_loss
from lsx.plots.common import integer_ticks, save_figure

from .base import JobContext, JobOutput, register_job
from .landscape_common import center_checkpoint, record_centre_loss


def network_loss(ctx: JobContext, model, num_examples: int, l2: float = 0.0):
    """Differentiable mean train loss on the first ``num_examples`` of the landscape subset (cross-entropy on the
    model's class logits: a configured ``loss`` is refused with one line rather than silently replaced)."""
    if ctx.cfg.get("loss"):
        raise ValueError(
            f"analysis={ctx.analysis.get('job')} differentiates cross-entropy on class logits; a configured "
            f"loss ({(ctx.cfg['loss'] or {}).get('_target_', ctx.cfg['loss'])}) is not supported by the "
            "Hessian-based jobs yet: drop loss= or use a surface/interpolation job"
        )
    s = ctx.landscape_subset()
    n = min(int(num_examples), len(s.train_x))
    x, y = s.train_x[:n], s.train_y[:n]
    batches = [(x[i : i + 256], y[i : i + 256]) for i in range(0, n, 256)]
    flat = FlatParams(model.eval())
    return functional_loss(model, flat, batches, l2=l2), flat


@register_job("hessian")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    ckpt = center_checkpoint(ctx, a.get("epoch"))
    model = ckpt.build_model()
    f, flat = network_loss(ctx, model, a["num_examples"], float(a["l2"]))
    theta = flat.get()
    with torch.no_grad():  # the loss whose Hessian this is (without an analysis.l2 term: one plain evaluation)
        record_centre_loss(ctx, ckpt, "keep", None if float(a["l2"]) else float(f(theta)))
    k = int(a["k"])
    if k >= flat.num_params:
        raise ValueError(f"analysis.k={k} is not smaller than the parameter count {flat.num_params}")
    # each stage is saved when done: a killed job resumes after the last finished one
    # progress: a bar on a terminal, a log line every 30 s in a log file (these stages run for minutes at paper scale)
    pr = ctx.point_progress
    top, bottom = (
        ctx.stage(
            f"eigsh_{which}",
            lambda which=which: top_eigenpairs(
                f, theta, k, which, tol=float(a["tol"]), maxiter=a.get("maxiter"), seed=int(a["seed"]), progress=pr
            ),
        )
        for which in ("LA", "SA")
    )
    tr, tr_se = ctx.stage("trace", lambda: hutchinson_trace(f, theta, int(a["trace_samples"]), seed=int(a["seed"]), progress=pr))
    dens = ctx.stage(
        "slq", lambda: slq_density(f, theta, int(a["slq_probes"]), int(a["slq_steps"]), seed=int(a["seed"]), progress=pr)
    )
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.semilogy(dens["grid"], np.clip(dens["density"], 1e-8, None))
    a1.set_xlabel("eigenvalue")
    a1.set_ylabel("density (SLQ)")
    a1.set_title(f"Hessian spectrum, trace ≈ {tr:.3g} ± {tr_se:.2g}", fontsize=9)
    a2.plot(range(1, len(top.values) + 1), top.values, "o-", label="largest (LA)")
    a2.plot(range(1, len(bottom.values) + 1), np.sort(bottom.values), "s-", label="smallest (SA)")
    a2.axhline(0, color="k", lw=0.5)
    a2.set_xlabel("index")
    integer_ticks(a2, "x")
    a2.set_ylabel("eigenvalue")
    a2.legend(fontsize=8)
    save_figure(fig, ctx.path("hessian_spectrum.png"))
    np.savez(
        ctx.path("hessian.npz"),
        top=top.values,
        bottom=bottom.values,
        grid=dens["grid"],
        density=dens["density"],
        top_vectors=top.vectors.astype(np.float32),
    )
    scale = max(abs(top.values[0]), 1e-12)
    metrics = {
        "top_eigenvalues": top.values.tolist(),
        "bottom_eigenvalues": np.sort(bottom.values).tolist(),
        "lambda_max": float(top.values[0]),
        "lambda_min": float(np.min(bottom.values)),
        "trace": tr,
        "trace_stderr": tr_se,
        "converged": bool(top.converged and bottom.converged),
        "eigsh_message": f"LA: {top.message}; SA: {bottom.message}",
        # Draxler: at a minimum the smallest eigenvalues are ~0 relative to the largest (flat directions)
        "near_zero_eigenvalues": int(np.sum(np.abs(bottom.values) < float(a["zero_tol"]) * scale)),
        "num_params": flat.num_params,
        "epoch": ckpt.epoch,
    }
    return JobOutput(metrics, {"plot": "hessian_spectrum.png", "data": "hessian.npz"}, {"center": str(ckpt.path)})
