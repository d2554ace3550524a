"""``analysis=swa_ensemble``: cyclic-LR snapshots — weight averaging vs prediction ensembling (Fort Fig. 6).

For each maximum LR one run with the cyclic schedule is trained (cached); after
``analysis.burn_in_epochs`` the last ``analysis.num_snapshots`` cycle ends are averaged in weight
space (SWA, BN re-estimated) and in prediction space (ensemble), both evaluated on the held-out
test examples of the landscape subset. Metrics carry per-max-LR lists (``max_lrs``,
``advantage_acc``, ``advantage_nll``, ...) so a claim can test the trend over max LR.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from lsx.landscape.paths.ensembles import compare_swa_and_ensemble, snapshot_epochs
from lsx.plots.common import save_figure
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import merged_config, record_centre_loss


@register_job("swa_ensemble")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    from lsx.training.runner import train_all

    if ctx.cfg["scheduler"]["name"] != "cyclic":
        raise ValueError(
            "swa_ensemble needs scheduler=cyclic (snapshots at the low-LR end of each cycle), "
            f"got {ctx.cfg['scheduler']['name']!r}"
        )
    lrs = [float(v) for v in a["max_lrs"]]
    if len(lrs) < 1:
        raise ValueError("analysis.max_lrs is empty")
    cycle, epochs = int(ctx.cfg["scheduler"]["cycle_epochs"]), int(ctx.cfg["training"]["epochs"])
    snaps = snapshot_epochs(epochs, cycle, int(a["num_snapshots"]), int(a.get("burn_in_epochs") or 0))
    subset = ctx.landscape_subset()
    bn_batches = [subset.train_x[i : i + 256] for i in range(0, len(subset.train_x), 256)]
    # snapshots need every cycle: a stop rule (if the config has one) must not cut training short
    no_stop = {k: None for k in ("target_train_loss", "max_steps") if k in ctx.cfg["training"]}
    cfgs = [
        merged_config(ctx, {"optimizer": {"lr": lr}, "training": {"checkpoint_epochs": sorted(set(snaps) | {0}), **no_stop}})
        for lr in lrs
    ]
    runs = train_all(cfgs, progress=ctx.progress)  # under several ranks: one max LR's run per rank at once
    rows = []
    for lr, run_ in zip(lrs, runs):
        models = [run_.load(e).build_model() for e in snaps]
        record_centre_loss(ctx, run_.load(), "keep")  # the run's final weights, its own BN statistics
        res = compare_swa_and_ensemble(models, subset.test, bn_batches)
        rows.append({"max_lr": lr, "train_loss": run_.summary.get("train_loss"), **res})
    _plot(rows, snaps, ctx)
    metrics = _metrics(rows, snaps)
    atomic_savez(
        ctx.path("swa_ensemble.npz"),
        max_lr=np.array(lrs),
        snapshots=np.array(snaps),
        swa_acc=[r["swa"]["acc"] for r in rows],
        ens_acc=[r["ensemble"]["acc"] for r in rows],
        swa_loss=[r["swa"]["loss"] for r in rows],
        ens_loss=[r["ensemble"]["loss"] for r in rows],
        snapshot_acc=np.array([[s["acc"] for s in r["snapshots"]] for r in rows]),
        snapshot_loss=np.array([[s["loss"] for s in r["snapshots"]] for r in rows]),
    )
    return JobOutput(metrics, {"plot": "swa_vs_ensemble.png", "data": "swa_ensemble.npz"})


def _metrics(rows: list[dict], snaps: list[int]) -> dict:
    m: dict = {"snapshot_epochs": list(snaps), "max_lrs": [r["max_lr"] for r in rows]}
    lists = {
        "swa_acc": lambda r: r["swa"]["acc"],
        "ensemble_acc": lambda r: r["ensemble"]["acc"],
        "swa_nll": lambda r: r["swa"]["loss"],
        "ensemble_nll": lambda r: r["ensemble"]["loss"],
        "mean_snapshot_acc": lambda r: float(np.mean([s["acc"] for s in r["snapshots"]])),
        "mean_snapshot_nll": lambda r: float(np.mean([s["loss"] for s in r["snapshots"]])),
        "advantage_acc": lambda r: r["advantage_acc"],
        "advantage_nll": lambda r: r["advantage_loss"],
        "final_train_loss": lambda r: r["train_loss"],
    }
    for name, f in lists.items():
        m[name] = [float(f(r)) if f(r) is not None else float("nan") for r in rows]
    for r in rows:  # flat scalars too (aggregate's CSV and W&B summaries read scalars)
        k = f"lr{r['max_lr']:g}"
        m.update(
            {
                f"{k}_swa_acc": r["swa"]["acc"],
                f"{k}_ensemble_acc": r["ensemble"]["acc"],
                f"{k}_advantage_acc": r["advantage_acc"],
                f"{k}_advantage_loss": r["advantage_loss"],
            }
        )
    return m


def _plot(rows, snaps, ctx: JobContext) -> None:
    lrs = [r["max_lr"] for r in rows]
    n_test = len(ctx.landscape_subset().test_y)
    fig, (a0, a1, a2) = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    for r in rows:
        a0.plot(snaps, [100 * s["acc"] for s in r["snapshots"]], "o-", ms=3, label=f"max lr {r['max_lr']:g}")
    a0.set_xlabel("epoch (end of cycle, after burn-in)")
    a0.set_ylabel("test accuracy (%)")
    a0.set_title("single snapshots", fontsize=9)
    a0.legend(fontsize=7)
    for key, style, lab in (("ensemble", "o-", "ensemble (prediction avg.)"), ("swa", "s--", "SWA (weight avg.)")):
        a1.plot(lrs, [100 * r[key]["acc"] for r in rows], style, label=lab)
        a2.plot(lrs, [r[key]["loss"] for r in rows], style, label=lab)
    a1.plot(lrs, [100 * np.mean([s["acc"] for s in r["snapshots"]]) for r in rows], ":", color="gray", label="mean snapshot")
    a2.plot(lrs, [np.mean([s["loss"] for s in r["snapshots"]]) for r in rows], ":", color="gray", label="mean snapshot")
    a1.set_ylabel("test accuracy (%)")
    a2.set_ylabel("test NLL")
    a2.set_yscale("log")
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_xlabel("maximum learning rate")
        ax.set_title(f"{len(snaps)} snapshots, test n={n_test}", fontsize=9)
        ax.legend(fontsize=7)
    for ax in (a0, a1, a2):
        ax.grid(alpha=0.3)
    save_figure(fig, ctx.path("swa_vs_ensemble.png"))
