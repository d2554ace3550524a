"""``analysis=swa_ensemble``: cyclic-LR snapshots — weight averaging vs prediction ensembling (Fort Fig. 6)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from lsx.landscape.ensembles import compare_swa_and_ensemble, snapshot_epochs
from lsx.plots.common import save_figure

from .base import JobContext, JobOutput, register_job
from .landscape_common import merged_config


@register_job("swa_ensemble")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    from lsx.training.runner import train

    if ctx.cfg["scheduler"]["name"] != "cyclic":
        raise ValueError(f"swa_ensemble needs scheduler=cyclic (snapshots at the low-LR end of each cycle), got {ctx.cfg['scheduler']['name']!r}")
    lrs = [float(v) for v in a["max_lrs"]]
    if len(lrs) < 1:
        raise ValueError("analysis.max_lrs is empty")
    cycle, epochs = int(ctx.cfg["scheduler"]["cycle_epochs"]), int(ctx.cfg["training"]["epochs"])
    snaps = snapshot_epochs(epochs, cycle, int(a["num_snapshots"]))
    subset = ctx.landscape_subset()
    bn_batches = [subset.train_x[i : i + 256] for i in range(0, len(subset.train_x), 256)]
    rows = []
    for lr in lrs:
        cfg = merged_config(ctx, {"optimizer": {"lr": lr}, "training": {"checkpoint_epochs": sorted(set(snaps) | {0})}})
        run_ = train(cfg, progress=ctx.progress)
        models = [run_.load(e).build_model() for e in snaps]
        res = compare_swa_and_ensemble(models, subset.test, bn_batches)
        rows.append({"max_lr": lr, **res})
    _plot(rows, snaps, ctx)
    metrics = {}
    for r in rows:
        k = f"lr{r['max_lr']:g}"
        metrics.update({f"{k}_swa_acc": r["swa"]["acc"], f"{k}_ensemble_acc": r["ensemble"]["acc"],
                        f"{k}_mean_snapshot_acc": float(np.mean([s["acc"] for s in r["snapshots"]])),
                        f"{k}_advantage_acc": r["advantage_acc"], f"{k}_advantage_loss": r["advantage_loss"]})
    np.savez(ctx.path("swa_ensemble.npz"), max_lr=np.array(lrs), snapshots=np.array(snaps),
             swa_acc=[r["swa"]["acc"] for r in rows], ens_acc=[r["ensemble"]["acc"] for r in rows],
             swa_loss=[r["swa"]["loss"] for r in rows], ens_loss=[r["ensemble"]["loss"] for r in rows],
             snapshot_acc=np.array([[s["acc"] for s in r["snapshots"]] for r in rows]))
    return JobOutput(metrics, {"plot": "swa_vs_ensemble.png", "data": "swa_ensemble.npz"})


def _plot(rows, snaps, ctx: JobContext) -> None:
    lrs = [r["max_lr"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in rows:
        a1.plot(snaps, [100 * s["acc"] for s in r["snapshots"]], "o-", ms=3, label=f"snapshots, max lr {r['max_lr']:g}")
    a1.set_xlabel("epoch (end of cycle)")
    a1.set_ylabel("test accuracy (%)")
    a1.legend(fontsize=7)
    a2.plot(lrs, [100 * r["advantage_acc"] for r in rows], "o-", label="accuracy: ensemble − SWA (pp)")
    a2.plot(lrs, [r["advantage_loss"] for r in rows], "s--", label="loss: SWA − ensemble")
    a2.axhline(0, color="k", lw=0.5)
    a2.set_xscale("log")
    a2.set_xlabel("maximum learning rate")
    a2.set_title("advantage of prediction averaging", fontsize=9)
    a2.legend(fontsize=7)
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
    save_figure(fig, ctx.path("swa_vs_ensemble.png"))
