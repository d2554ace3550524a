"""``analysis=radial_tunnels``: the training loss on the plane of three optima at several epochs (Fort Fig. 2).

Besides the per-epoch scalars (``epoch{e}_radius`` = ‖θ‖ of the first optimum, kept for old readers) the job
writes per-epoch lists for the claims (``fort_list_trend`` pools (epoch, value) pairs over jobs):
``epochs``, ``radius_by_epoch`` (mean ‖θ‖ of the three optima), ``pair_distance_by_epoch`` (mean pairwise
distance on their plane), ``pair_cosine_by_epoch`` (mean cosine between the optima's parameter vectors:
Fig. 2's "individual low-loss radial tunnels are approximately orthogonal to each other"; the distance is
≈ √2 × radius exactly when it is ≈ 0, so it is the distance's information not already in the radius) and
``optima_train_loss_by_epoch`` (mean over the three runs of the learning curve's
train loss at that epoch — the running mean over the epoch's batches, no extra evaluation; NaN where the curve
has no row, e.g. epoch 0).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from lsx.plots.common import save_figure

from .base import JobContext, JobOutput, register_job
from .landscape_common import evaluate_points, load_point, param_subset, record_centre_loss, same_architecture
from .plane import plane_grid, subset_plane, three_seeds


@register_job("radial_tunnels")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    seeds = three_seeds(a["seeds"])
    runs = ctx.optima(seeds)
    epochs = [int(e) for e in a["epochs"]]
    missing = sorted({e for e in epochs for r in runs if e not in r.checkpoints})
    if missing:
        raise ValueError(
            f"epochs {missing} are not saved by the training runs (saved: {sorted(runs[0].checkpoints)}); "
            "add them to training.checkpoint_epochs"
        )
    n = int(a["num"])
    fig, axes = plt.subplots(1, len(epochs), figsize=(4 * len(epochs), 3.8), squeeze=False, layout="constrained")
    metrics: dict = {}
    radii, pair_dists, cosines, losses = [], [], [], []
    curves = [{int(row["epoch"]): row.get("train/loss", float("nan")) for row in r.learning_curve()} for r in runs]
    for ax, e in zip(axes[0], epochs):
        ckpts = [r.load(e) for r in runs]
        same_architecture(ckpts)
        pts = [load_point(c, a["bn"]) for c in ckpts]
        subset = param_subset(ctx, pts[0].flat)  # analysis.params: the plane moves only these
        basis, pos = subset_plane([p.theta for p in pts], subset)
        x, y, coords = plane_grid(pos, a["margin"], n)
        X, Y = np.meshgrid(x, y)
        prov = {
            "kind": "plane_of_three",
            "epoch": e,
            "checkpoints": [str(c.path) for c in ckpts],
            "bn": a["bn"],
            "positions": pos.tolist(),
        }  # the optima on the plane, for the interactive figure and export
        if subset is not None:
            prov["params"] = subset.record()
        res = evaluate_points(ctx, pts[0], basis, coords, f"plane_epoch{e}.h5", prov, a["bn"], a.get("chunk"), a["flush_every"])
        loss = np.asarray(res["train_loss"]).reshape(n, n)
        if e == max(epochs):  # the optima at the last epoch shown (the plane grid need not pass through them)
            for c in ckpts:
                record_centre_loss(ctx, c, a["bn"])
        cf = ax.contourf(X, Y, np.log10(np.clip(loss, 1e-8, None)), levels=25, cmap="viridis")
        fig.colorbar(cf, ax=ax, label="log10 train loss")
        ax.plot(pos[:, 0], pos[:, 1], "r*", ms=10)
        ax.set_xlabel("α (plane direction 1)")
        ax.set_ylabel("β (plane direction 2)")
        vecs = [p.theta.double().numpy() for p in pts]
        norms = [float(np.linalg.norm(v)) for v in vecs]
        cosines.append(float(np.mean([vecs[i] @ vecs[j] / (norms[i] * norms[j]) for i, j in ((0, 1), (0, 2), (1, 2))])))
        radius = norms[0]
        ax.set_title(f"epoch {e}: ‖θ‖≈{radius:.1f}", fontsize=9)
        metrics[f"epoch{e}_mean_pair_distance"] = float(
            np.mean([np.linalg.norm(pos[i] - pos[j]) for i, j in ((0, 1), (0, 2), (1, 2))])
        )
        radii.append(float(np.mean(norms)))
        pair_dists.append(metrics[f"epoch{e}_mean_pair_distance"])
        losses.append(float(np.mean([c.get(e, float("nan")) for c in curves])))
        metrics[f"epoch{e}_radius"] = radius
        metrics[f"epoch{e}_max_loss"] = float(np.nanmax(loss))
    metrics.update(
        epochs=epochs,
        radius_by_epoch=radii,
        pair_distance_by_epoch=pair_dists,
        pair_cosine_by_epoch=cosines,
        optima_train_loss_by_epoch=losses,
    )
    save_figure(fig, ctx.path("radial_tunnels.png"))
    return JobOutput(metrics, {"plot": "radial_tunnels.png"})
