"""``analysis=hessian``: Hessian spectrum at an optimum — top/bottom eigenvalues (Lanczos), trace
(Hutchinson), density (SLQ) — and Draxler's check that the smallest eigenvalues vanish at minima.

The loss is the configured one (e.g. next-token cross-entropy for a language model). ``params`` (a parameter
subset) makes it the spectrum of the block H[S, S]; ``blocks`` adds a table of the top eigenvalue and trace of every
diagonal block (``depth1``: each top-level module), as ``hessian_blocks.csv`` and a bar chart."""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.curvature.hessian import hutchinson_trace, slq_density, top_eigenpairs
from lsx.landscape.engine.flat import FlatParams, functional_loss, functional_model_loss
from lsx.landscape.engine.subset import subset_loss
from lsx.plots.common import integer_ticks, save_figure
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import center_checkpoint, param_subset, record_centre_loss

log = logging.getLogger("lsx.jobs")


def network_loss(ctx: JobContext, model, num_examples: int, l2: float = 0.0):
    """Differentiable mean train loss on the first ``num_examples`` of the landscape subset: the configured
    ``loss`` (a ``(model, batch)`` callable, e.g. next-token cross-entropy) or else cross-entropy on class logits."""
    s = ctx.landscape_subset()
    n = min(int(num_examples), len(s.train_x))
    x, y = s.train_x[:n], s.train_y[:n]
    batches = [(x[i : i + 256], y[i : i + 256]) for i in range(0, n, 256)]
    flat = FlatParams(model.eval())
    loss = ctx.loss_fn()
    if loss is None:
        return functional_loss(model, flat, batches, l2=l2), flat
    return functional_model_loss(model, flat, batches, loss, l2=l2), flat


@register_job("hessian")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    ckpt = center_checkpoint(ctx, a.get("epoch"))
    model = ckpt.build_model()
    f, flat = network_loss(ctx, model, a["num_examples"], float(a["l2"]))
    theta = flat.get()
    with torch.no_grad():  # the loss whose Hessian this is (without an analysis.l2 term: one plain evaluation)
        record_centre_loss(ctx, ckpt, "keep", None if float(a["l2"]) else float(f(theta)))
    subset = param_subset(ctx, flat)  # analysis.params: the block H[S, S] (v on S, H·v read on S)
    f_full, theta_full = f, theta
    if subset is not None:
        f, theta = subset_loss(f, theta, subset.index)
    k = int(a["k"])
    if k >= theta.numel():
        what = "selected parameter count (analysis.params)" if subset is not None else "parameter count"
        raise ValueError(f"analysis.k={k} is not smaller than the {what} {theta.numel()}")
    # each stage is saved when done: a killed job resumes after the last finished one
    # progress: a bar on a terminal, a log line every 30 s in a log file (these stages run for minutes at paper scale)
    pr = ctx.point_progress
    k_bottom = int(a.get("k_bottom", k))
    if not 0 <= k_bottom < theta.numel():
        raise ValueError(f"analysis.k_bottom={k_bottom}: 0 (skip the smallest eigenvalues) up to the parameter count - 1")

    def eigs(which: str, count: int):
        return ctx.stage(
            f"eigsh_{which}",
            lambda: top_eigenpairs(
                f, theta, count, which, tol=float(a["tol"]), maxiter=a.get("maxiter"), seed=int(a["seed"]), progress=pr
            ),
        )

    # the smallest eigenvalues of an indefinite Hessian take Lanczos many more products than the largest
    # (over a thousand for k=10 on byo_transformer, against ~30): k_bottom=0 skips them where they are not asked for
    top, bottom = eigs("LA", k), eigs("SA", k_bottom) if k_bottom else None
    tr, tr_se = ctx.stage("trace", lambda: hutchinson_trace(f, theta, int(a["trace_samples"]), seed=int(a["seed"]), progress=pr))
    slq_probes = int(a["slq_probes"])
    if slq_probes < 0:
        raise ValueError(f"analysis.slq_probes={slq_probes}: 0 (no density) or more probes")
    dens = (
        ctx.stage("slq", lambda: slq_density(f, theta, slq_probes, int(a["slq_steps"]), seed=int(a["seed"]), progress=pr))
        if slq_probes
        else {"grid": np.zeros(0), "density": np.zeros(0)}
    )
    bottom_values = np.sort(bottom.values) if bottom is not None else np.zeros(0)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    if slq_probes:
        a1.semilogy(dens["grid"], np.clip(dens["density"], 1e-8, None))
    else:
        a1.text(0.5, 0.5, "no density (analysis.slq_probes=0)", ha="center", va="center", transform=a1.transAxes)
    a1.set_xlabel("eigenvalue")
    a1.set_ylabel("density (SLQ)")
    a1.set_title(f"Hessian spectrum, trace ≈ {tr:.3g} ± {tr_se:.2g}", fontsize=9)
    a2.plot(range(1, len(top.values) + 1), top.values, "o-", label="largest (LA)")
    if bottom is not None:
        a2.plot(range(1, len(bottom_values) + 1), bottom_values, "s-", label="smallest (SA)")
    a2.axhline(0, color="k", lw=0.5)
    a2.set_xlabel("index")
    integer_ticks(a2, "x")
    a2.set_ylabel("eigenvalue")
    a2.legend(fontsize=8)
    save_figure(fig, ctx.path("hessian_spectrum.png"))
    atomic_savez(
        ctx.path("hessian.npz"),
        top=top.values,
        bottom=bottom_values,
        grid=dens["grid"],
        density=dens["density"],
        top_vectors=top.vectors.astype(np.float32),
    )
    scale = max(abs(top.values[0]), 1e-12)
    metrics = {
        "top_eigenvalues": top.values.tolist(),
        "bottom_eigenvalues": bottom_values.tolist(),
        "lambda_max": float(top.values[0]),
        "lambda_min": float(np.min(bottom_values)) if bottom is not None else None,
        "trace": tr,
        "trace_stderr": tr_se,
        "converged": bool(top.converged and (bottom is None or bottom.converged)),
        "eigsh_message": f"LA: {top.message}; SA: {bottom.message if bottom is not None else 'skipped (k_bottom=0)'}",
        # Draxler: at a minimum the smallest eigenvalues are ~0 relative to the largest (flat directions)
        "near_zero_eigenvalues": (
            int(np.sum(np.abs(bottom_values) < float(a["zero_tol"]) * scale)) if bottom is not None else None
        ),
        "num_params": int(theta.numel()),
        "epoch": ckpt.epoch,
    }
    arts = {"plot": "hessian_spectrum.png", "data": "hessian.npz"}
    if a.get("blocks") is not None:  # the per-block table: λ_max and trace of every diagonal block H[b, b]
        m, more = block_table(ctx, f_full, theta_full, flat, subset)
        metrics.update(m)
        arts.update(more)
    return JobOutput(metrics, arts, {"center": str(ckpt.path)})


