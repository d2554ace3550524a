"""``analysis=xu_theory``: Xu et al. Sec. 3 on a trained network — Gaussian vs descent directions
(Sec. 2.3, Fig. 5), loss change under Gaussian perturbation vs ½σ²tr(H) (Fig. 13), second-order models
along GMI (Gaussian) and MLI (initialization → optimum) curves (Fig. 14), and the Hessian across the
run's checkpoints (``spectrum_epochs``; null: every saved epoch ≥ 1): λ_max, λ_min, the SLQ bulk
(Fig. 13 first row) and the N.E. curve's peak height (Fig. 8), with Spearman trends over the epochs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.curvature.perturbation import (
    cosine_scale_ratio,
    descent_cosines,
    perturbation_loss_change,
    quadratic_model_along,
    spectrum_at,
)
from lsx.landscape.engine.flat import FlatParams
from lsx.landscape.surfaces.curves import classify_curve, curve_type_alternatives
from lsx.landscape.surfaces.directions import random_direction
from lsx.plots.common import integer_ticks, save_figure
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .hessian import network_loss
from .landscape_common import record_centre_loss


def _spectra(ctx: JobContext, a, run_) -> dict[int, dict]:
    """The spectrum summary at each of ``spectrum_epochs`` (each saved when done)."""
    want = a.get("spectrum_epochs")
    epochs = sorted(e for e in run_.checkpoints if e >= 1) if want is None else [int(e) for e in want]
    missing = [e for e in epochs if e not in run_.checkpoints]
    if missing or len(epochs) < 2:
        raise ValueError(f"analysis.spectrum_epochs={epochs}: needs >= 2 saved checkpoints (saved: {sorted(run_.checkpoints)})")
    lams = np.linspace(-float(a["ne_scale"]), float(a["ne_scale"]), int(a["ne_num"]))
    out = {}
    for e in epochs:

        def one(e=e):
            f, flat = network_loss(ctx, run_.load(e).build_model(), a["num_examples"])
            return spectrum_at(f, flat.get(), lams, int(a["slq_probes"]), int(a["slq_steps"]), seed=int(a["seed"]))

        out[e] = ctx.stage(f"spectrum_e{e}", one)
    return out


def _trend(x: list[float], y: list[float]) -> float:
    """Spearman ρ of y against x (NaN when y is constant)."""
    from scipy.stats import spearmanr

    if len(set(y)) < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def _spectrum_metrics(spec: dict[int, dict], center_tol: float = 0.1) -> dict:
    e = list(spec)
    types = [classify_curve(spec[k]["ne_lams"], spec[k]["ne_curve"], center_tol=center_tol) for k in e]
    alts = [curve_type_alternatives(spec[k]["ne_lams"], spec[k]["ne_curve"], center_tol=center_tol) for k in e]
    lmin = [spec[k]["lambda_min"] for k in e]
    height = [spec[k]["ne_peak_height"] for k in e]
    last = spec[e[-1]]
    return {
        "spectrum_epochs": e,
        "lambda_min_by_epoch": lmin,
        "lambda_max_by_epoch": [spec[k]["lambda_max"] for k in e],
        "bulk_edge_by_epoch": [spec[k]["bulk_edge"] for k in e],
        "ne_peak_height_by_epoch": height,
        "spectrum_converged": all(spec[k]["converged"] for k in e),
        # Fig. 8: the N.E. curve's type at each epoch; the first (smallest) epoch on its own, for a claim
        "ne_types_by_epoch": types,
        "ne_alt_types_by_epoch": alts,
        "ne_type_first": [types[0]],
        "ne_alt_types_first": [alts[0]],
        # Sec. 3: |λ_min| "becomes smaller when E increases"; Sec. 2.4: the N.E. peak's height decreases
        "lambda_min_abs_trend": _trend(e, [abs(v) for v in lmin]),
        "ne_peak_height_trend": _trend(e, height),
        # Fig. 13: a bulk around zero and large positive outliers: λ_max over the bulk's 90% half-width
        "hessian_outlier_ratio": float(last["lambda_max"] / last["bulk_edge"]) if last["bulk_edge"] > 0 else float("inf"),
        "lambda_max_over_abs_min": float(last["lambda_max"] / abs(last["lambda_min"])) if last["lambda_min"] else float("inf"),
    }


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
    pert = ctx.stage(
        "perturbation",
        lambda: perturbation_loss_change(
            f, theta, list(a["sigmas"]), int(a["samples"]), seed=int(a["seed"]), trace_samples=int(a["trace_samples"])
        ),
    )
    lams = np.linspace(-float(a["scale"]), float(a["scale"]), int(a["num"]))
    gmi = ctx.stage(
        "gmi", lambda: quadratic_model_along(f, theta, random_direction(flat, theta, int(a["seed"]), "filter", "biasbn"), lams)
    )
    mli = ctx.stage("mli", lambda: quadratic_model_along(f, theta, theta0 - theta, np.linspace(0, 1, int(a["num"]))))
    spec = _spectra(ctx, a, run_)

    fig, ax = plt.subplots(1, 5, figsize=(21, 3.6))
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
    for e, sp in spec.items():
        ax[4].plot(
            sp["ne_lams"], sp["ne_curve"] - sp["ne_curve"][len(sp["ne_lams"]) // 2], label=f"E={e}: λmin {sp['lambda_min']:.3g}"
        )
    ax[4].set_title("N.E. curves by epoch (Fig. 8)", fontsize=9)
    ax[4].set_xlabel("λ")
    ax[4].set_ylabel("L − L(θ)")
    ax[4].legend(fontsize=6)
    save_figure(fig, ctx.path("xu_theory.png"))
    atomic_savez(
        ctx.path("xu_theory.npz"),
        cosines=cos,
        sigmas=pert["sigmas"],
        delta=pert["delta"],
        predicted_mean=pert["predicted_mean"],
        gmi_true=gmi["true"],
        gmi_quadratic=gmi["quadratic"],
        mli_true=mli["true"],
        mli_quadratic=mli["quadratic"],
    )
    small = int(np.argmin(pert["sigmas"]))
    metrics = {
        "cosine_mean": float(cos.mean()),
        "cosine_std": float(cos.std()),
        "expected_cosine_std": float(1 / np.sqrt(theta.numel())),
        "trace": float(pert["trace"]),
        "trace_stderr": float(pert["trace_stderr"]),
        # Sec. 3: E[δL] = ½σ² tr(H) to second order; the ratio measured / predicted per σ
        "sigmas": [float(x) for x in pert["sigmas"]],
        "delta_means": [float(x) for x in pert["mean"]],
        "delta_predicted": [float(x) for x in pert["predicted_mean"]],
        "gmi_ratios": [float(m / p) if p else float("nan") for m, p in zip(pert["mean"], pert["predicted_mean"])],
        "delta_mean_smallest_sigma": float(pert["mean"][small]),
        "delta_predicted_smallest_sigma": float(pert["predicted_mean"][small]),
        "gmi_max_rel_error": float(np.max(np.abs(gmi["true"] - gmi["quadratic"]) / (np.abs(gmi["true"]) + 1e-12))),
        "mli_max_rel_error": float(np.max(np.abs(mli["true"] - mli["quadratic"]) / (np.abs(mli["true"]) + 1e-12))),
        # Sec. 2.3: cos(Gaussian, −∇L) has std 1/√D; 1 when the directions are as orthogonal as the paper says
        "cosine_std_ratio": cosine_scale_ratio(cos, theta.numel()),
    }
    metrics.update(_spectrum_metrics(spec, float(a.get("center_tol", 0.1))))
    return JobOutput(metrics, {"plot": "xu_theory.png", "data": "xu_theory.npz"})
