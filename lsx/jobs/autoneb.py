"""``analysis=autoneb``: minimum energy paths between trained minima (Draxler et al. 2018).

AutoNEB (Algorithm 2) connects pairs of optima with minibatch NEB cycles; the exploration
(Algorithm 3, minimum spanning tree over saddle energies) chooses which pairs to connect and
resumes from the pair files already saved. Outputs: per computed pair, loss and error along the
straight segment vs the path (Fig. 1 right) and the plane of the two minima and the path's mean
pivot with the path drawn on it (Fig. 1 left); per experiment, Table 1 over the pairs of the
minimum spanning tree (the paths Algorithm 3 keeps: every other pair's best route runs through them),
evaluated on the whole train and test splits (``table_data: full``), so the test-error rise is counted
in examples of the full test split and the report can say what one example is worth. As Table 1's caption
says, a pair's saddle value of each metric is that metric's maximum along the final path (the train loss's
argmax is kept as ``test_loss_at_train_saddle``); ``chance_loss`` = ln C is note 1's loss of an untrained net.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from lsx.landscape.engine.bn_policy import has_batchnorm
from lsx.landscape.engine.evaluator import Evaluator
from lsx.landscape.engine.flat import FlatParams, functional_loss
from lsx.landscape.paths.autoneb import auto_neb, check_schedule, evaluate_path
from lsx.landscape.paths.explore import LandscapeExploration, load_pair, pair_path
from lsx.landscape.permutation.align import align_checkpoints
from lsx.plots.common import save_figure
from lsx.plots.surfaces import plot_surface_views
from lsx.utils.io import atomic_savez, atomic_write_json

from .base import JobContext, JobOutput, register_job
from .landscape_common import evaluate_points, load_point, record_centre_loss, same_architecture


def schedule_from_config(cycles: list[dict], step_scale: float) -> list[tuple[int, float]]:
    """[{repeat, steps, lr}, ...] → [(steps, lr), ...] with steps scaled (e.g. 0.01 at scale=cpu)."""
    out = []
    for c in cycles:
        out += [(max(1, int(round(int(c["steps"]) * step_scale))), float(c["lr"]))] * int(c.get("repeat", 1))
    return check_schedule(out)


@register_job("autoneb")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    seeds = [int(s) for s in ctx.cfg["optima"]["seeds"]]
    if len(seeds) < 2:
        raise ValueError(f"AutoNEB needs at least two minima; optima.seeds={seeds}")
    runs = ctx.optima(seeds)
    ckpts = [r.load() for r in runs]
    same_architecture(ckpts)
    ckpts = align_checkpoints(ckpts, a.get("align"), lambda: ctx.landscape_subset().train[0])  # analysis.align
    schedule = schedule_from_config(list(a["cycles"]), float(a["step_scale"]))
    model = ckpts[0].build_model()
    bn = has_batchnorm(model)
    flat = FlatParams(model)
    minima = [FlatParams(c.build_model()).get() for c in ckpts]

    # minibatch training loss for NEB (train-mode BN uses batch statistics, as in training)
    dm = ctx.datamodule()
    tx, ty = dm.split("train")
    g = torch.Generator().manual_seed(int(a["batch_seed"]))
    perm = torch.randperm(len(tx), generator=g)
    bs = int(a["batch_size"])
    batches = [(tx[perm[i : i + bs]], ty[perm[i : i + bs]]) for i in range(0, len(tx) - bs + 1, bs)] or [(tx, ty)]
    model.train(bn)
    losses = [functional_loss(model, flat, [b]) for b in batches]

    def loss_fn(theta: torch.Tensor, step: int) -> torch.Tensor:
        return losses[step % len(losses)](theta)

    subset = ctx.landscape_subset()
    ev = Evaluator(ckpts[0].build_model(), subset.train, subset.test, bn_policy="upbn" if bn else "keep")
    table_data = str(a.get("table_data", "full"))
    if table_data not in ("full", "landscape"):
        raise ValueError(f"analysis.table_data={table_data!r}; valid: full (whole train/test splits), landscape (the subset)")
    if table_data == "full":
        table_ev = Evaluator(ckpts[0].build_model(), dm.split("train"), dm.split("test"), bn_policy="upbn" if bn else "keep")
    else:
        table_ev = ev
    n_test = len(table_ev.sets["test"][1])

    def energy_fn(theta: torch.Tensor) -> float:
        return ev.evaluate_at(theta)["train_loss"]

    def connect(i: int, j: int):
        def report(c: int, pivots: torch.Tensor, entry: dict) -> None:
            # one line per cycle: paper-scale pairs take hours, and SLURM logs show no tqdm bars
            if ctx.progress:
                print(
                    f"AutoNEB {seeds[i]}-{seeds[j]} cycle {c + 1}/{len(schedule)}: {entry['steps']} steps at lr "
                    f"{entry['lr']:g}, {len(pivots)} pivots (+{entry['inserted']}), max train loss "
                    f"{entry['saddle_energy']:.4g}",
                    flush=True,
                )

        mep = auto_neb(
            loss_fn,
            minima[i],
            minima[j],
            schedule,
            num_pivots=int(a["num_pivots"]),
            energy_fn=energy_fn,
            insert_fraction=float(a["insert_fraction"]),
            num_between=int(a["num_between"]),
            max_pivots=a.get("max_pivots"),
            weight_decay=float(a["weight_decay"]),
            on_cycle=report,
        )
        if mep.nan_count:
            print(f"AutoNEB {i}-{j}: {mep.nan_count} NaN/inf losses during the cycles (path kept)")
        return mep.saddle_energy, mep

    min_energies = [energy_fn(m) for m in minima]
    for c, e in zip(ckpts, min_energies):
        record_centre_loss(ctx, c, "upbn" if bn else "keep", e)
    exploration = LandscapeExploration(
        minima, connect, ctx.path("pairs"), max_connections=a.get("max_connections"), minima_energies=min_energies
    )
    exploration.run()

    def full_metrics(theta: torch.Tensor) -> dict[str, float]:
        m = table_ev.evaluate_at(theta)
        return {**m, "train_error": 1 - m["train_acc"], "test_error": 1 - m["test_acc"]}

    rows, arts = [], {}
    mst_pairs = {(u, v) for u, v, _ in exploration.mst()}
    for i, j in sorted(exploration.edges):
        d = load_pair(pair_path(ctx.path("pairs"), (i, j)))
        pivots = torch.as_tensor(d["pivots"], dtype=minima[0].dtype)
        path = evaluate_path(pivots, full_metrics, int(a["dense_between"]))
        line = evaluate_path(torch.stack([minima[i], minima[j]]), full_metrics, len(path["position"]) - 2)
        name = f"pair_{seeds[i]}_{seeds[j]}"
        _plot_pair(line, path, ctx.path(f"{name}.png"), seeds[i], seeds[j])
        arts[name] = f"{name}.png"
        if a.get("plane_num"):
            arts.update(_plane(ctx, a, ckpts[i], minima[i], minima[j], pivots, name))
        k = int(np.nanargmax(path["train_loss"]))
        ends = [0, -1]
        # Table 1 caption: the saddle value of each metric is its maximum along the final path
        rows.append(
            {
                "pair": [seeds[i], seeds[j]],
                "in_mst": (i, j) in mst_pairs,
                "train_loss_minima": float(np.mean(path["train_loss"][ends])),
                "train_loss_saddle": float(path["train_loss"][k]),
                "test_loss_minima": float(np.mean(path["test_loss"][ends])),
                "test_loss_saddle": float(np.nanmax(path["test_loss"])),
                "test_loss_at_train_saddle": float(path["test_loss"][k]),
                "test_error_minima": float(np.mean(path["test_error"][ends])),
                "test_error_saddle": float(np.nanmax(path["test_error"])),
                "linear_max_train_loss": float(np.nanmax(line["train_loss"])),
                "linear_max_test_loss": float(np.nanmax(line["test_loss"])),
                "num_pivots": len(pivots),
                "saddle_minimum_factor": float(path["train_loss"][k]) / max(float(np.mean(path["train_loss"][ends])), 1e-12),
                "test_error_rise": float(np.nanmax(path["test_error"]) - np.mean(path["test_error"][ends])),
                "first_epoch_below_saddle": _first_epoch_below(runs[i], float(path["train_loss"][k])),
            }
        )
        atomic_savez(
            ctx.path(f"{name}.npz"), **{f"path_{k2}": v for k2, v in path.items()}, **{f"line_{k2}": v for k2, v in line.items()}
        )
    mst_rows = [r for r in rows if r["in_mst"]]
    # Table 1 note 1: "the average loss for an untrained network", −log(1/C) for the cross-entropy loss
    chance_loss = float(np.log(dm.shape.num_classes))
    table = dict(
        _table(mst_rows),
        table_pairs=len(mst_rows),
        table_data=table_data,
        test_examples=n_test,
        test_error_per_example=1.0 / n_test,
        chance_loss=chance_loss,
    )
    atomic_write_json(ctx.path("table1.json"), {"pairs": rows, "summary": table, "exploration": exploration.summary()})
    arts["table"] = "table1.json"
    per_pair = [
        {
            k: r[k]
            for k in (
                "pair",
                "train_loss_minima",
                "train_loss_saddle",
                "saddle_minimum_factor",
                "test_loss_minima",
                "test_loss_saddle",
                "test_error_minima",
                "test_error_saddle",
                "test_error_rise",
                "linear_max_train_loss",
            )
        }
        for r in mst_rows
    ]
    metrics = dict(
        table,
        known_pairs=len(exploration.edges),
        complete=exploration.complete,
        mst=[[seeds[u], seeds[v], e] for u, v, e in exploration.mst()],
        mst_pairs=per_pair,
    )
    return JobOutput(metrics, arts)


def _first_epoch_below(run_, saddle_loss: float):
    for row in run_.learning_curve():
        if row.get("train/loss", np.inf) < saddle_loss:
            return int(row["epoch"])
    return None


def _table(rows: list[dict]) -> dict:
    """Draxler Table 1 over the given (MST) pairs: means at minima and saddles, factor, error rise."""
    m = lambda k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    return {
        "train_loss_minima": m("train_loss_minima"),
        "train_loss_saddle": m("train_loss_saddle"),
        "saddle_minimum_factor": m("train_loss_saddle") / max(m("train_loss_minima"), 1e-12),
        "test_loss_minima": m("test_loss_minima"),
        "test_loss_saddle": m("test_loss_saddle"),
        "test_error_minima": m("test_error_minima"),
        "test_error_rise": m("test_error_saddle") - m("test_error_minima"),
        "linear_max_train_loss": m("linear_max_train_loss"),
        "linear_max_test_loss": m("linear_max_test_loss"),
    }


def _plot_pair(line: dict, path: dict, out: Path, si: int, sj: int) -> None:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for d, style, lab in ((line, "--", "straight line"), (path, "-", "AutoNEB path")):
        a1.plot(d["arc_length"], d["train_loss"], style, color="tab:blue", label=f"train, {lab}")
        a1.plot(d["arc_length"], d["test_loss"], style, color="tab:red", label=f"test, {lab}")
        a2.plot(d["arc_length"], 100 * d["train_error"], style, color="tab:blue", label=f"train, {lab}")
        a2.plot(d["arc_length"], 100 * d["test_error"], style, color="tab:red", label=f"test, {lab}")
    a1.set_yscale("log")
    a1.set_ylabel("loss")
    a2.set_ylabel("error (%)")
    for ax in (a1, a2):
        ax.set_xlabel(f"position (seed {si} → seed {sj})")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    save_figure(fig, out)


def _plane(ctx, a, ckpt, ti, tj, pivots, name) -> dict:
    """Loss on the plane of the two minima and the path's mean pivot, the path projected on it (Fig. 1 left)."""
    u = tj - ti
    w = pivots.mean(0) - ti
    e1 = u / u.norm()
    w = w - (w @ e1) * e1
    if float(w.norm()) < 1e-12:
        return {}
    e2 = w / w.norm()
    proj = torch.stack([(pivots - ti) @ e1, (pivots - ti) @ e2], 1).double().numpy()
    lo, hi = np.minimum(proj.min(0), 0), np.maximum(proj.max(0), [float(u.norm()), 0])
    pad = 0.25 * (hi - lo).max()
    n = int(a["plane_num"])
    x, y = np.linspace(lo[0] - pad, hi[0] + pad, n), np.linspace(lo[1] - pad, hi[1] + pad, n)
    X, Y = np.meshgrid(x, y)
    p = load_point(ckpt, "keep")
    p.theta = ti
    res = evaluate_points(
        ctx,
        p,
        torch.stack([e1, e2]),
        np.stack([X.ravel(), Y.ravel()], 1),
        f"{name}_plane.h5",
        {"kind": "autoneb_plane", "pair": name},
        "upbn" if has_batchnorm(p.model) else "keep",
        None,
        50,
    )
    loss = np.asarray(res["train_loss"]).reshape(n, n)
    plot_surface_views(
        x, y, loss, ctx.job_dir, f"{name}_plane", "train loss", log=True, points={"A": (0.0, 0.0), "B": (float(u.norm()), 0.0)}
    )
    # draw the path on the filled contour
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    cf = ax.contourf(X, Y, np.log10(np.clip(loss, 1e-8, None)), levels=30, cmap="viridis")
    fig.colorbar(cf, ax=ax, label="log10 train loss")
    ax.plot(proj[:, 0], proj[:, 1], "w.-", lw=1.5, label="AutoNEB path")
    ax.plot([0, float(u.norm())], [0, 0], "r--", lw=1, label="straight line")
    ax.set_xlabel("α (along A → B)")
    ax.set_ylabel("β (towards the path)")
    ax.legend(fontsize=7)
    save_figure(fig, ctx.path(f"{name}_plane_path.png"))
    return {f"{name}_plane": f"{name}_plane_path.png", f"{name}_plane_data": f"{name}_plane.h5"}
