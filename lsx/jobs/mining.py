"""``analysis=mining``: mine w-peak and vvv-basin directions at a trained checkpoint (Xu et al. Algorithms 1–2,
Sec. 2.4–2.5) and classify their curves; a filter-normalized Gaussian direction's curve is drawn beside.

Algorithm 2 runs once per (α, γ) of the paper's grid (``vvv_alphas`` × ``vvv_gammas``; the paper: α ∈ {0, 0.1},
γ ∈ {0.1, 0.5, 0.9}). φ starts (``phi_init``) at a fresh initialization of the network (``random``, seed
``seed``: Eq. 3 "optimizes the loss of φ", as training a new model does) or at the studied epoch's checkpoint of
the independent partner run (``independent``: seed ``independent_seed``, default target + 1000)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.engine.flat import FlatParams, functional_loss
from lsx.landscape.surfaces.curves import curve_type_alternatives, extrema
from lsx.landscape.surfaces.directions import random_direction
from lsx.landscape.surfaces.mining import mine_vvv_basin, mine_vvv_basin_paper, mine_w_peak, mine_w_peak_paper
from lsx.plots.common import save_figure
from lsx.training.checkpoints import model_from_config
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .curve_taxonomy import independent_seed
from .hessian import network_loss
from .landscape_common import record_centre_loss

W_PEAK_METHODS = ("paper", "fixed_norm", "none")  # none: Algorithm 2 only (a preset that claims nothing of Alg. 1)
VVV_METHODS = ("paper", "lattice_barrier")
PHI_INITS = ("random", "independent")


def _check(value: str, valid: tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


def _phi_init(ctx: JobContext, a, ckpt, flat) -> torch.Tensor:
    how = _check(a["phi_init"], PHI_INITS, "analysis.phi_init")
    if how == "independent":
        s = independent_seed(a, int(a["target_seed"]))
        return FlatParams(ctx.train(seed=s).load(ckpt.epoch).build_model()).get()[: flat.num_params]
    with torch.random.fork_rng():
        torch.manual_seed(int(a["seed"]))
        model = model_from_config(ckpt.config["model"], ckpt.data_shape)
    return FlatParams(model.eval()).get()[: flat.num_params]


def _batch_losses(ctx: JobContext, model, flat, n: int, batch_size):
    """The mining loops' data batches (the paper's "for each batch"): the first ``n`` landscape train examples in
    fixed batches of ``batch_size`` (null: None, full-batch steps)."""
    if batch_size is None:
        return None
    b = int(batch_size)
    if b < 1:
        raise ValueError(f"analysis.batch_size must be >= 1 or null (full batch), got {b}")
    s = ctx.landscape_subset()
    x, y = s.train_x[:n], s.train_y[:n]
    return [functional_loss(model, flat, [(x[i : i + b], y[i : i + b])]) for i in range(0, len(y), b)]


def _panel(ax, r, title: str) -> None:
    if np.isfinite(r.curve_before).any():
        ax.plot(r.lams, r.curve_before, "--", label=f"before: {r.type_before}")
    ax.plot(r.lams, r.curve_after, "-", label=f"mined: {r.type_after}")
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("λ")
    ax.set_ylabel("train loss")
    ax.legend(fontsize=6)


@register_job("mining")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    wm = _check(a["w_peak_method"], W_PEAK_METHODS, "analysis.w_peak_method")
    vm = _check(a["vvv_method"], VVV_METHODS, "analysis.vvv_method")
    ep = a.get("mining_epoch")
    if a["phi_init"] == "independent":  # both runs first: the waiting ranks of a launch train one of them
        ctx.optima([int(a["target_seed"]), independent_seed(a, int(a["target_seed"]))])
    ckpt = ctx.train(seed=int(a["target_seed"])).load(a.get("epoch") if ep is None else int(ep))
    n = a.get("num_examples")
    n = len(ctx.landscape_subset().train_x) if n is None else int(n)
    model = ckpt.build_model()
    f, flat = network_loss(ctx, model, n)
    theta = flat.get()
    batch_losses = _batch_losses(ctx, model, flat, n, a.get("batch_size"))
    with torch.no_grad():  # the loss every mined curve starts from (BN in eval mode, these examples)
        record_centre_loss(ctx, ckpt, "keep", float(f(theta)))
    ref = random_direction(flat, theta, int(a["direction_seed"]), a["norm"], "biasbn")
    sched = dict(
        epochs=int(a["epochs"]),
        steps_per_epoch=int(a["steps_per_epoch"]),
        lr=float(a["lr"]),
        optimizer=a["optimizer"],
        samples=int(a["samples"]),
        seed=int(a["seed"]),
        center_tol=float(a["center_tol"]),
        progress=ctx.progress,
        batch_losses=batch_losses,
    )
    legacy = dict(
        steps=int(a["legacy_steps"]), seed=int(a["seed"]), num=int(a["num"]), lr=float(a["legacy_lr"]), progress=ctx.progress
    )
    # each mined direction is saved when done (a killed job resumes after it)
    w = (
        None
        if wm == "none"
        else ctx.stage(
            f"w_peak_{wm}",
            lambda: mine_w_peak_paper(f, theta, alpha=float(a["alpha"]), num=int(a["num"]), reference=ref, **sched)
            if wm == "paper"
            else mine_w_peak(f, theta, ref, scale=float(a["scale"]), **legacy),
        )
    )
    if vm == "paper":
        phi0 = _phi_init(ctx, a, ckpt, flat)
        settings = [(float(al), float(g)) for al in a["vvv_alphas"] for g in a["vvv_gammas"]]
        window = tuple(float(x) for x in a["vvv_window"])
        ve = a.get("vvv_epochs")
        vsched = dict(sched, epochs=int(sched["epochs"] if ve is None else ve))
        vvv = [
            ctx.stage(
                f"vvv_basin_paper_a{al:g}_g{g:g}",
                lambda al=al, g=g: mine_vvv_basin_paper(
                    f, theta, phi0, alpha=al, gamma=g, window=window, num=int(a["vvv_num"]), **vsched
                ),
            )
            for al, g in settings
        ]
    else:
        settings = [(float("nan"), float(a["gamma"]))]
        vvv = [
            ctx.stage(
                "vvv_basin_lattice_barrier",
                lambda: mine_vvv_basin(
                    f,
                    theta,
                    ref,
                    gamma=float(a["gamma"]),
                    k=int(a["k"]),
                    barrier=float(a["barrier"]),
                    beta=float(a["beta"]),
                    **legacy,
                ),
            )
        ]
    panels = ([] if w is None else [(w, f"Algorithm 1 ({wm}): w-peak?")]) + [
        (r, f"Algorithm 2 ({vm}) α={al:g} γ={g:g}") for (al, g), r in zip(settings, vvv)
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.2), squeeze=False, layout="constrained")
    for ax, (r, title) in zip(axes[0], panels):
        _panel(ax, r, title)
    save_figure(fig, ctx.path("mining.png"))
    save = {
        "vvv_settings": np.array(settings),
        "vvv_lams": np.stack([r.lams for r in vvv]),
        "vvv_after": np.stack([r.curve_after for r in vvv]),
    }
    if w is not None:
        save.update(
            w_peak_lams=w.lams,
            w_peak_before=w.curve_before,
            w_peak_after=w.curve_after,
            w_peak_direction=w.direction.numpy().astype(np.float32),
        )
    atomic_savez(ctx.path("mining.npz"), **save)
    metrics: dict = {
        "epoch": int(ckpt.epoch),
        "batches_per_epoch": len(batch_losses) if batch_losses else 0,
        "w_peak_method": wm,
        "vvv_method": vm,
    }
    if w is not None:
        i0 = int(np.argmin(np.abs(w.lams)))
        metrics |= {
            "w_peak_type_before": w.type_before,
            "w_peak_type_after": w.type_after,
            "w_peak_success": w.type_after == "w-peak",
            "w_peak_alt_types": [curve_type_alternatives(w.lams, w.curve_after, center_tol=float(a["center_tol"]))],
            "w_peak_final_objective": w.objective[-1],
            "w_peak_direction_norm": float(w.direction.norm()),
            "w_peak_loss_at_point": float(w.curve_after[i0]),
            "w_peak_loss_min": float(np.nanmin(w.curve_after)),
            # the peak's height (Fig. 9): how far the mined curve falls below L(θ) inside the window
            "w_peak_height": float(w.curve_after[i0] - np.nanmin(w.curve_after)),
        }
    metrics |= {
        "vvv_settings": [[al, g] for al, g in settings],
        "vvv_types": [r.type_after for r in vvv],
        "vvv_alt_types": [curve_type_alternatives(r.lams, r.curve_after, center_tol=float(a["center_tol"])) for r in vvv],
        "vvv_minima": [int(len(extrema(r.curve_after)[0])) for r in vvv],
        "vvv_basin_fraction": float(np.mean([r.type_after == "vvv-basin" for r in vvv])),
        "vvv_direction_norms": [float(r.direction.norm()) for r in vvv],
        "vvv_phi_loss": [float(r.objective[-1]) if r.objective else float("nan") for r in vvv],
    }
    # the earlier single-result keys (first setting), kept for existing readers
    metrics.update({"vvv_basin_type_after": vvv[0].type_after, "vvv_basin_success": vvv[0].type_after == "vvv-basin"})
    return JobOutput(metrics, {"plot": "mining.png", "data": "mining.npz"})
