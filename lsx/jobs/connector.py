"""``analysis=connector`` and ``analysis=mconnector``: low-loss connectors between trained optima
(Fort & Jastrzebski Sec. 4.2–4.3, Fig. 3 and Fig. 4)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.engine.flat import FlatParams, functional_loss
from lsx.landscape.paths.connectors import (
    label_change_by_half,
    low_loss_connector,
    m_connector,
    short_directions_along_path,
    short_directions_vs_m,
    short_threshold,
    two_block_at_equal_lag,
)
from lsx.landscape.permutation.align import align_checkpoints
from lsx.plots.common import integer_ticks, save_figure
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import record_centre_loss, same_architecture

EVAL_SPLITS = ("heldout", "train")


def optimization_and_evaluation_data(
    ctx: JobContext,
) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(optimization data, evaluation data) of the connector jobs.

    Nodes and m-connector points are optimized on minibatches of the training split; their
    reported losses and Hessians use ``analysis.eval_split``: ``heldout`` (default) takes the
    landscape subset's test examples, disjoint from the training split, so a point is never judged
    on the examples it was optimized on; ``train`` takes the landscape subset's training examples
    (a subset of the optimization data: the optima's own training loss).
    """
    split = ctx.analysis.get("eval_split", "heldout")
    if split not in EVAL_SPLITS:
        raise ValueError(f"analysis.eval_split {split!r}; valid: {', '.join(EVAL_SPLITS)}")
    subset = ctx.landscape_subset()
    return ctx.datamodule().split("train"), (subset.test if split == "heldout" else subset.train)


