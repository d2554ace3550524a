"""``analysis=curve_taxonomy``: 1D curves along Xu et al.'s direction kinds, each classified
(v-basin, v-side, w-basin, w-peak, vvv-basin) from its stationary points and their positions.

Direction kinds and how they are scaled:
- ``gaussian`` (``gaussian_curves`` seeds from ``direction_seed``): normalized with ``norm`` (filter-wise
  by default, as in Li et al.), λ ∈ [−s, s];
- ``neg_gradient``: −∇L(θ) as it is by default (``gradient_norm: none``: θ − λ∇L is a gradient-descent
  step of size λ, so the curve's minimum sits near λ* = ‖g‖²/(gᵀHg), the quadratic model's step).
  ``gradient_scale: auto`` draws it on [−k·λ*, k·λ*] (k = ``gradient_window``, 1), so the window follows
  the model's own scale (the minimum lies at λ ≈ 0.01–0.1 for a BN ResNet and 0.4–2.3 for the CPU MLP: no
  fixed window resolves both). Measured on seed 0: the MLP's minimum sits at λ* (the quadratic model is
  exact there), the ResNet's (UpBN, epoch 2) at 0.27·λ*, four grid steps beyond the "at the point" tolerance
  (0.1·k·λ*) at k = 1 and one step at k = 2; a minimum beyond the window leaves the curve monotone, which
  reads v-side as well. A number fixes the window (``auto`` falls back to ``scale`` when gᵀHg ≤ 0).
  ``gradient_norm: filter`` scales it to ‖θ‖ per filter instead;
- ``pe`` / ``ne`` (the ``eigen_curves`` Hessian eigenvectors with the largest / smallest eigenvalues):
  used as eigsh returns them, unit norm in parameter space times ``eigen_scale`` (``eigen_norm: unit``;
  filter normalization reweights each filter and the result is no longer an eigenvector), λ ∈ [−s, s].
  The Hessian is taken on the same examples as the curves (the whole landscape train subset unless
  ``hessian_examples`` limits both), so the curve's second difference at λ = 0 estimates the eigenvalue
  (``curvature_pe``/``curvature_ne`` beside ``eigenvalues_pe``/``eigenvalues_ne``);
- ``later_checkpoint`` (the run's last checkpoint) and ``independent`` (the partner run's checkpoint at
  the same epoch, λ ∈ [−1, 2]): the difference vector as it is (λ = 1 reaches the other point). The partner
  is seed target + 1000 by default, so no partner is another job's studied model (units stay independent).

``side_epoch`` studies the two descent kinds (``neg_gradient``, ``later_checkpoint``) at another checkpoint:
the paper's v-side figure (Fig. 4) takes MLP at E = 0 and RN32 at E = 10, its other figures E = 100–200.
BN: ``bn: upbn`` re-estimates the running statistics at every point (the paper's default, Sec. 2.1 and
App. A.2; ``keep`` is its "No UpBN" ablation).
Every curve also records ``alt_types_<kind>``: the types one grid step or the extremum filter would give
(:func:`lsx.landscape.surfaces.curves.curve_type_alternatives`), which the claims use to call a type that
rests on either inconclusive.
"""

from __future__ import annotations

import numpy as np
import torch

from lsx.distributed import computed_on_rank0
from lsx.landscape.curvature.hessian import hvp_function
from lsx.landscape.surfaces.curves import classify_curve, curve_type_alternatives, minimum_position
from lsx.landscape.surfaces.directions import hessian_eigen_directions, normalize_direction, random_direction, unit_direction
from lsx.landscape.surfaces.stationary import count_stationary_points
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, register_job
from .hessian import network_loss
from .landscape_common import evaluate_points, load_point, record_centre_loss, value_at_origin

KINDS = ("gaussian", "neg_gradient", "later_checkpoint", "independent", "pe", "ne")
EIGEN_NORMS = ("unit", "filter", "layer", "model")
SIDE_KINDS = ("neg_gradient", "later_checkpoint")  # studied at side_epoch when it is set
PARTNER_OFFSET = 1000


