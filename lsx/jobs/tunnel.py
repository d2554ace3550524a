"""``analysis=tunnel_width``: angular width of the low-loss tunnel around an optimum (Fort Sec. 4.4).

Sweep it over learning rate, L2, dropout or batch size with the multirun templates, then
``python -m lsx.aggregate <sweep_dir>`` draws width vs hyperparameter (Fort Fig. 5).
"""

from __future__ import annotations

import numpy as np

from lsx.distributed import run_memo_loop_sharded
from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.paths.tunnel import RadialResult, tunnel_width
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import center_checkpoint, load_point, param_subset, record_centre_loss


@register_job("tunnel_width")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    if a["ignore"] not in ("none", "biasbn"):
        raise ValueError(f"analysis.ignore {a['ignore']!r}; valid: none, biasbn")
    p = load_point(center_checkpoint(ctx))
    trained = None if a.get("center_ckpt") else ctx.train(seed=int(a["target_seed"]))
    subset = ctx.landscape_subset()
    ev = Evaluator(p.model, train=subset.train, test=None, chunk_size=a.get("chunk"), loss_fn=ctx.loss_fn())
    theta = ev.flat.get()
    mask = ev.flat.mask(["weight"]) if a["ignore"] == "biasbn" else None
    params = param_subset(ctx, ev.flat)  # analysis.params: directions only in these (‖θ‖ stays the whole model's)
    if params is not None:
        mask = params.mask if mask is None else mask & params.mask
        if not bool(mask.any()):
            raise ValueError(
                "analysis.params selects only biases and norm-layer parameters, which analysis.ignore=biasbn "
                "leaves still: set analysis.ignore=none or include weights"
            )

    def loss(th):
        return ev.evaluate_at(th)["train_loss"]

    def directions(memo):  # each direction's search is independent: sharded over ranks under torchrun/SLURM
        return tunnel_width(
            loss,
            theta,
            int(a["num_directions"]),
            int(a["direction_seed"]),
            a["threshold"]["mode"],
            float(a["threshold"]["value"]),
            a.get("initial_step"),
            a.get("max_distance"),
            float(a["rtol"]),
            mask,
            memo=memo,
            progress=ctx.progress,
            angle=a.get("angle", "arctan"),
            orthogonal=bool(a.get("orthogonal", True)),
        )

    res = run_memo_loop_sharded(ctx, "tunnel_", directions, lambda: RadialResult(float("nan"), False, 0, (0.0, float("inf"))))
    ev.flat.set_(theta)
    record_centre_loss(ctx, p.checkpoint, "keep", res.base_loss)
    atomic_savez(ctx.path("tunnel.npz"), distances=res.distances, angular=res.angular, reached=res.reached)
    _plot(res, ctx)
    # the angle can move through r or through ‖θ‖: both are reported beside it, with the model's training state
    metrics = dict(
        res.summary,
        base_train_loss=res.base_loss,
        threshold=res.threshold,
        theta_norm=res.theta_norm,
        angle=res.angle,
        threshold_mode=a["threshold"]["mode"],
        train_loss=trained.summary.get("train_loss") if trained else None,
        train_test_acc=trained.summary.get("test_acc") if trained else None,
    )
    return JobOutput(metrics, {"plot": "tunnel_widths.png", "data": "tunnel.npz"}, {"center": str(p.checkpoint.path)})


def _plot(res, ctx: JobContext) -> None:
    import matplotlib.pyplot as plt

    from lsx.plots.common import integer_ticks, save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    ok = np.isfinite(res.angular)
    ax.hist(res.angular[ok], bins=max(5, ok.sum() // 2))
    ax.axvline(res.summary["width_mean"], color="k", ls="--", label=f"mean {res.summary['width_mean']:.3g}")
    ax.set_xlabel("angular width  " + ("arctan(r / ‖θ‖)" if res.angle == "arctan" else "r / ‖θ‖") + "  (rad)")
    ax.set_ylabel("directions")
    integer_ticks(ax, "y")
    ax.set_title(
        f"tunnel width (loss > {res.threshold:.3g}, L(θ)={res.base_loss:.3g}, ‖θ‖={res.theta_norm:.3g}), "
        f"n={ok.sum()}/{len(ok)} reached",
        fontsize=8,
    )
    ax.legend(fontsize=8)
    save_figure(fig, ctx.path("tunnel_widths.png"))