def shared_examples(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many rows of ``b`` also occur (exactly) in ``a`` — 0 for really disjoint data."""
    seen = {bytes(r.numpy().tobytes()) for r in a.reshape(len(a), -1).contiguous()}
    return sum(bytes(r.numpy().tobytes()) in seen for r in b.reshape(len(b), -1).contiguous())


def _network(ctx: JobContext, seeds: list[int]):
    """Optima as flat vectors, the minibatch optimization loss f(θ, step), the evaluation loss
    (reported along paths), the Hessian loss (first ``hessian_examples`` evaluation examples), an
    evaluator (train/test metrics and labels of the landscape subset) and the eval-data facts."""
    runs = ctx.optima(seeds)
    ckpts = [r.load() for r in runs]
    same_architecture(ckpts)
    ckpts = align_checkpoints(ckpts, ctx.analysis.get("align"), lambda: ctx.landscape_subset().train[0])  # analysis.align
    for c in ckpts:  # each optimum with its own BN statistics (the path evaluator carries the first one's)
        record_centre_loss(ctx, c, "keep")
    model = ckpts[0].build_model().eval()
    flat = FlatParams(model)
    optima = [FlatParams(c.build_model()).get() for c in ckpts]
    a = ctx.analysis
    (tx, ty), (ex, ey) = optimization_and_evaluation_data(ctx)
    g = torch.Generator().manual_seed(int(a["batch_seed"]))
    perm = torch.randperm(len(tx), generator=g)
    bs = int(a["batch_size"])
    batches = [(tx[perm[i : i + bs]], ty[perm[i : i + bs]]) for i in range(0, max(1, len(tx) - bs + 1), bs)]
    losses = [functional_loss(model, flat, [b]) for b in batches]
    n_h = min(int(a["hessian_examples"]), len(ex))
    hess_loss = functional_loss(model, flat, [(ex[:n_h], ey[:n_h])])
    full_eval = functional_loss(model, flat, [(ex, ey)])
    subset = ctx.landscape_subset()
    ev = Evaluator(ckpts[0].build_model(), subset.train, subset.test)

    def step_loss(theta: torch.Tensor, step: int) -> torch.Tensor:
        return losses[step % len(losses)](theta)

    def eval_loss(theta: torch.Tensor) -> float:
        with torch.no_grad():
            return float(full_eval(theta))

    facts = {
        "eval_split": a.get("eval_split", "heldout"),
        "eval_examples": int(len(ex)),
        "hessian_examples": n_h,
        "optimization_examples": int(len(tx)),
        "eval_examples_in_optimization_data": shared_examples(tx, ex),
        "optima_train_loss": [float(r.summary.get("train_loss", float("nan"))) for r in runs],
        "optima_test_acc": [float(r.summary.get("test_acc", float("nan"))) for r in runs],
    }
    return optima, step_loss, eval_loss, hess_loss, ev, facts


def _short_threshold(ctx: JobContext, hess_loss, reference: torch.Tensor) -> tuple[float, float]:
    sd = ctx.analysis["short_directions"]
    return ctx.stage(
        "short_threshold",
        lambda: short_threshold(
            hess_loss, reference, sd.get("threshold_mode", "relative"), float(sd["threshold"]), int(sd.get("seed", 0))
        ),
    )


def robustness_thresholds(ctx: JobContext, threshold: float) -> tuple[list[float], list[float]]:
    """(settings, eigenvalue levels) of ``short_directions.robustness_thresholds``: the further thresholds
    the counts are also taken at, in the unit of ``threshold`` (× the same λmax in relative mode).

    Why: a short-direction claim that holds at one threshold and not at another is decided by the
    threshold, so its claim is inconclusive unless it holds at every one (lsx.claims.stats_fort_paths)."""
    sd = ctx.analysis["short_directions"]
    extra = [float(v) for v in (sd.get("robustness_thresholds") or [])]
    if any(not v > 0 for v in extra):
        raise ValueError(f"short_directions.robustness_thresholds {extra}: every threshold must be > 0")
    scale = threshold / float(sd["threshold"])
    return extra, [v * scale for v in extra]


def threshold_metrics(ctx: JobContext, settings: list[float], saturated: np.ndarray) -> dict:
    """The thresholds (the main one first, as set) and, per threshold, how many of the job's counts hit
    k_max (``saturated``: (T, …) flags); the ``*_by_threshold`` lists are aligned with
    ``short_directions_thresholds``, and a claim drops a threshold's value where any count saturated."""
    sat = np.asarray(saturated).reshape(len(settings) + 1, -1)
    return {
        "short_directions_thresholds": [float(ctx.analysis["short_directions"]["threshold"])] + [float(v) for v in settings],
        "short_directions_saturated_by_threshold": [int(np.sum(r)) for r in sat],
    }


@register_job("connector")
def run_connector(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    seeds = [int(s) for s in a["seeds"]]
    if len(seeds) != 2 or seeds[0] == seeds[1]:
        raise ValueError(f"analysis.seeds must be two different training seeds, got {seeds}")
    optima, step_loss, eval_loss, hess_loss, ev, facts = _network(ctx, seeds)
    if torch.equal(optima[0], optima[1]):
        raise ValueError("the two optima are identical; a connector needs two different points")
    res = low_loss_connector(
        step_loss,
        optima[0],
        optima[1],
        num_segments=int(a["num_segments"]),
        steps=int(a["steps"]),
        lr=float(a["lr"]),
        optimizer=a["optimizer"],
        points_per_segment=int(a["points_per_segment"]),
        eval_loss_fn=eval_loss,
        metrics_fn=ev.evaluate_at,
        predict_fn=ev.predict,
        progress=ctx.progress,
        memo=ctx.memo("connector_"),
    )
    for w in res.warnings:
        print(f"connector warning: {w}")
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), layout="constrained")
    for key, style, lab in (("linear", "--", "linear"), ("connector", "-", "connector")):
        d = getattr(res, key)
        axes[0].plot(res.t, d["metric/train_loss"], style, color="tab:blue", label=f"train subset, {lab}")
        axes[0].plot(res.t, d["loss"], style, color="tab:red", label=f"held-out ({facts['eval_split']}), {lab}")
        axes[2].plot(res.t, d["agree_with_0"], style, color="tab:green", label=f"agree with start, {lab}")
        axes[2].plot(res.t, d["agree_with_1"], style, color="tab:purple", label=f"agree with end, {lab}")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("loss")
    axes[0].set_title(f"connector nodes optimized on the training split (n={facts['optimization_examples']})", fontsize=8)
    axes[0].legend(fontsize=7)
    im = axes[1].imshow(res.cosines, vmin=-1, vmax=1, cmap="RdBu_r")
    fig.colorbar(im, ax=axes[1], label="cosine")
    axes[1].set_xlabel("connector node")
    axes[1].set_ylabel("connector node")
    integer_ticks(axes[1], "xy")
    axes[1].set_title("cosines between deviations from the line (Fig. 3 middle)", fontsize=8)
    axes[2].set_ylabel(f"label agreement (test n={len(ev.predict(split='test'))})")
    axes[2].legend(fontsize=7)
    for ax in (axes[0], axes[2]):
        ax.set_xlabel("position along the path")
    save_figure(fig, ctx.path("connector.png"))
    arts = {"plot": "connector.png"}
    metrics = dict(res.summary, **{k: v for k, v in facts.items()})
    metrics.update(path_metrics(res.linear["loss"], res.connector["loss"]))
    metrics["max_train_loss_linear"] = float(np.nanmax(res.linear["metric/train_loss"]))
    metrics["max_train_loss_connector"] = float(np.nanmax(res.connector["metric/train_loss"]))
    metrics["min_test_acc_connector"] = float(np.nanmin(res.connector["metric/test_acc"]))
    metrics["optima_label_disagreement"] = float(1.0 - res.linear["agree_with_1"][0])
    blocks = two_block_at_equal_lag(res.cosines)
    metrics.update(
        two_block_lags=blocks["lags"],
        two_block_within_by_lag=blocks["within"],
        two_block_across_by_lag=blocks["across"],
        two_block_relative_contrast=blocks["relative_contrast"],
    )
    for key in ("connector", "linear"):
        d = getattr(res, key)
        lab = label_change_by_half(res.t, d["agree_with_0"], d["agree_with_1"])
        metrics.update({f"label_change_{key}_{k}": lab[k] for k in ("first_half", "second_half", "one_half_share")})
        metrics[f"label_constancy_{key}"] = lab["constancy"]
    save = {"t": res.t, "cosines": res.cosines, "points": res.points.numpy().astype(np.float32), "diverged": res.diverged}
    save.update({f"linear_{k.replace('/', '_')}": v for k, v in res.linear.items()})
    save.update({f"connector_{k.replace('/', '_')}": v for k, v in res.connector.items()})
    if a["short_directions"]["enabled"]:
        thr, lam = _short_threshold(ctx, hess_loss, optima[0])
        settings, levels = robustness_thresholds(ctx, thr)
        sd = ctx.stage(
            "short_directions",
            lambda: short_directions_along_path(
                hess_loss, res.points, thr, int(a["short_directions"]["k_max"]), more_thresholds=levels
            ),
        )
        save.update(
            {
                "short_t": sd["t"],
                "short_count": np.asarray(sd["count"]),
                "short_loss": sd["loss"],
                "short_counts_by_threshold": np.asarray(sd["counts"]),
            }
        )
        _plot_short_path(sd, thr, lam, ctx)
        arts["short_directions"] = "short_directions_path.png"
        metrics.update(short_path_metrics(sd["count"], sd["loss"], sd["saturated"], thr, lam))
        metrics.update(threshold_metrics(ctx, settings, sd["saturated_by_threshold"]))
        metrics["short_directions_gain_by_threshold"] = [
            short_path_metrics(c, sd["loss"], sat, thr, lam)["short_directions_gain"]
            for c, sat in zip(sd["counts"], sd["saturated_by_threshold"])
        ]
    atomic_savez(ctx.path("connector.npz"), **save)
    arts["data"] = "connector.npz"
    return JobOutput(metrics, arts)


