"""``analysis=sharpness``: how sharp one trained minimizer is (Li et al. Sec. 5, Fig. 4–5, Table 1).

Two numbers, both comparable across minimizers of different weight scale:
- the filter-normalized sharpness: mean over several random filter-normalized directions of the loss
  rise ½(L(θ+rd) + L(θ−rd)) − L(θ) at radius r (Li's 1D/2D plots read at a fixed distance);
- the top Hessian eigenvalue λ_max (eigsh on an HVP operator, train loss with BN in eval mode).
Also the 1D filter-normalized curves along every direction (Li Fig. 4) and the weight norm.
Compare minimizers at matched training (a preset sets training.target_train_loss or max_steps), or a
barely trained large-batch model looks "sharp" for the wrong reason.

``bn: upbn`` re-estimates BatchNorm statistics from train data at every evaluated point (and once at θ
for the Hessian): a large-batch run stopped after a few dozen steps carries running statistics that lag
its weights (its eval-mode loss can be 100x its train-mode loss), which would be measured instead of the
minimizer itself.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.curvature.hessian import top_eigenpairs
from lsx.landscape.curvature.sharpness import filter_normalized_sharpness
from lsx.plots.common import save_figure
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import axis, build_evaluator, load_point, param_subset, random_directions, record_centre_loss


def weight_norm(point) -> float:
    """‖w‖ over conv/linear weights (biases and BN parameters excluded, as in Li Fig. 3's histograms)."""
    mask = point.flat.mask(["weight"])
    return float(point.theta[mask].norm())


def sharpness_at(ctx: JobContext, point, spec: dict[str, Any], evaluator=None, subset=None) -> dict[str, Any]:
    """Filter-normalized sharpness (and the 1D curves when ``spec['curve']['num'] > 0``) at ``point``.

    ``spec``: radius, direction_seeds, norm, ignore, curve {min, max, num} (optional). ``subset``: a parameter
    subset (lsx.landscape.engine.subset) the directions are restricted to.
    """
    seeds = [int(s) for s in spec["direction_seeds"]]
    if not seeds:
        raise ValueError("analysis.direction_seeds is empty; give at least one seed (several for an interval)")
    radius = float(spec["radius"])
    ev = evaluator or build_evaluator(ctx, point.model, spec.get("bn", "keep"), None)
    dirs = list(random_directions(point, seeds, spec.get("norm", "filter"), spec.get("ignore", "biasbn"), subset))
    base = ev.evaluate_at(point.theta, restore=True)

    def losses_at(offsets: torch.Tensor):
        return [ev.evaluate_at(point.theta + o, splits=("train",), restore=True)["train_loss"] for o in offsets]

    out = filter_normalized_sharpness(losses_at, base["train_loss"], dirs, radius)
    res: dict[str, Any] = {
        "sharpness": out["mean"],
        "sharpness_stderr": out["stderr"],
        "sharpness_rises": out["rises"].tolist(),
        "center_train_loss": base["train_loss"],
        "center_test_acc": base["test_acc"],
    }
    curve = spec.get("curve") or {}
    if int(curve.get("num", 0) or 0) > 0:
        xs = axis(curve, "analysis.curve")
        coords = np.zeros((len(xs) * len(dirs), len(dirs)))
        for k in range(len(dirs)):
            coords[k * len(xs) : (k + 1) * len(xs), k] = xs
        r = ev.evaluate(point.theta, torch.stack(dirs), coords)
        res["curves"] = {
            "x": xs,
            "train_loss": np.asarray(r["train_loss"]).reshape(len(dirs), len(xs)),
            "test_loss": np.asarray(r["test_loss"]).reshape(len(dirs), len(xs)),
        }
    return res


def top_hessian_eigenvalue(ctx: JobContext, model, spec: dict[str, Any], bn: str = "keep") -> dict[str, Any]:
    """λ_max of the train loss on the first ``num_examples`` of the landscape subset (BN in eval mode;
    with ``bn='upbn'`` its statistics re-estimated from the landscape train subset first); with ``analysis.params``
    the top eigenvalue of the block H[S, S]."""
    from lsx.landscape.engine.bn_policy import has_batchnorm, reestimate_bn
    from lsx.landscape.engine.subset import subset_loss

    from .hessian import network_loss

    if bn == "upbn" and has_batchnorm(model):
        tx = ctx.landscape_subset().train_x
        reestimate_bn(model, [tx[i : i + 256] for i in range(0, len(tx), 256)])

    f, flat = network_loss(ctx, model, int(spec["num_examples"]))
    theta, subset = flat.get(), param_subset(ctx, flat)
    if subset is not None:
        f, theta = subset_loss(f, theta, subset.index)
    r = top_eigenpairs(f, theta, 1, "LA", tol=float(spec["tol"]), maxiter=spec.get("maxiter"), seed=int(spec.get("seed", 0)))
    return {"lambda_max": float(r.values[0]), "lambda_max_converged": bool(r.converged), "hessian_matvecs": int(r.matvecs)}


@register_job("sharpness")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    ckpt = ctx.train(seed=int(a["target_seed"])).load(a.get("epoch"))
    if a.get("bn", "keep") not in ("keep", "upbn"):
        raise ValueError(f"analysis.bn={a.get('bn')!r}; valid for sharpness: keep, upbn")
    p = load_point(ckpt, "keep")
    s = sharpness_at(ctx, p, a, subset=param_subset(ctx, p.flat))
    record_centre_loss(ctx, ckpt, a.get("bn", "keep"), s["center_train_loss"])
    metrics: dict[str, Any] = {k: v for k, v in s.items() if k != "curves"}
    metrics.update(
        weight_norm=weight_norm(p),
        radius=float(a["radius"]),
        norm=a["norm"],
        bn=a.get("bn", "keep"),
        direction_seeds=[int(x) for x in a["direction_seeds"]],
        epoch=ckpt.epoch,
    )
    if (a.get("hessian") or {}).get("enabled", True):
        metrics.update(
            ctx.stage("lambda_max", lambda: top_hessian_eigenvalue(ctx, ckpt.build_model(), a["hessian"], a.get("bn", "keep")))
        )
    arts = {}
    if "curves" in s:
        c = s["curves"]
        atomic_savez(
            ctx.path("sharpness_curves.npz"),
            x=c["x"],
            train_loss=c["train_loss"],
            test_loss=c["test_loss"],
            seeds=np.asarray(a["direction_seeds"]),
        )
        fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
        for k, sd in enumerate(a["direction_seeds"]):
            ax.plot(c["x"], c["train_loss"][k], "-", color="tab:blue", alpha=0.6, label="train" if k == 0 else None)
            ax.plot(c["x"], c["test_loss"][k], "--", color="tab:red", alpha=0.6, label="test" if k == 0 else None)
        r = float(a["radius"])
        ax.axvspan(-r, r, color="0.9", zorder=0, label=f"radius {r:g}")
        ax.set_xlabel(f"step along a {a['norm']}-normalized direction")
        ax.set_ylabel("loss")
        ax.set_title(
            f"{ckpt.model_name} seed {ckpt.config.get('seed')}: sharpness {s['sharpness']:.3g} "
            f"(n={len(a['direction_seeds'])} directions)",
            fontsize=9,
        )
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        save_figure(fig, ctx.path("sharpness_curves.png"))
        arts.update(plot="sharpness_curves.png", curves="sharpness_curves.npz")
    return JobOutput(metrics, arts)
