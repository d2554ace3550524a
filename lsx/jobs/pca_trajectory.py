"""``analysis=pca_trajectory``: PCA of [θ_i − θ_n] over saved epochs (Li et al. Sec. 7, Fig. 9).

Also Sec. 7.1's comparison: the share of the same (centred) variance that a plane of random directions
(``random_seeds``, normalized by ``random_norm`` as Li's plots are) and the first-to-last direction
(Goodfellow et al.'s axis, Fig. 8(b)) capture, next to the PCA plane's share."""

from __future__ import annotations

import numpy as np
import torch

from lsx.landscape.surfaces.directions import direction_between, random_direction
from lsx.landscape.surfaces.pca import trajectory_pca, variance_captured
from lsx.plots.surfaces import plot_pca_trajectory
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .landscape_common import evaluate_points, load_point, record_centre_loss


@register_job("pca_trajectory")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    run_ = ctx.train(seed=int(a["target_seed"]))
    epochs = sorted(run_.checkpoints)
    if len(epochs) < 3:
        raise ValueError(f"PCA needs at least 3 saved epochs, the run has {epochs}; set training.checkpoint_every (e.g. 1)")
    final = load_point(run_.load(epochs[-1]), a["bn"])
    traj = torch.stack([load_point(run_.load(e), a["bn"]).theta for e in epochs])
    pca = trajectory_pca(traj, final.flat, ignore=a["ignore"])
    path_xy = np.asarray(pca.coords)
    lo, hi = path_xy.min(0), path_xy.max(0)
    pad = float(a["margin"]) * float((hi - lo).max() + 1e-12)
    n = int(a["num"])
    x, y = np.linspace(lo[0] - pad, hi[0] + pad, n), np.linspace(lo[1] - pad, hi[1] + pad, n)
    X, Y = np.meshgrid(x, y)
    coords = np.stack([X.ravel(), Y.ravel()], 1)
    dirs = torch.as_tensor(np.asarray(pca.directions), dtype=final.theta.dtype)
    prov = {
        "kind": "pca",
        "epochs": epochs,
        "ignore": a["ignore"],
        "explained_variance_ratio": list(map(float, pca.explained_variance_ratio)),
        "run": str(run_.run_dir),
        "bn": a["bn"],
    }
    res = evaluate_points(ctx, final, dirs, coords, "pca.h5", prov, a["bn"], a["chunk"], a["flush_every"])
    loss = np.asarray(res["train_loss"]).reshape(n, n)
    record_centre_loss(ctx, final.checkpoint, a["bn"])  # the final point is the origin; the grid need not hit it
    atomic_savez(
        ctx.path("pca.npz"),
        x=x,
        y=y,
        train_loss=loss,
        path=path_xy,
        epochs=np.array(epochs),
        explained=np.asarray(pca.explained_variance_ratio),
        off_plane=np.asarray(pca.off_plane_distance),
    )
    plot_pca_trajectory(
        x, y, loss, path_xy, epochs, pca.explained_variance_ratio, ctx.path("pca_trajectory.png"), log=bool(a["log_scale"])
    )
    ev = [float(v) for v in pca.explained_variance_ratio]
    metrics = {
        "explained_variance_ratio": ev[:2],
        "explained_variance_2d": float(sum(ev[:2])),
        "max_off_plane_distance": float(np.max(pca.off_plane_distance)),
        "epochs": epochs,
        "checkpoints": len(epochs),
    }
    metrics.update(_random_shares(a, traj, final, pca))
    return JobOutput(metrics, {"plot": "pca_trajectory.png", "data": "pca.h5", "pca": "pca.npz"})


def _random_shares(a, traj: torch.Tensor, final, pca) -> dict:
    """Sec. 7.1: the variance share of a random plane and of the first-to-last direction vs the PCA plane's."""
    seeds = [int(v) for v in (a.get("random_seeds") or [])]
    if not seeds:
        return {}
    rand = torch.stack([random_direction(final.flat, final.theta, s, a.get("random_norm", "filter"), a["ignore"]) for s in seeds])
    random_share = variance_captured(traj, rand, mask=pca.mask)
    line_share = variance_captured(traj, direction_between(traj[-1], traj[0])[None], mask=pca.mask)
    out = {
        "random_variance": random_share,
        "random_directions": len(seeds),
        "first_last_variance": line_share,
        "pca_variance_k": float(sum(pca.explained_variance_ratio[: len(seeds)])),
    }
    if random_share > 0:
        out["pca_over_random_log10"] = float(np.log10(out["pca_variance_k"] / random_share))
    return out