def independent_seed(a, target_seed: int) -> int:
    """``independent_seed`` (null: the target seed + 1000, a seed no other unit trains); never the target itself."""
    s = a.get("independent_seed")
    s = int(target_seed) + PARTNER_OFFSET if s is None else int(s)
    if s == int(target_seed):
        raise ValueError(f"independent_seed={s} is the studied run's own seed; pick another (null: target + {PARTNER_OFFSET})")
    return s


def _network(ctx: JobContext, a, p):
    n = a.get("hessian_examples")
    f, flat = network_loss(ctx, p.checkpoint.build_model(), len(ctx.landscape_subset().train_x) if n is None else int(n))
    return f, flat


def _embed(d: torch.Tensor, p) -> torch.Tensor:
    full = torch.zeros_like(p.theta)
    full[: d.numel()] = d  # BN buffers (states policy) do not move
    return full


def kind_directions(kind: str, ctx: JobContext, a, p, later, count: int = 1) -> list[tuple[torch.Tensor, dict]]:
    """``count`` directions of one kind (only Gaussian and eigenvector kinds have more than one)."""
    norm = a["norm"]
    if kind == "gaussian":
        seeds = [int(a["direction_seed"]) + i for i in range(count)]
        return [(random_direction(p.flat, p.theta, s, norm, "biasbn"), {"seed": s, "normalization": norm}) for s in seeds]
    if kind == "later_checkpoint":
        return [(later.theta - p.theta, {"to_epoch": later.checkpoint.epoch})]
    if kind == "independent":
        s = independent_seed(a, int(a["target_seed"]))
        other = load_point(ctx.train(seed=s).load(p.checkpoint.epoch), a["bn"])
        return [(other.theta - p.theta, {"to_seed": s})]
    f, flat = _network(ctx, a, p)
    th = flat.get()
    if kind == "neg_gradient":
        t = th.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(t), t)
        gnorm = a["gradient_norm"]
        d = _embed(-g, p)  # none: θ − λ∇L, a gradient-descent step of size λ
        d = d if gnorm == "none" else normalize_direction(d, p.theta, p.flat, gnorm)
        meta = {"normalization": gnorm, "gradient_norm": float(g.norm())}
        gs = a.get("gradient_scale")
        if gs is not None:
            dd = d[: g.numel()]
            curv = float(dd @ hvp_function(f, th)(dd.to(th.dtype)))
            step = float(-(g @ dd)) / curv if curv > 0 else float("nan")  # the quadratic model's minimum along d
            meta["quadratic_step"] = step
            meta["scale"] = (
                float(a["gradient_window"]) * step
                if gs == "auto" and step > 0
                else float(a["scale"])
                if gs == "auto"
                else float(gs)
            )
        return [(d, meta)]
    # every rank needs the same eigenvectors: rank 0 computes them, the others wait (they would repeat the work)
    vecs, vals, ok = computed_on_rank0(
        lambda: hessian_eigen_directions(f, th, count, "LA" if kind == "pe" else "SA", tol=1e-4, seed=0)
    )
    eig_norm, scale = a["eigen_norm"], float(a["eigen_scale"])
    if eig_norm not in EIGEN_NORMS:
        raise ValueError(f"unknown eigen_norm {eig_norm!r}; valid: {', '.join(EIGEN_NORMS)}")
    out = []
    for i, (v, lam) in enumerate(zip(vecs, vals)):
        d = _embed(v, p)
        d = unit_direction(d, scale) if eig_norm == "unit" else normalize_direction(d, p.theta, p.flat, eig_norm)
        out.append(
            (d, {"index": i, "eigenvalue": float(lam), "normalization": eig_norm, "converged": bool(ok), "norm": float(d.norm())})
        )
    return out


def _direction(kind, ctx, a, p, run_, later):
    """The first direction of a kind (the 2D surface job uses one per axis)."""
    return kind_directions(kind, ctx, a, p, later)[0]


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
    if "independent" in kinds:  # both runs first: trained in parallel over the ranks of a launch
        ctx.optima([int(a["target_seed"]), independent_seed(a, int(a["target_seed"]))])
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
            raise ValueError(
                f"'later_checkpoint' needs a checkpoint after epoch {epoch}; saved: {epochs} "
                "(set analysis.epoch to an earlier saved epoch)"
            )
        later = load_point(run_.load(after[-1]), a["bn"])
    return run_, epoch, p, later


