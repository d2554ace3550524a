"""``analysis=connector`` and ``analysis=mconnector``: low-loss connectors between trained optima
(Fort & Jastrzebski Sec. 4.2–4.3, Fig. 3 and Fig. 4)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.connectors import low_loss_connector, m_connector, short_directions_along_path, short_directions_vs_m
from lsx.landscape.evaluator import Evaluator
from lsx.landscape.flat import FlatParams, functional_loss
from lsx.plots.common import integer_ticks, save_figure

from .base import JobContext, JobOutput, register_job
from .landscape_common import same_architecture


def _network(ctx: JobContext, seeds: list[int]):
    """Optima as flat vectors, a minibatch train loss f(θ, step), a full-subset loss and an evaluator."""
    runs = ctx.optima(seeds)
    ckpts = [r.load() for r in runs]
    same_architecture(ckpts)
    model = ckpts[0].build_model().eval()
    flat = FlatParams(model)
    optima = [FlatParams(c.build_model()).get() for c in ckpts]
    a = ctx.analysis
    tx, ty = ctx.datamodule().split("train")
    g = torch.Generator().manual_seed(int(a["batch_seed"]))
    perm = torch.randperm(len(tx), generator=g)
    bs = int(a["batch_size"])
    batches = [(tx[perm[i : i + bs]], ty[perm[i : i + bs]]) for i in range(0, max(1, len(tx) - bs + 1), bs)]
    losses = [functional_loss(model, flat, [b]) for b in batches]
    subset = ctx.landscape_subset()
    n_h = min(int(a["hessian_examples"]), len(subset.train_x))
    hess_loss = functional_loss(model, flat, [(subset.train_x[:n_h], subset.train_y[:n_h])])
    ev = Evaluator(ckpts[0].build_model(), subset.train, subset.test)

    def step_loss(theta: torch.Tensor, step: int) -> torch.Tensor:
        return losses[step % len(losses)](theta)

    def eval_loss(theta: torch.Tensor) -> float:
        return ev.evaluate_at(theta)["train_loss"]

    return optima, step_loss, eval_loss, hess_loss, ev, ckpts


@register_job("connector")
def run_connector(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    seeds = [int(s) for s in a["seeds"]]
    if len(seeds) != 2 or seeds[0] == seeds[1]:
        raise ValueError(f"analysis.seeds must be two different training seeds, got {seeds}")
    optima, step_loss, eval_loss, hess_loss, ev, _ = _network(ctx, seeds)
    if torch.equal(optima[0], optima[1]):
        raise ValueError("the two optima are identical; a connector needs two different points")
    res = low_loss_connector(
        step_loss, optima[0], optima[1], num_segments=int(a["num_segments"]), steps=int(a["steps"]), lr=float(a["lr"]),
        optimizer=a["optimizer"], points_per_segment=int(a["points_per_segment"]), eval_loss_fn=eval_loss,
        metrics_fn=ev.evaluate_at, predict_fn=ev.predict, progress=ctx.progress, memo=ctx.memo("connector_"),
    )
    for w in res.warnings:
        print(f"connector warning: {w}")
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
    for key, style, lab in (("linear", "--", "linear"), ("connector", "-", "connector")):
        d = getattr(res, key)
        axes[0].plot(res.t, d["metric/train_loss"], style, color="tab:blue", label=f"train, {lab}")
        axes[0].plot(res.t, d["metric/test_loss"], style, color="tab:red", label=f"test, {lab}")
        axes[2].plot(res.t, d["agree_with_0"], style, color="tab:green", label=f"agree with start, {lab}")
        axes[2].plot(res.t, d["agree_with_1"], style, color="tab:purple", label=f"agree with end, {lab}")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=7)
    im = axes[1].imshow(res.cosines, vmin=-1, vmax=1, cmap="RdBu_r")
    fig.colorbar(im, ax=axes[1], label="cosine")
    axes[1].set_xlabel("connector node")
    axes[1].set_ylabel("connector node")
    integer_ticks(axes[1], "xy")
    axes[1].set_title("cosines between deviations from the line (Fig. 3 middle)", fontsize=8)
    axes[2].set_ylabel("label agreement")
    axes[2].legend(fontsize=7)
    for ax in (axes[0], axes[2]):
        ax.set_xlabel("position along the path")
    save_figure(fig, ctx.path("connector.png"))
    arts = {"plot": "connector.png"}
    metrics = dict(res.summary)
    metrics["max_train_loss_linear"] = float(np.nanmax(res.linear["metric/train_loss"]))
    metrics["max_train_loss_connector"] = float(np.nanmax(res.connector["metric/train_loss"]))
    metrics["min_test_acc_connector"] = float(np.nanmin(res.connector["metric/test_acc"]))
    save = {"t": res.t, "cosines": res.cosines, "points": res.points.numpy().astype(np.float32), "diverged": res.diverged}
    save.update({f"linear_{k.replace('/', '_')}": v for k, v in res.linear.items()})
    save.update({f"connector_{k.replace('/', '_')}": v for k, v in res.connector.items()})
    if a["short_directions"]["enabled"]:
        sd = ctx.stage("short_directions", lambda: short_directions_along_path(
            hess_loss, res.points, float(a["short_directions"]["threshold"]), int(a["short_directions"]["k_max"])))
        save.update({"short_t": sd["t"], "short_count": np.asarray(sd["count"])})
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(sd["t"], sd["count"], "o-")
        ax.set_xlabel("position along the 1-connector")
        ax.set_ylabel(f"# eigenvalues > {a['short_directions']['threshold']}")
        ax.set_title("short directions along the connector (Fig. 4 left)", fontsize=9)
        integer_ticks(ax, "y")
        save_figure(fig, ctx.path("short_directions_path.png"))
        arts["short_directions"] = "short_directions_path.png"
        metrics["short_directions_along_path"] = [int(c) for c in sd["count"]]
    np.savez(ctx.path("connector.npz"), **save)
    arts["data"] = "connector.npz"
    return JobOutput(metrics, arts)


@register_job("mconnector")
def run_mconnector(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    m = int(a["m"])
    seeds = [int(s) for s in ctx.cfg["optima"]["seeds"]]
    if m < 1:
        raise ValueError(f"analysis.m must be >= 1, got {m}")
    if len(seeds) < m + 1:
        raise ValueError(f"an m-connector with m={m} needs m+1={m + 1} optima; optima.seeds has {len(seeds)}: {seeds}")
    optima, step_loss, eval_loss, hess_loss, ev, _ = _network(ctx, seeds[: m + 1])
    res = m_connector(step_loss, optima, m=m, num_samples=int(a["num_samples"]), seed=int(a["seed"]), steps=int(a["steps"]),
                      lr=float(a["lr"]), optimizer=a["optimizer"], eval_loss_fn=eval_loss, progress=ctx.progress,
                      memo=ctx.memo("mconnector_"))
    for w in res.warnings:
        print(f"m-connector warning: {w}")
    metrics = dict(res.summary)
    arts = {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.arange(len(res.loss_before))
    axes[0].bar(x - 0.2, res.loss_before, 0.4, label="hull point (before)")
    axes[0].bar(x + 0.2, res.loss_after, 0.4, label="optimized (after)")
    axes[0].axhline(float(np.mean(res.optima_loss)), color="k", ls="--", lw=0.8, label="optima")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("hull sample (last: barycentre)")
    axes[0].set_ylabel("train loss")
    axes[0].legend(fontsize=7)
    if a["short_directions"]["enabled"]:
        sd = ctx.stage("short_directions_vs_m", lambda: short_directions_vs_m(
            hess_loss, optima, float(a["short_directions"]["threshold"]), int(a["short_directions"]["k_max"]),
            max_m=m, seed=int(a["seed"]), steps=int(a["steps"]), lr=float(a["lr"]), optimizer=a["optimizer"]))
        axes[1].plot(sd["m"], sd["count"], "o-", label="middle of the m-connector")
        axes[1].axhline(float(sd["count_at_optimum"]), color="k", ls="--", lw=0.8, label="at an optimum")
        axes[1].set_xlabel("m")
        integer_ticks(axes[1], "xy")
        axes[1].set_ylabel(f"# eigenvalues > {a['short_directions']['threshold']}")
        axes[1].legend(fontsize=7)
        axes[1].set_title("short directions vs m (Fig. 4 middle)", fontsize=9)
        metrics["short_directions_vs_m"] = [int(c) for c in np.ravel(sd["count"])]
        metrics["short_directions_at_optimum"] = int(sd["count_at_optimum"])
        # the count depends on how far each middle point converged: report its loss beside it
        metrics["short_directions_mid_loss"] = [float(v) for v in np.ravel(sd["loss_after"])]
    save_figure(fig, ctx.path("mconnector.png"))
    arts["plot"] = "mconnector.png"
    np.savez(ctx.path("mconnector.npz"), weights=res.weights, loss_before=res.loss_before, loss_after=res.loss_after,
             optima_loss=res.optima_loss, diverged=res.diverged)
    arts["data"] = "mconnector.npz"
    return JobOutput(metrics, arts)
