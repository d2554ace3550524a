"""``analysis=mining``: mine w-peak and vvv-basin directions at a trained optimum (Xu et al. Alg. 1–2)
and classify the curves before and after."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from lsx.landscape.directions import random_direction
from lsx.landscape.mining import mine_vvv_basin, mine_w_peak
from lsx.plots.common import save_figure

from .base import JobContext, JobOutput, register_job
from .hessian import network_loss


@register_job("mining")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    ckpt = ctx.train(seed=int(a["target_seed"])).load(a.get("epoch"))
    f, flat = network_loss(ctx, ckpt.build_model(), a["num_examples"])
    theta = flat.get()
    init = random_direction(flat, theta, int(a["direction_seed"]), a["norm"], "biasbn")
    results = {  # each mined direction is saved when done (a killed job resumes after it)
        "w-peak": ctx.stage("w_peak", lambda: mine_w_peak(
            f, theta, init, scale=float(a["scale"]), steps=int(a["steps"]), lr=float(a["lr"]), seed=int(a["seed"]),
            num=int(a["num"]), progress=ctx.progress)),
        "vvv-basin": ctx.stage("vvv_basin", lambda: mine_vvv_basin(
            f, theta, init, gamma=float(a["gamma"]), k=int(a["k"]), barrier=float(a["barrier"]), beta=float(a["beta"]),
            steps=int(a["steps"]), lr=float(a["lr"]), seed=int(a["seed"]), num=int(a["num"]), progress=ctx.progress)),
    }
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    metrics = {}
    save = {}
    for ax, (target, r) in zip(axes, results.items()):
        ax.plot(r.lams, r.curve_before, "--", label=f"Gaussian start: {r.type_before}")
        ax.plot(r.lams, r.curve_after, "-", label=f"mined: {r.type_after}")
        ax.set_title(f"mining a {target} curve", fontsize=9)
        ax.set_xlabel("λ")
        ax.set_ylabel("train loss")
        ax.legend(fontsize=7)
        key = target.replace("-", "_")
        metrics.update({f"{key}_type_before": r.type_before, f"{key}_type_after": r.type_after,
                        f"{key}_success": r.type_after == target, f"{key}_final_objective": r.objective[-1]})
        save.update({f"{key}_lams": r.lams, f"{key}_before": r.curve_before, f"{key}_after": r.curve_after,
                     f"{key}_direction": r.direction.numpy().astype(np.float32)})
    save_figure(fig, ctx.path("mining.png"))
    np.savez(ctx.path("mining.npz"), **save)
    return JobOutput(metrics, {"plot": "mining.png", "data": "mining.npz"})
