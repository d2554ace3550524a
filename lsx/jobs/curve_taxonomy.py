"""``analysis=curve_taxonomy``: 1D curves along Xu et al.'s direction kinds, each classified
(v-basin, v-side, w-basin, w-peak, vvv-basin) from its extrema."""
from __future__ import annotations

import numpy as np
import torch

from lsx.landscape.curves import classify_curve
from lsx.landscape.directions import normalize_direction, random_direction
from lsx.landscape.hessian import top_eigenpairs
from lsx.landscape.stationary import count_stationary_points
from lsx.plots.surfaces import plot_curves

from .base import JobContext, JobOutput, register_job
from .hessian import network_loss
from .landscape_common import evaluate_points, load_point

KINDS = ("gaussian", "neg_gradient", "later_checkpoint", "independent", "pe", "ne")


def _direction(kind, ctx, a, p, run_, later):
    norm = a["norm"]
    if kind == "gaussian":
        return random_direction(p.flat, p.theta, int(a["direction_seed"]), norm, "biasbn"), {"seed": int(a["direction_seed"])}
    if kind == "later_checkpoint":
        return later.theta - p.theta, {"to_epoch": later.checkpoint.epoch}
    if kind == "independent":
        other = load_point(ctx.train(seed=int(a["independent_seed"])).load(p.checkpoint.epoch), a["bn"])
        return other.theta - p.theta, {"to_seed": int(a["independent_seed"])}
    f, flat = network_loss(ctx, p.checkpoint.build_model(), a["hessian_examples"])
    th = flat.get()
    if kind == "neg_gradient":
        t = th.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(t), t)
        d = -g
    else:
        res = top_eigenpairs(f, th, 1, "LA" if kind == "pe" else "SA", tol=1e-4, seed=0)
        d = torch.as_tensor(res.vectors[:, 0], dtype=th.dtype)
    full = torch.zeros_like(p.theta)
    full[: flat.num_params] = d  # BN buffers (states policy) do not move
    return normalize_direction(full, p.theta, p.flat, norm), {"normalization": norm}


def check_kinds(kinds: list[str]) -> list[str]:
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"unknown direction kinds {bad}; valid: {', '.join(KINDS)}")
    return kinds


def study_point(ctx: JobContext, kinds: list[str]):
    """(run, epoch, point at analysis.epoch, the run's last later checkpoint when a kind needs it).

    ``epoch: null`` studies the final checkpoint, or, when ``later_checkpoint`` is asked for and
    an earlier one exists, the last checkpoint before the final (so the default config runs)."""
    a = ctx.analysis
    run_ = ctx.train(seed=int(a["target_seed"]))
    epochs = sorted(run_.checkpoints)
    if a.get("epoch") is not None:
        epoch = int(a["epoch"])
    else:
        epoch = epochs[-2] if "later_checkpoint" in kinds and len(epochs) > 1 else epochs[-1]
    p = load_point(run_.load(epoch), a["bn"])
    later = None
    if "later_checkpoint" in kinds:
        after = [e for e in epochs if e > epoch]
        if not after:
            raise ValueError(f"'later_checkpoint' needs a checkpoint after epoch {epoch}; saved: {epochs} "
                             "(set analysis.epoch to an earlier saved epoch)")
        later = load_point(run_.load(after[-1]), a["bn"])
    return run_, epoch, p, later


@register_job("curve_taxonomy")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    kinds = check_kinds(list(a["directions"]))
    run_, epoch, p, later = study_point(ctx, kinds)
    dirs, prov = [], []
    for k in kinds:
        d, meta = _direction(k, ctx, a, p, run_, later)
        if d.numel() != p.flat.numel:
            raise ValueError(f"direction {k!r} has {d.numel()} entries, the model has {p.flat.numel}")
        dirs.append(d)
        prov.append({"kind": k, **meta})
    s, n = float(a["scale"]), int(a["num"])
    ranges = {k: (np.linspace(-1.0, 2.0, n) if k == "independent" else np.linspace(-s, s, n)) for k in kinds}
    coords = np.zeros((len(kinds) * n, len(kinds)))
    for i, k in enumerate(kinds):
        coords[i * n : (i + 1) * n, i] = ranges[k]
    res = evaluate_points(ctx, p, torch.stack(dirs), coords, "curves.h5", {"directions": prov, "epoch": epoch, "bn": a["bn"]},
                          a["bn"], a.get("chunk"), a["flush_every"])
    loss = np.asarray(res["train_loss"]).reshape(len(kinds), n)
    types = [classify_curve(ranges[k], loss[i], float(a["rel_prominence"])) for i, k in enumerate(kinds)]
    counts = [count_stationary_points(loss[i]) for i in range(len(kinds))]
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 3), squeeze=False)
    for ax, k, y, t in zip(axes[0], kinds, loss, types):
        ax.plot(ranges[k], y)
        ax.set_title(f"{k}: {t}", fontsize=9)
        ax.set_xlabel("λ")
        ax.set_ylabel(f"train loss ({a['bn']} BN)")
    save_figure(fig, ctx.path("curve_taxonomy.png"))
    np.savez(ctx.path("curve_taxonomy.npz"), loss=loss, kinds=np.array(kinds), types=np.array(types),
             **{f"lam_{k}": v for k, v in ranges.items()})
    metrics = {f"type_{k}": t for k, t in zip(kinds, types)} | {f"stationary_{k}": c for k, c in zip(kinds, counts)}
    metrics["epoch"] = epoch  # the studied checkpoint (epoch: null picks it)
    return JobOutput(metrics, {"plot": "curve_taxonomy.png", "data": "curves.h5", "curves": "curve_taxonomy.npz"})
