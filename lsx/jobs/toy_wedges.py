"""``analysis=toy_wedges``: Fort & Jastrzebski's n-wedge toy landscape (Sec. 3), three experiments:
random-hyperplane optimization success vs d (threshold at d ≈ D−n), the tunnel between two
optima with its two-block cosine structure (compared at equal lag: ``tunnel_two_block_relative_contrast``)
and barrier ratio, and the round-looking radial profile."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.paths.connectors import two_block_at_equal_lag
from lsx.landscape.toy.wedges import hyperplane_success, radial_profile, two_optima_tunnel
from lsx.plots.common import integer_ticks, save_figure
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .connector import path_metrics


@register_job("toy_wedges")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batched problems: threading only adds overhead (70x here)
    try:
        out = _run(ctx, a)
    finally:
        torch.set_num_threads(threads)
    # results.json records the count the numbers were computed at, not the process's (a thread-count
    # comparison of this job would otherwise look like a test it is not)
    out.extra.update(torch_threads=1, torch_threads_process=threads)
    return out


def _run(ctx: JobContext, a) -> JobOutput:
    metrics, arts = {}, {}
    # (1) success vs hyperplane dimension
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    saved = {}
    for k, pair in enumerate(a["pairs"]):
        D, n = int(pair[0]), int(pair[1])
        dims = sorted({max(1, min(D, D - n + off)) for off in a["dim_offsets"]})
        res = hyperplane_success(
            D, n, dims, int(a["trials"]), int(a["seed"]) + k, rotation_seed=a.get("rotation_seed"), steps=int(a["steps"])
        )
        ax.plot(np.asarray(dims) - (D - n), res["success_rate"], "o-", label=f"D={D}, n={n}")
        saved[f"success_D{D}_n{n}"] = res["success_rate"]
        saved[f"dims_D{D}_n{n}"] = np.asarray(dims)
        below = res["success_rate"][np.asarray(dims) <= D - n - 3]
        above = res["success_rate"][np.asarray(dims) >= D - n + 3]
        metrics[f"D{D}_n{n}_success_below"] = float(below.mean()) if below.size else None
        metrics[f"D{D}_n{n}_success_above"] = float(above.mean()) if above.size else None
    ax.axvline(0, color="k", ls="--", lw=0.8)
    ax.set_xlabel("hyperplane dimension d − (D − n)")
    ax.set_ylabel("success rate")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, ctx.path("hyperplane_success.png"))
    arts["hyperplane_success"] = "hyperplane_success.png"

    # (2) two optima, the linear path and the tunnel
    D, n = (int(v) for v in a["tunnel_pair"])
    t = two_optima_tunnel(
        D,
        n,
        int(a["seed"]),
        rotation_seed=a.get("rotation_seed"),
        num_segments=int(a["num_segments"]),
        connector_steps=int(a["connector_steps"]),
    )
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(t["t"], t["linear_loss"], "--", label="linear path")
    a1.plot(t["t"], t["connector_loss"], "-o", ms=3, label="connector")
    a1.set_xlabel("position along the path")
    a1.set_ylabel("toy loss")
    a1.legend(fontsize=8)
    im = a2.imshow(t["cosines"], vmin=-1, vmax=1, cmap="RdBu_r")
    fig.colorbar(im, ax=a2, label="cosine")
    a2.set_xlabel("connector node")
    a2.set_ylabel("connector node")
    integer_ticks(a2, "xy")
    a2.set_title("cosines between deviations from the line", fontsize=9)
    save_figure(fig, ctx.path("toy_tunnel.png"))
    arts["toy_tunnel"] = "toy_tunnel.png"
    metrics.update({f"tunnel_{k}": v for k, v in t["summary"].items()})
    metrics.update({f"tunnel_{k}": v for k, v in path_metrics(t["linear_loss"], t["connector_loss"]).items()})
    blocks = two_block_at_equal_lag(t["cosines"])
    metrics.update(
        tunnel_two_block_lags=blocks["lags"],
        tunnel_two_block_within_by_lag=blocks["within"],
        tunnel_two_block_across_by_lag=blocks["across"],
    )

    # (3) radial profile
    r = radial_profile(D, n, int(a["seed"]), num_directions=int(a["radial_directions"]), rotation_seed=a.get("rotation_seed"))
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for row in r["losses"]:
        ax.plot(r["distances"], row, color="tab:blue", alpha=0.3, lw=0.8)
    ax.plot(r["distances"], r["along_wedge"], "k--", label="along the wedge (flat)")
    ax.plot(r["distances"], r["expected_slope"] * r["distances"], "r:", label="√((D−n)/D)·r")
    ax.set_xlabel("distance along a random unit direction")
    ax.set_ylabel("toy loss")
    ax.legend(fontsize=8)
    save_figure(fig, ctx.path("radial_profile.png"))
    arts["radial_profile"] = "radial_profile.png"
    metrics["radial_max_relative_spread"] = float(np.nanmax(r["relative_spread"][1:]))
    # "everywhere you look (at random), the loss increases": the share of random directions whose loss never falls
    metrics["radial_increasing_fraction"] = float(np.mean(np.all(np.diff(r["losses"], axis=1) >= -1e-12, axis=1)))
    atomic_savez(
        ctx.path("toy_wedges.npz"),
        **saved,
        tunnel_linear=t["linear_loss"],
        tunnel_connector=t["connector_loss"],
        tunnel_cosines=t["cosines"],
        radial_losses=r["losses"],
        radial_distances=r["distances"],
    )
    arts["data"] = "toy_wedges.npz"
    return JobOutput(metrics, arts)