def _plot(path, curves, bn: str) -> None:
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    kinds = list(dict.fromkeys(c["kind"] for c in curves))
    fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 3), squeeze=False, layout="constrained")
    for ax, k in zip(axes[0], kinds):
        mine = [c for c in curves if c["kind"] == k]
        for c in mine:
            ax.plot(c["lams"], c["loss"], label=c["type"])
        ax.set_title(f"{k} (n={len(mine)}): " + ", ".join(sorted({c["type"] for c in mine})), fontsize=8)
        ax.set_xlabel("λ")
        ax.set_ylabel(f"train loss ({bn} BN)")
        ax.legend(fontsize=6)
    save_figure(fig, path)


def side_point(ctx: JobContext, run_, epoch: int, p, later, kinds: list[str]):
    """(epoch, point, later) for the descent kinds: ``analysis.side_epoch`` when set, else the studied point."""
    se = ctx.analysis.get("side_epoch")
    if se is None or int(se) == epoch or not any(k in SIDE_KINDS for k in kinds):
        return epoch, p, later
    se = int(se)
    ps = load_point(run_.load(se), ctx.analysis["bn"])
    after = [e for e in sorted(run_.checkpoints) if e > se]
    if "later_checkpoint" in kinds and not after:
        raise ValueError(f"'later_checkpoint' needs a checkpoint after side_epoch {se}; saved: {sorted(run_.checkpoints)}")
    return se, ps, load_point(run_.load(after[-1]), ctx.analysis["bn"]) if after else None


def _curves_at(ctx: JobContext, a, p, later, kinds: list[str], counts: dict[str, int], store: str, epoch: int):
    """Evaluate and classify the curves of ``kinds`` around point ``p`` (one resumable store)."""
    s, n = float(a["scale"]), int(a["num"])
    curves, dirs = [], []
    for k in kinds:
        for d, meta in kind_directions(k, ctx, a, p, later, counts.get(k, 1)):
            if d.numel() != p.flat.numel:
                raise ValueError(f"direction {k!r} has {d.numel()} entries, the model has {p.flat.numel}")
            w = float(meta.get("scale", s))
            lams = np.linspace(-1.0, 2.0, n) if k == "independent" else np.linspace(-w, w, n)
            curves.append({"kind": k, "lams": lams, "epoch": epoch, **meta})
            dirs.append(d)
    if not curves:
        return []
    coords = np.zeros((len(curves) * n, len(curves)))
    for i, c in enumerate(curves):
        coords[i * n : (i + 1) * n, i] = c["lams"]
    prov = {"directions": [{k: v for k, v in c.items() if k != "lams"} for c in curves], "epoch": epoch, "bn": a["bn"]}
    res = evaluate_points(ctx, p, torch.stack(dirs), coords, store, prov, a["bn"], a.get("chunk"), a["flush_every"])
    loss = np.asarray(res["train_loss"]).reshape(len(curves), n)
    rtol, tol = float(a["prominence_rtol"]), float(a["center_tol"])
    for c, y, d in zip(curves, loss, dirs):
        c["loss"] = y
        c["type"] = classify_curve(c["lams"], y, rtol, tol)
        c["alt_types"] = curve_type_alternatives(c["lams"], y, rtol, tol)
        c["stationary"] = count_stationary_points(y)
        c["min_position"] = minimum_position(c["lams"], y)
        if c["kind"] in ("pe", "ne"):  # the quadratic model's check: second difference at λ = 0 vs the eigenvalue
            i0, h = int(np.argmin(np.abs(c["lams"]))), float(c["lams"][1] - c["lams"][0]) * float(d.norm())
            c["curvature"] = float((y[i0 + 1] - 2 * y[i0] + y[i0 - 1]) / h**2) if 0 < i0 < n - 1 else float("nan")
    return curves


