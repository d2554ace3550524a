"""``analysis=interpolation``: θ(α) = θ_a + α(θ_b − θ_a) between two trained models (Li et al. Fig. 2–3).

Besides the curve, what Li et al. read from it and from Fig. 3: the weight norm of each end point
(conv/linear weights), the *apparent* sharpness of each end on this unnormalized curve — the loss rise
½(L(end−δ) + L(end+δ)) − L(end) in α units — and the filter-normalized sharpness of each end point
(random filter-normalized directions, :mod:`lsx.jobs.sharpness`), which does not depend on the weight scale.
Weight decay changes the weight norms, and with them which end looks sharper on the unnormalized curve.

BatchNorm (``bn: states``): running statistics move with α; beyond the end points (α < 0 or > 1) they
are extrapolated and a variance can fall to ≤ 0. ``bn_extrapolation`` (see lsx.landscape.engine.bn_policy):
``floor`` (default) clamps each channel's variance to ``var_floor`` × the smaller end point's variance —
inactive inside [0, 1], so the curve is continuous at the end points and the apparent sharpness compares
like with like; ``upbn`` re-estimates the statistics at those points from train data (the deployable
network there, but a different BN treatment than the interpolated one just inside the end points).

``params`` (a parameter subset) moves only the selected parameters: θ(α) = θ_a + α·(θ_b − θ_a) restricted to them, so
α = 1 is endpoint a carrying b's selected parameters (``train_loss_b`` is that hybrid's loss, not b's).
"""

from __future__ import annotations

import numpy as np

from lsx.landscape.engine.bn_policy import bn_state, check_extrapolated_bn, has_batchnorm, variance_floors
from lsx.landscape.engine.surface import compute_surface
from lsx.landscape.permutation.align import align_checkpoints
from lsx.landscape.surfaces.directions import direction_between
from lsx.plots.surfaces import plot_interpolation
from lsx.utils.io import atomic_savez

from .base import JobContext, JobOutput, hashed_analysis, register_job
from .landscape_common import (
    axis,
    build_evaluator,
    endpoint_checkpoints,
    evaluate_points,
    load_point,
    param_subset,
    record_centre_loss,
    restricted,
    same_architecture,
    value_at_origin,
)
from .sharpness import sharpness_at, weight_norm

CURVES = ("train_loss", "train_acc", "test_loss", "test_acc")