def path_metrics(linear_loss: np.ndarray, connector_loss: np.ndarray) -> dict[str, float]:
    """Barriers above the mean endpoint loss, and the connector's barrier as a fraction of the line's.

    ``barrier_ratio`` < 1: the connector stays lower than the line where the line is high.
    """
    ends = 0.5 * (float(linear_loss[0]) + float(linear_loss[-1]))
    b_lin = float(np.nanmax(linear_loss)) - ends
    b_con = float(np.nanmax(connector_loss)) - ends
    return {"barrier_linear": b_lin, "barrier_connector": b_con, "barrier_ratio": b_con / b_lin if b_lin > 0 else float("nan")}


def short_path_metrics(count: np.ndarray, loss: np.ndarray, saturated: np.ndarray, threshold: float, lam: float) -> dict:
    """Counts at the nodes with their losses; the middle node (nearest t = 0.5) against the endpoints."""
    count = np.asarray(count, dtype=float)
    mid = int(np.argmin(np.abs(np.linspace(0, 1, len(count)) - 0.5)))
    ends = 0.5 * (count[0] + count[-1])
    return {
        "short_directions_along_path": [int(c) for c in count],
        "short_directions_loss": [float(v) for v in loss],
        "short_directions_middle": float(count[mid]),
        "short_directions_ends": float(ends),
        "short_directions_gain": float(count[mid] - ends),
        "short_directions_saturated": int(np.sum(saturated)),
        "short_threshold": float(threshold),
        "reference_top_eigenvalue": float(lam),
    }