@register_job("curve_taxonomy")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    kinds = check_kinds(list(a["directions"]))
    counts = {"gaussian": int(a["gaussian_curves"]), "pe": int(a["eigen_curves"]), "ne": int(a["eigen_curves"])}
    if min(counts.values()) < 1:
        raise ValueError(f"gaussian_curves and eigen_curves must be >= 1, got {counts['gaussian']} and {counts['pe']}")
    gs = a.get("gradient_scale")
    if gs is not None and gs != "auto" and not (isinstance(gs, (int, float)) and gs > 0):
        raise ValueError(
            f"analysis.gradient_scale={gs!r}; valid: null (use scale), auto (window from the quadratic step), "
            "or a positive number"
        )
    n_hess = a.get("hessian_examples")
    n_land = len(ctx.landscape_subset().train_x)
    if n_hess is not None and int(n_hess) != n_land:
        raise ValueError(
            f"analysis.hessian_examples={n_hess} differs from the {n_land} landscape train examples the "
            "curves use; set it to null (or data.landscape_train to the same number)"
        )
    run_, epoch, p, later = study_point(ctx, kinds)
    s_epoch, ps, later_s = side_point(ctx, run_, epoch, p, later, kinds)
    side = [k for k in kinds if k in SIDE_KINDS] if s_epoch != epoch else []
    curves = _curves_at(ctx, a, p, later, [k for k in kinds if k not in side], counts, "curves.h5", epoch)
    curves += _curves_at(ctx, a, ps, later_s, side, counts, "curves_side.h5", s_epoch)
    curves.sort(key=lambda c: kinds.index(c["kind"]))
    n = int(a["num"])
    main = [c for c in curves if c["kind"] not in side]  # at the studied checkpoint (side curves are at another epoch)
    at_centre = [v for v in (value_at_origin(c["loss"], c["lams"]) for c in main) if v is not None]
    record_centre_loss(ctx, p.checkpoint, a["bn"], at_centre[0] if at_centre else None)
    if "independent" in kinds:  # the partner optimum is a compared model too: its own loss, as the centre's is
        partner_epoch = s_epoch if "independent" in side else epoch
        record_centre_loss(ctx, ctx.train(seed=independent_seed(a, int(a["target_seed"]))).load(partner_epoch), a["bn"])
    _plot(ctx.path("curve_taxonomy.png"), curves, a["bn"])
    atomic_savez(
        ctx.path("curve_taxonomy.npz"),
        loss=np.stack([c["loss"] for c in curves]),
        kinds=np.array([c["kind"] for c in curves]),
        types=np.array([c["type"] for c in curves]),
        lams=np.stack([c["lams"] for c in curves]),
    )
    metrics: dict = {"epoch": epoch, "side_epoch": s_epoch, "curve_points": n, "examples": n_land}
    for k in kinds:
        mine = [c for c in curves if c["kind"] == k]
        metrics[f"types_{k}"] = [c["type"] for c in mine]
        metrics[f"alt_types_{k}"] = [c["alt_types"] for c in mine]
        metrics[f"type_{k}"] = mine[0]["type"]
        metrics[f"stationary_{k}"] = mine[0]["stationary"]
        metrics[f"stationary_counts_{k}"] = [c["stationary"] for c in mine]
        metrics[f"min_positions_{k}"] = [c["min_position"] for c in mine]
        metrics[f"windows_{k}"] = [float(c["lams"][-1]) for c in mine]
        if k == "neg_gradient":
            metrics["quadratic_step_neg_gradient"] = [c.get("quadratic_step", float("nan")) for c in mine]
        if k in ("pe", "ne"):
            metrics[f"eigenvalues_{k}"] = [c["eigenvalue"] for c in mine]
            metrics[f"curvature_{k}"] = [c["curvature"] for c in mine]
    stores = {"data": "curves.h5"} | ({"data_side": "curves_side.h5"} if side else {})
    return JobOutput(metrics, {"plot": "curve_taxonomy.png", **stores, "curves": "curve_taxonomy.npz"})
