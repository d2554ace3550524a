"""``analysis=mining``: mine w-peak and vvv-basin directions at a trained optimum (Xu et al. Alg. 1–2)
and classify the curves; a filter-normalized Gaussian direction's curve is drawn beside for reference."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.surfaces.directions import random_direction
from lsx.landscape.surfaces.mining import mine_vvv_basin, mine_vvv_basin_paper, mine_w_peak, mine_w_peak_paper
from lsx.plots.common import save_figure

from .base import JobContext, JobOutput, register_job
from .hessian import network_loss
from .landscape_common import record_centre_loss

W_PEAK_METHODS = ("paper", "fixed_norm")
VVV_METHODS = ("paper", "lattice_barrier")


def _check(value: str, valid: tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


@register_job("mining")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    wm = _check(a["w_peak_method"], W_PEAK_METHODS, "analysis.w_peak_method")
    vm = _check(a["vvv_method"], VVV_METHODS, "analysis.vvv_method")
    ckpt = ctx.train(seed=int(a["target_seed"])).load(a.get("epoch"))
    n = a.get("num_examples")
    f, flat = network_loss(ctx, ckpt.build_model(), len(ctx.landscape_subset().train_x) if n is None else int(n))
    theta = flat.get()
    with torch.no_grad():  # the loss every mined curve starts from (BN in eval mode, these examples)
        record_centre_loss(ctx, ckpt, "keep", float(f(theta)))
    ref = random_direction(flat, theta, int(a["direction_seed"]), a["norm"], "biasbn")
    common = dict(steps=int(a["steps"]), seed=int(a["seed"]), num=int(a["num"]), progress=ctx.progress)
    paper = dict(common, alpha=float(a["alpha"]), samples=int(a["samples"]), lr=float(a["lr"]), optimizer=a["optimizer"],
                 reference=ref, center_tol=float(a["center_tol"]))
    legacy = dict(common, lr=float(a["legacy_lr"]))
    results = {  # each mined direction is saved when done (a killed job resumes after it)
        "w-peak": ctx.stage(f"w_peak_{wm}", lambda: mine_w_peak_paper(f, theta, **paper) if wm == "paper" else
                            mine_w_peak(f, theta, ref, scale=float(a["scale"]), **legacy)),
        "vvv-basin": ctx.stage(f"vvv_basin_{vm}", lambda: mine_vvv_basin_paper(f, theta, gamma=float(a["gamma"]), **paper)
                               if vm == "paper" else mine_vvv_basin(f, theta, ref, gamma=float(a["gamma"]), k=int(a["k"]),
                                                                    barrier=float(a["barrier"]), beta=float(a["beta"]), **legacy)),
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
    metrics = {"w_peak_method": wm, "vvv_method": vm}
    save = {}
    for ax, (target, r) in zip(axes, results.items()):
        if np.isfinite(r.curve_before).any():
            ax.plot(r.lams, r.curve_before, "--", label=f"Gaussian (filter-norm.): {r.type_before}")
        ax.plot(r.lams, r.curve_after, "-", label=f"mined: {r.type_after}")
        ax.set_title(f"mining a {target} curve ({wm if target == 'w-peak' else vm})", fontsize=9)
        ax.set_xlabel("λ")
        ax.set_ylabel("train loss")
        ax.legend(fontsize=7)
        key = target.replace("-", "_")
        metrics.update({f"{key}_type_before": r.type_before, f"{key}_type_after": r.type_after,
                        f"{key}_success": r.type_after == target, f"{key}_final_objective": r.objective[-1],
                        f"{key}_direction_norm": float(r.direction.norm()), f"{key}_loss_at_point": float(r.curve_after[len(r.lams) // 2]),
                        f"{key}_loss_min": float(np.nanmin(r.curve_after))})
        save.update({f"{key}_lams": r.lams, f"{key}_before": r.curve_before, f"{key}_after": r.curve_after,
                     f"{key}_direction": r.direction.numpy().astype(np.float32)})
    save_figure(fig, ctx.path("mining.png"))
    np.savez(ctx.path("mining.npz"), **save)
    return JobOutput(metrics, {"plot": "mining.png", "data": "mining.npz"})