def _plot_short_path(sd: dict, thr: float, lam: float, ctx: JobContext) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    ax.plot(sd["t"], sd["count"], "o-", color="tab:blue")
    ax.set_xlabel("position along the 1-connector")
    ax.set_ylabel(f"# eigenvalues > {thr:.3g}")
    integer_ticks(ax, "y")
    ax2 = ax.twinx()
    ax2.plot(sd["t"], sd["loss"], "s:", color="tab:red", ms=3)
    ax2.set_ylabel("held-out loss at the node", color="tab:red")
    rel = f" = {thr / lam:.3g}·λmax(θ₀)" if np.isfinite(lam) else ""
    ax.set_title(
        f"short directions along the connector (Fig. 4 left), threshold {thr:.3g}{rel}, n={len(sd['count'])} nodes", fontsize=8
    )
    save_figure(fig, ctx.path("short_directions_path.png"))


@register_job("mconnector")
def run_mconnector(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    m = int(a["m"])
    seeds = [int(s) for s in ctx.cfg["optima"]["seeds"]]
    if m < 1:
        raise ValueError(f"analysis.m must be >= 1, got {m}")
    if len(seeds) < m + 1:
        raise ValueError(f"an m-connector with m={m} needs m+1={m + 1} optima; optima.seeds has {len(seeds)}: {seeds}")
    optima, step_loss, eval_loss, hess_loss, ev, facts = _network(ctx, seeds[: m + 1])
    res = m_connector(
        step_loss,
        optima,
        m=m,
        num_samples=int(a["num_samples"]),
        seed=int(a["seed"]),
        steps=int(a["steps"]),
        lr=float(a["lr"]),
        optimizer=a["optimizer"],
        eval_loss_fn=eval_loss,
        progress=ctx.progress,
        memo=ctx.memo("mconnector_"),
    )
    for w in res.warnings:
        print(f"m-connector warning: {w}")
    metrics = dict(res.summary, **facts)
    metrics.update(hull_metrics(res.loss_before, res.loss_after, res.optima_loss))
    arts = {}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    x = np.arange(len(res.loss_before))
    axes[0].bar(x - 0.2, res.loss_before, 0.4, label="hull point (before)")
    axes[0].bar(x + 0.2, res.loss_after, 0.4, label="optimized (after)")
    axes[0].axhline(float(np.mean(res.optima_loss)), color="k", ls="--", lw=0.8, label="optima")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("hull sample (last: barycentre)")
    axes[0].set_ylabel(f"held-out loss (n={facts['eval_examples']})")
    axes[0].set_title(f"{m}-connector, points optimized on the training split", fontsize=9)
    axes[0].legend(fontsize=7)
    if a["short_directions"]["enabled"]:
        thr, lam = _short_threshold(ctx, hess_loss, optima[0])
        settings, levels = robustness_thresholds(ctx, thr)
        sd = ctx.stage(
            "short_directions_vs_m",
            lambda: short_directions_vs_m(
                step_loss,
                optima,
                thr,
                int(a["short_directions"]["k_max"]),
                max_m=m,
                seed=int(a["seed"]),
                steps=int(a["steps"]),
                lr=float(a["lr"]),
                optimizer=a["optimizer"],
                hessian_loss_fn=hess_loss,
                eval_loss_fn=eval_loss,
                more_thresholds=levels,
            ),
        )
        axes[1].plot(sd["m"], sd["count"], "o-", label="middle of the m-connector")
        axes[1].axhline(float(sd["count_at_optimum"]), color="k", ls="--", lw=0.8, label="at an optimum")
        for mm, c, loss in zip(sd["m"], sd["count"], sd["loss_mid"]):
            axes[1].annotate(f"L={loss:.2f}", (mm, c), fontsize=6, textcoords="offset points", xytext=(0, 4))
        axes[1].set_xlabel("m")
        integer_ticks(axes[1], "xy")
        rel = f" = {thr / lam:.3g}·λmax(θ₀)" if np.isfinite(lam) else ""
        axes[1].set_ylabel(f"# eigenvalues > {thr:.3g}{rel}")
        axes[1].legend(fontsize=7)
        axes[1].set_title(f"short directions vs m (Fig. 4 middle), Hessian on {facts['hessian_examples']} held-out", fontsize=8)
        metrics["short_directions_vs_m"] = [int(c) for c in np.ravel(sd["count"])]
        metrics["short_directions_m"] = [int(v) for v in np.ravel(sd["m"])]
        metrics["short_directions_at_optimum"] = int(sd["count_at_optimum"])
        metrics["short_directions_optimum_loss"] = float(sd["loss_at_optimum"])
        # the count depends on how far each middle point converged: report its loss beside it
        metrics["short_directions_mid_loss"] = [float(v) for v in np.ravel(sd["loss_mid"])]
        metrics["short_directions_saturated"] = int(np.sum(sd["saturated"]))
        metrics["short_directions_gain"] = float(np.ravel(sd["count"])[-1] - int(sd["count_at_optimum"]))
        metrics["short_threshold"], metrics["reference_top_eigenvalue"] = float(thr), float(lam)
        at_opt = np.asarray(sd["counts_at_optimum"], dtype=int)
        k_max = int(a["short_directions"]["k_max"])  # the optimum's count is part of the gain: its saturation counts too
        metrics.update(threshold_metrics(ctx, settings, np.column_stack([sd["saturated_by_threshold"], at_opt >= k_max])))
        metrics["short_directions_vs_m_by_threshold"] = [[int(c) for c in row] for row in sd["counts"]]
        metrics["short_directions_at_optimum_by_threshold"] = [int(c) for c in at_opt]
        metrics["short_directions_gain_by_threshold"] = [float(row[-1] - c) for row, c in zip(sd["counts"], at_opt)]
    save_figure(fig, ctx.path("mconnector.png"))
    arts["plot"] = "mconnector.png"
    atomic_savez(
        ctx.path("mconnector.npz"),
        weights=res.weights,
        loss_before=res.loss_before,
        loss_after=res.loss_after,
        optima_loss=res.optima_loss,
        diverged=res.diverged,
    )
    arts["data"] = "mconnector.npz"
    return JobOutput(metrics, arts)


def hull_metrics(loss_before: np.ndarray, loss_after: np.ndarray, optima_loss: np.ndarray) -> dict[str, float]:
    """How low the optimized hull points are: the highest one's loss above the optima's mean, as a
    fraction of the same for the un-optimized hull points (the m-simplex's own barrier).

    ``hull_barrier_ratio`` < 1: the m-connector is lower than the straight simplex where it is high;
    NaN when the simplex has no barrier (its highest point no higher than the optima)."""
    base = float(np.mean(optima_loss))
    b_before = float(np.nanmax(loss_before)) - base
    b_after = float(np.nanmax(loss_after)) - base
    return {
        "optima_mean_loss": base,
        "hull_barrier_before": b_before,
        "hull_barrier_after": b_after,
        "hull_barrier_ratio": b_after / b_before if b_before > 0 else float("nan"),
    }