def block_table(ctx: JobContext, f, theta: torch.Tensor, flat: FlatParams, subset) -> tuple[dict, dict]:
    """``analysis.blocks``: top eigenvalue and trace per block (one resumable stage each), as results.json
    ``metrics.blocks_table``, ``hessian_blocks.csv`` and a bar chart."""
    from lsx.landscape.curvature.blocks import blocks_curvature, table_summary
    from lsx.landscape.engine.subset import block_index, param_blocks

    a = ctx.analysis
    groups = param_blocks(flat, a["blocks"], subset)
    blocks = {name: (block_index(flat, names), len(names)) for name, names in groups.items()}
    memo = ctx.memo("hessian_")

    def logged(key: str, compute):  # one line per finished block: a block table runs for minutes on a large model
        def run():
            r = compute()
            if key == "block_traces":  # the shared probes of every large block's trace
                return r
            log.info("Hessian block %s (%d parameters): λ_max %.4g, trace %.4g", r.block, r.num_params, r.lambda_max, r.trace)
            return r

        return memo(key, run)

    rows = blocks_curvature(f, theta, blocks, int(a["trace_samples"]), seed=int(a["seed"]), memo=logged)
    table = [r.row() for r in rows]
    write_csv(ctx.path("hessian_blocks.csv"), table)
    plot_blocks(table, ctx.path("hessian_blocks.png"))
    metrics = dict(table_summary(rows, subset.num_params if subset is not None else flat.num_params), blocks_table=table)
    metrics["blocks_spec"] = a["blocks"] if isinstance(a["blocks"], str) else list(a["blocks"])
    return metrics, {"blocks_plot": "hessian_blocks.png", "blocks_csv": "hessian_blocks.csv"}


def write_csv(path, rows: list[dict]) -> None:
    """The table as CSV, written atomically."""
    import csv
    import io

    from lsx.utils.io import atomic_write_text

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def plot_blocks(table: list[dict], path) -> None:
    """Bar chart of λ_max and the trace per block, log scale (symmetric log where a value is ≤ 0)."""
    names = [r["block"] for r in table]
    lam = np.array([r["lambda_max"] for r in table])
    tr = np.array([r["trace"] for r in table])
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(names) + 2), 4), layout="constrained")
    ax.bar(x - 0.2, lam, 0.4, label="top eigenvalue λ_max")
    ax.bar(x + 0.2, tr, 0.4, yerr=[r["trace_stderr"] for r in table], label="trace (Hutchinson, or exact)")
    both = np.concatenate([lam, tr])
    if np.all(both > 0):
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=max(1e-6, float(np.min(np.abs(both[both != 0]))) if np.any(both != 0) else 1.0))
    ax.set_xticks(x, names, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center", fontsize=8)
    ax.set_ylabel("Hessian block H[b, b]")
    ax.set_title(f"curvature per block ({len(names)} blocks, {sum(r['num_params'] for r in table)} parameters)", fontsize=9)
    ax.legend(fontsize=8)
    save_figure(fig, path)