@register_job("interpolation")
def run(ctx: JobContext) -> JobOutput:
    a = ctx.analysis
    if len(a["endpoints"]) != 2:
        raise ValueError(f"analysis.endpoints needs exactly 2 entries, got {len(a['endpoints'])}")
    delta = float(a.get("sharpness_delta", 0.25))
    if not 0 < delta < 0.5:
        raise ValueError(f"analysis.sharpness_delta={delta}; valid: 0 < delta < 0.5 (α units)")
    extrapolated_bn = check_extrapolated_bn(str(a.get("bn_extrapolation", "floor")))
    alphas = axis(a["alpha"], "analysis.alpha")
    if alphas[0] <= 0 and alphas[-1] >= 1:  # the endpoints themselves and the apparent-sharpness probes
        alphas = np.union1d(alphas, [0.0, 1.0, -delta, delta, 1 - delta, 1 + delta])
    ca, cb = endpoint_checkpoints(ctx, list(a["endpoints"]))
    same_architecture([ca, cb])
    ca, cb = align_checkpoints([ca, cb], a.get("align"), lambda: ctx.landscape_subset().train[0])  # analysis.align
    pa, pb = load_point(ca, a["bn"]), load_point(cb, a["bn"])
    subset = param_subset(ctx, pa.flat)  # analysis.params: only these move (the others stay at endpoint a's)
    d = restricted(subset, direction_between(pa.theta, pb.theta))
    if float(d.norm()) == 0.0:
        what = "the two endpoints are" if subset is None else "the selected parameters (analysis.params) of the endpoints are"
        raise ValueError(f"{what} identical; interpolation needs two different models")
    labels = [e.get("label") or f"endpoint {i}" for i, e in enumerate(a["endpoints"])]
    prov = {"kind": "checkpoint_to_checkpoint", "from": str(ca.path), "to": str(cb.path), "labels": labels, "bn": a["bn"]}
    if subset is not None:
        prov["params"] = subset.record()
    bn_moves = a["bn"] == "states" and has_batchnorm(pa.model)
    outside = (alphas < 0) | (alphas > 1)
    if bn_moves and outside.any():
        curves = _with_extrapolated_bn(ctx, a, pa, pb, ca, cb, d, alphas, outside, prov, extrapolated_bn)
    else:
        res = evaluate_points(ctx, pa, d[None], alphas[:, None], "interpolation.h5", prov, a["bn"], a["chunk"], a["flush_every"])
        curves = {k: np.asarray(res[k]) for k in CURVES}
    plot_interpolation(
        alphas,
        curves,
        ctx.path("interpolation.png"),
        title=f"{ca.model_name}: {labels[0]} → {labels[1]} (n={len(alphas)} points)",
        labels=labels,
    )
    atomic_savez(ctx.path("interpolation.npz"), alpha=alphas, **curves)
    at = lambda x: int(np.abs(alphas - x).argmin())  # noqa: E731
    tl = curves["train_loss"]
    for ckpt, alpha in ((ca, 0.0), (cb, 1.0)):  # the end points are the optima: the curve evaluated them
        hybrid = subset is not None and alpha == 1.0  # α = 1 is a with b's selected parameters, not b: evaluate b
        record_centre_loss(ctx, ckpt, a["bn"], None if hybrid else value_at_origin(tl, alphas - alpha))
    inner = (alphas >= 0) & (alphas <= 1)
    metrics = {
        "train_loss_a": float(tl[at(0)]),
        "train_loss_b": float(tl[at(1)]),
        "test_acc_a": float(curves["test_acc"][at(0)]),
        "test_acc_b": float(curves["test_acc"][at(1)]),
        "max_train_loss_between": float(np.nanmax(tl[inner])) if inner.any() else float("nan"),
        "distance": float(d.norm()),
        "nonfinite_points": int((~np.isfinite(tl)).sum()),
        "bn_extrapolation": extrapolated_bn if bn_moves else None,
    }
    # Li Fig. 3: weight norms, and which end looks sharper on this (unnormalized) curve
    ka, kb = load_point(ca, "keep"), load_point(cb, "keep")
    metrics.update(weight_norm_a=weight_norm(ka), weight_norm_b=weight_norm(kb))
    metrics["weight_norm_ratio"] = metrics["weight_norm_a"] / metrics["weight_norm_b"]
    if alphas[0] <= -delta and alphas[-1] >= 1 + delta:
        app_a = 0.5 * (tl[at(-delta)] + tl[at(delta)]) - tl[at(0)]
        app_b = 0.5 * (tl[at(1 - delta)] + tl[at(1 + delta)]) - tl[at(1)]
        metrics.update(
            apparent_sharpness_a=float(app_a),
            apparent_sharpness_b=float(app_b),
            apparent_sharpness_ratio=float(app_a / app_b) if app_b > 0 else float("nan"),
            sharpness_delta=delta,
        )
    spec = a.get("sharpness") or {}
    if spec.get("enabled", False):
        sa, sb = (sharpness_at(ctx, p, dict(spec, curve=None), subset=param_subset(ctx, p.flat)) for p in (ka, kb))
        metrics.update(
            fn_sharpness_a=sa["sharpness"],
            fn_sharpness_b=sb["sharpness"],
            fn_sharpness_ratio=sa["sharpness"] / sb["sharpness"] if sb["sharpness"] > 0 else float("nan"),
        )
    return JobOutput(metrics, {"plot": "interpolation.png", "data": "interpolation.h5", "curves": "interpolation.npz"})


def _with_extrapolated_bn(ctx, a, pa, pb, ca, cb, d, alphas, outside, prov, policy) -> dict[str, np.ndarray]:
    """Inside [0, 1]: statistics interpolated (``states``); outside: re-estimated (upbn) or floored (floor)."""
    curves = {k: np.full(len(alphas), np.nan) for k in CURVES}
    inside = ~outside
    res = evaluate_points(
        ctx, pa, d[None], alphas[inside][:, None], "interpolation.h5", prov, a["bn"], a["chunk"], a["flush_every"]
    )
    for k in CURVES:
        curves[k][inside] = np.asarray(res[k])
    if policy == "upbn":
        qa, qb = load_point(ca, "upbn"), load_point(cb, "upbn")
        dq = restricted(param_subset(ctx, qa.flat), direction_between(qa.theta, qb.theta))
        ev = build_evaluator(ctx, qa.model, "upbn", a["chunk"])
        theta0, dirs = qa.theta, dq[None]
    else:
        ev = build_evaluator(ctx, pa.model, "states", a["chunk"])
        ev.var_floor = variance_floors(bn_state(pa.model), bn_state(pb.model), float(a.get("var_floor", 0.1)))
        theta0, dirs = pa.theta, d[None]
    res = compute_surface(
        ev,
        theta0,
        dirs,
        alphas[outside][:, None],
        ctx.path(f"interpolation_outside_{policy}.h5"),
        provenance=dict(prov, bn_extrapolation=policy),
        config=hashed_analysis(ctx.analysis),
        flush_every=int(a["flush_every"]),
        progress=ctx.progress,
    )
    for k in CURVES:
        curves[k][outside] = np.asarray(res[k])
    return curves
