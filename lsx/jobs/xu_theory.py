"""``analysis=xu_theory``: Xu et al. Sec. 3 on a trained network — Gaussian vs descent directions
(Fig. 5), loss change under Gaussian perturbation vs ½σ²tr(H) (Fig. 13), and second-order models
along GMI (Gaussian) and MLI (initialization → optimum) curves (Fig. 14)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.surfaces.directions import random_direction
from lsx.landscape.engine.flat import FlatParams
from lsx.landscape.curvature.perturbation import descent_cosines, perturbation_loss_change, quadratic_model_along
from lsx.plots.common import integer_ticks, save_figure

from .base import JobContext, JobOutput, register_job
from .hessian import network_loss
from .landscape_common import record_centre_loss


@register_job("xu_theory")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    run_ = ctx.train(seed=int(a["target_seed"]))
    if 0 not in run_.checkpoints:
        raise ValueError("the MLI curve needs the initialization: add 0 to training.checkpoint_epochs")
    ckpt = run_.load()
    f, flat = network_loss(ctx, ckpt.build_model(), a["num_examples"])
    theta = flat.get()
    with torch.no_grad():  # the loss every curve and perturbation here starts from (BN in eval mode)
        record_centre_loss(ctx, ckpt, "keep", float(f(theta)))
    theta0 = FlatParams(run_.load(0).build_model()).get()
    # each part is saved when done: a killed job resumes after the last finished one
    cos = ctx.stage("cosines", lambda: descent_cosines(f, theta, int(a["num_directions"]), seed=int(a["seed"])))
    pert = ctx.stage("perturbation", lambda: perturbation_loss_change(
        f, theta, list(a["sigmas"]), int(a["samples"]), seed=int(a["seed"]), trace_samples=int(a["trace_samples"])))
    lams = np.linspace(-float(a["scale"]), float(a["scale"]), int(a["num"]))
    gmi = ctx.stage("gmi", lambda: quadratic_model_along(
        f, theta, random_direction(flat, theta, int(a["seed"]), "filter", "biasbn"), lams))
    mli = ctx.stage("mli", lambda: quadratic_model_along(f, theta, theta0 - theta, np.linspace(0, 1, int(a["num"]))))

    fig, ax = plt.subplots(1, 4, figsize=(17, 3.6))
    ax[0].hist(cos, bins=20)
    ax[0].set_xlabel("cosine")
    ax[0].set_ylabel("directions")
    integer_ticks(ax[0], "y")
    ax[0].set_title(f"cos(Gaussian, −∇L): mean {cos.mean():.3f}, std {cos.std():.3f}", fontsize=9)
    ax[1].errorbar(pert["sigmas"], pert["mean"], yerr=pert["std"], fmt="o", label="E[δL] measured")
    ax[1].plot(pert["sigmas"], pert["predicted_mean"], "r-", label="½σ² tr(H)")
    ax[1].set_xscale("log")
    ax[1].set_yscale("symlog", linthresh=1e-6)
    ax[1].set_xlabel("σ")
    ax[1].set_ylabel("δL")
    ax[1].legend(fontsize=7)
    ax[1].set_title("loss change under Gaussian perturbation", fontsize=9)
    for axx, res, name, xl in ((ax[2], gmi, "GMI (Gaussian)", "λ"), (ax[3], mli, "MLI (optimum → init)", "t")):
        axx.plot(res["lams"], res["true"], label="true")
        axx.plot(res["lams"], res["quadratic"], "--", label="2nd-order model")
        axx.set_title(name, fontsize=9)
        axx.set_xlabel(xl)
        axx.set_ylabel("train loss")
        axx.legend(fontsize=7)
    save_figure(fig, ctx.path("xu_theory.png"))
    np.savez(ctx.path("xu_theory.npz"), cosines=cos, sigmas=pert["sigmas"], delta=pert["delta"],
             predicted_mean=pert["predicted_mean"], gmi_true=gmi["true"], gmi_quadratic=gmi["quadratic"],
             mli_true=mli["true"], mli_quadratic=mli["quadratic"])
    small = int(np.argmin(pert["sigmas"]))
    metrics = {
        "cosine_mean": float(cos.mean()), "cosine_std": float(cos.std()), "expected_cosine_std": float(1 / np.sqrt(theta.numel())),
        "trace": float(pert["trace"]), "trace_stderr": float(pert["trace_stderr"]),
        # Sec. 3: E[δL] = ½σ² tr(H) to second order; the ratio measured / predicted per σ
        "sigmas": [float(x) for x in pert["sigmas"]], "delta_means": [float(x) for x in pert["mean"]],
        "delta_predicted": [float(x) for x in pert["predicted_mean"]],
        "gmi_ratios": [float(m / p) if p else float("nan") for m, p in zip(pert["mean"], pert["predicted_mean"])],
        "delta_mean_smallest_sigma": float(pert["mean"][small]),
        "delta_predicted_smallest_sigma": float(pert["predicted_mean"][small]),
        "gmi_max_rel_error": float(np.max(np.abs(gmi["true"] - gmi["quadratic"]) / (np.abs(gmi["true"]) + 1e-12))),
        "mli_max_rel_error": float(np.max(np.abs(mli["true"] - mli["quadratic"]) / (np.abs(mli["true"]) + 1e-12))),
    }
    return JobOutput(metrics, {"plot": "xu_theory.png", "data": "xu_theory.npz"})
