"""Low-loss connectors between optima (Fort & Jastrzebski 2019, Sec. 4.2-4.3, Fig. 3-4).

1-connector: the straight line between two optima usually crosses a high-loss region. Cut it
into segments; at every interior node put the hyperplane normal to the line and minimise the
training loss *inside* that hyperplane, starting on the line. The optimised nodes, joined in
order, form a low-loss tunnel. Because each node may only move orthogonally to the line, the
nodes cannot slide back into the endpoints, and the way they deviate from the line (cosines
between deviations, Fig. 3 middle) shows which optimum's "wedge" each part of the tunnel uses.

m-connector: for m+1 optima, points of their convex hull are optimised inside the
(D−m)-dimensional affine subspace through them orthogonal to the span of the optima; if the
loss vanishes there, the whole m-simplex is (nearly) on a low-loss manifold of dimension ≥ m.

Short directions (Fig. 4): the number of Hessian eigenvalues above a threshold, by Lanczos
(:mod:`lsx.landscape.curvature.hessian`), along a 1-connector and in the middle of m-connectors.

**Losses.** Every function takes ``loss_fn`` as either
``loss_fn(theta) -> scalar`` (deterministic, e.g. full batch or a toy) or
``loss_fn(theta, step) -> scalar`` (e.g. a minibatch loss; the caller maps ``step`` to a batch).
A callable is called with ``step`` when its second positional parameter has no default or is
named ``step`` (see :func:`as_step_loss`); during an optimisation ``step`` runs 0..steps−1 for
every node, and evaluations (losses reported along the paths, Hessians) use ``step=0`` unless an
``eval_loss_fn(theta)`` is given. θ is a flat 1-D tensor; the optimisation runs in θ's dtype.

Bad input that makes the construction meaningless (identical endpoints, optima of different
sizes, too few or affinely dependent optima) raises ``ValueError``. An optimisation that
diverges (non-finite loss, or loss above ``divergence_factor`` × its starting loss) is *not*
raised: the node keeps its last good iterate, ``diverged`` is set for it and a
:class:`ConnectorWarning` names it.
"""

from __future__ import annotations

import inspect
import math
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from ..engine.memo import Memo, compute_now

LossFn = Union[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor, int], torch.Tensor]]
OptimizerSpec = Union[str, Callable[[list[torch.Tensor], float], torch.optim.Optimizer]]

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
SCHEDULES = ("constant", "cosine")


class ConnectorWarning(RuntimeWarning):
    """A constrained optimisation diverged; the result flags the node instead of raising."""


# ---------------------------------------------------------------------------------------------
# losses, validation, projections


def _takes_step(fn: Callable) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins / C callables: assume the plain form
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2:
        return False  # f(theta) (also f(*args): ambiguous, treated as the plain form)
    second = positional[1]
    return second.default is inspect.Parameter.empty or second.name == "step"


def as_step_loss(loss_fn: LossFn) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """``loss_fn`` as ``f(theta, step)`` whichever of the two documented forms it has."""
    if not callable(loss_fn):
        raise ValueError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    if _takes_step(loss_fn):
        return loss_fn  # type: ignore[return-value]
    return lambda theta, step: loss_fn(theta)  # type: ignore[call-arg]


def as_plain_loss(loss_fn: LossFn, step: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    """``loss_fn`` as ``f(theta)`` (a step-taking loss is frozen at ``step``, e.g. for Hessians)."""
    f = as_step_loss(loss_fn)
    return lambda theta: f(theta, step)


def _check_points(points: Sequence[torch.Tensor], what: str) -> list[torch.Tensor]:
    pts = [torch.as_tensor(p) for p in points]
    for i, p in enumerate(pts):
        if p.dim() != 1:
            raise ValueError(f"{what} {i} has shape {tuple(p.shape)}; expected a flat 1-D parameter vector")
        if not torch.is_floating_point(p):
            raise ValueError(f"{what} {i} has dtype {p.dtype}; expected a floating-point vector")
    sizes = sorted({p.numel() for p in pts})
    if len(sizes) > 1:
        raise ValueError(
            f"{what}s have different sizes {sizes}: they are not the same architecture; "
            "connectors need parameter vectors of one model layout"
        )
    return pts


def orthonormal_span(directions: torch.Tensor, rtol: float = 1e-8) -> torch.Tensor:
    """An orthonormal basis (D×m, by reduced QR) of the columns of ``directions`` (D×m).

    Raises when the columns are (numerically) dependent — e.g. identical optima.
    """
    q, r = torch.linalg.qr(directions.to(torch.float64), mode="reduced")
    diag = r.diagonal().abs()
    scale = float(directions.to(torch.float64).norm(dim=0).max()) if directions.numel() else 0.0
    if scale == 0.0 or bool((diag <= rtol * scale).any()):
        raise ValueError(
            "the optima are affinely dependent (identical or collinear points): their differences span "
            f"{int((diag > rtol * max(scale, 1e-300)).sum())} of {directions.shape[1]} dimensions; "
            "pass distinct, affinely independent optima"
        )
    return q.to(directions.dtype)


def project_out(v: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """v minus its component in span(basis) (basis: D×k orthonormal)."""
    return v - basis @ (basis.T @ v)


def make_optimizer(spec: OptimizerSpec, params: list[torch.Tensor], lr: float, **kwargs: Any) -> torch.optim.Optimizer:
    """A torch optimizer from a name in :data:`OPTIMIZERS` or a factory ``f(params, lr)``."""
    if callable(spec):
        return spec(params, lr)
    if spec not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {spec!r}; valid: {', '.join(OPTIMIZERS)} or a factory f(params, lr)")
    return OPTIMIZERS[spec](params, lr=lr, **kwargs)


# ---------------------------------------------------------------------------------------------
# the constrained optimisation of one point


@dataclass
class ConstrainedRun:
    theta: torch.Tensor  # final (or last good) iterate, on the affine subspace
    start_loss: float
    final_loss: float  # loss of ``theta`` at step 0 (comparable with start_loss); last good loss if diverged
    diverged: bool
    steps_done: int
    message: str
    constraint_residual: float  # max |basisᵀ(θ − start)|: distance off the subspace (float precision)


def optimize_in_affine_subspace(
    loss_fn: LossFn,
    start: torch.Tensor,
    fixed_basis: torch.Tensor,
    steps: int = 500,
    lr: float = 1e-2,
    optimizer: OptimizerSpec = "adam",
    optimizer_kwargs: dict[str, Any] | None = None,
    schedule: str = "constant",
    divergence_factor: float = 100.0,
) -> ConstrainedRun:
    """Minimise ``loss_fn`` over ``start + span(fixed_basis)^⊥``.

    The gradient is projected onto the allowed subspace before each step, and — because
    adaptive optimizers rescale coordinates and leave it — the iterate is projected back after
    each step, so the point stays on its subspace to float precision.
    """
    if steps < 0 or not lr > 0:
        raise ValueError(f"steps must be >= 0 and lr > 0 (got steps={steps}, lr={lr})")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if not divergence_factor > 1:
        raise ValueError(f"divergence_factor must be > 1, got {divergence_factor}")
    f = as_step_loss(loss_fn)
    start = start.detach()
    basis = fixed_basis.detach().to(dtype=start.dtype, device=start.device)
    theta = start.clone().requires_grad_(True)
    opt = make_optimizer(optimizer, [theta], lr, **(optimizer_kwargs or {}))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1)) if schedule == "cosine" else None

    start_loss = float("nan")
    last_loss = float("nan")
    last_good = start.clone()
    diverged, message, done = False, "ok", 0
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = f(theta, step)
        value = float(loss.detach())
        if step == 0:
            start_loss = value
        limit = divergence_factor * max(abs(start_loss), 1e-12) if math.isfinite(start_loss) else float("nan")
        if not math.isfinite(value) or not value <= limit:
            diverged = True
            message = f"diverged at step {step}: loss {value:.4g} " + (
                "is not finite" if not math.isfinite(value) else f"> {divergence_factor:g} x start loss {start_loss:.4g}"
            )
            break
        last_loss = value
        last_good = theta.detach().clone()
        loss.backward()
        grad = theta.grad
        if grad is None:
            raise RuntimeError("the loss does not depend on the point being optimized (no gradient)")
        with torch.no_grad():
            grad.copy_(project_out(grad, basis))
        opt.step()
        if sched is not None:
            sched.step()
        with torch.no_grad():
            theta.sub_(basis @ (basis.T @ (theta - start)))
        done = step + 1
    final = last_good if diverged else theta.detach().clone()
    if not diverged:
        with torch.no_grad():
            last_loss = float(f(final, 0))
        if not math.isfinite(last_loss):
            diverged, message = True, f"diverged: loss after the last step is {last_loss}"
            final = last_good
    residual = float((basis.T @ (final - start)).abs().max()) if basis.numel() else 0.0
    return ConstrainedRun(final, start_loss, last_loss, diverged, done, message, residual)


# ---------------------------------------------------------------------------------------------
# path evaluation helpers


def polyline(points: torch.Tensor, per_segment: int = 0) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """Points on the piecewise-linear path through ``points`` (K+1, D), ``per_segment`` extra per segment.

    Returns (t in [0, 1] by node index, the points, the indices of the nodes among them).
    """
    k = points.shape[0] - 1
    s = per_segment + 1
    t = np.linspace(0.0, 1.0, k * s + 1)
    out = []
    for i in range(k):
        for j in range(s):
            a = j / s
            out.append((1 - a) * points[i] + a * points[i + 1])
    out.append(points[-1])
    return t, torch.stack(out), np.arange(0, k * s + 1, s)


def deviation_cosines(points: torch.Tensor, line_points: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Cosine matrix between the deviations ``points − line_points`` (Fig. 3 middle), and their norms.

    Zero deviations have no direction: their rows/columns (diagonal included) are NaN.
    """
    dev = (points - line_points).detach().to(torch.float64)
    norms = dev.norm(dim=1)
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    unit = dev / safe[:, None]
    cos = (unit @ unit.T).clamp(-1.0, 1.0)
    bad = norms == 0
    cos[bad, :] = float("nan")
    cos[:, bad] = float("nan")
    cos = 0.5 * (cos + cos.T)
    good = ~bad
    cos[good, good] = 1.0
    return cos.cpu().numpy(), norms.cpu().numpy()


def two_block_contrast(cos: np.ndarray) -> float:
    """Mean cosine within the two halves minus mean cosine across them (> 0: two-block structure)."""
    k = cos.shape[0]
    if k < 2:
        return float("nan")
    h = k // 2
    off = ~np.eye(k, dtype=bool)
    within = np.zeros((k, k), dtype=bool)
    within[:h, :h] = True
    within[h:, h:] = True
    w = cos[within & off]
    c = cos[~within]
    return float(np.nanmean(w) - np.nanmean(c)) if w.size and c.size else float("nan")


def half_masks(k: int) -> tuple[np.ndarray, np.ndarray]:
    """(first half, second half) of ``k`` equally spaced interior nodes; a node exactly in the middle
    (odd ``k``) sits where the wedges meet and belongs to neither half."""
    idx = np.arange(k)
    return idx < k // 2, idx >= (k + 1) // 2


def two_block_at_equal_lag(cos: np.ndarray) -> dict[str, Any]:
    """Within-half vs across-half cosines of the deviations compared at equal distance along the path.

    Why at equal lag: any cosine matrix that decays with the distance between nodes has a higher mean
    within the halves than across them (across pairs are farther apart on average), so the plain
    contrast (:func:`two_block_contrast`) cannot tell a band from two blocks. For every lag ℓ (node
    index distance; the nodes are equally spaced) that has pairs of both kinds, ``within[ℓ]`` is the
    mean cosine of pairs (i, i+ℓ) inside one half and ``across[ℓ]`` of pairs straddling the middle.
    ``relative_contrast`` = (W − A) / W with W, A the means of those per-lag means: 0 for a banded
    matrix (cosine a function of the lag only), 1 for two aligned halves that are mutually orthogonal
    (Fort Fig. 3 middle). W ≤ 0 (no alignment inside the halves: no blocks) gives 0. NaN when no lag
    has both kinds of pairs (fewer than 3 interior nodes off the middle).
    """
    cos = np.asarray(cos, dtype=float)
    if cos.ndim != 2 or cos.shape[0] != cos.shape[1]:
        raise ValueError(f"cosines must be a square matrix, got shape {cos.shape}")
    k = cos.shape[0]
    first, second = half_masks(k)
    half = np.where(first, 0, np.where(second, 1, -1))
    lags, within, across = [], [], []
    for lag in range(1, k):
        i = np.arange(k - lag)
        j = i + lag
        vals = cos[i, j]
        ok = (half[i] >= 0) & (half[j] >= 0) & np.isfinite(vals)
        same = ok & (half[i] == half[j])
        cross = ok & (half[i] != half[j])
        if same.any() and cross.any():
            lags.append(lag)
            within.append(float(vals[same].mean()))
            across.append(float(vals[cross].mean()))
    if not lags:
        rel = float("nan")
    else:
        w, a = float(np.mean(within)), float(np.mean(across))
        rel = (w - a) / w if w > 0 else 0.0
    return {"lags": lags, "within": within, "across": across, "relative_contrast": rel}


def label_change_by_half(t: np.ndarray, agree_with_0: np.ndarray, agree_with_1: np.ndarray) -> dict[str, float]:
    """Where along a path the predicted labels change (Fort Fig. 3 right), read two ways.

    d₀(t), d₁(t) = 1 − agreement with the first / second optimum's labels (the value at t = ½
    interpolated when no point sits there); TV = total variation over a half.

    * The caption as written, "label predictions along the tunnel change linearly up to the middle,
      and stay constant from them on" (each wedge one function: the far half carries the end's labels):
      the labels stop changing in one half, so both curves are flat there. ``first_half`` /
      ``second_half`` = TV(d₀) + TV(d₁) in each half; ``one_half_share`` = the larger half's share of
      the whole change: 1 for the caption, ½ for labels changing at an even rate. Which half is the
      changing one depends only on which optimum is called the first.
    * Each curve alone (a figure of the agreement with the start alone shows the caption's shape when
      d₀ changes on [0, ½] and is flat on [½, 1]): ``constancy`` = 1 − (TV(d₀ on [½, 1]) + TV(d₁ on
      [0, ½])) / (2 D), D the optima's disagreement: 1 when each curve changes only in the half next to
      its own optimum, ½ for an even rate.

    NaN shares when the optima predict the same labels (nothing changes)."""
    t = np.asarray(t, dtype=float)
    d0, d1 = (1.0 - np.asarray(a, dtype=float) for a in (agree_with_0, agree_with_1))
    if t.ndim != 1 or t.size < 2 or d0.shape != t.shape or d1.shape != t.shape:
        raise ValueError(f"t and the agreement curves must be 1-D of one length >= 2, got {t.shape}, {d0.shape}, {d1.shape}")
    grid = np.union1d(t, [0.5])
    first, second = grid <= 0.5, grid >= 0.5

    def tv(curve: np.ndarray, part: np.ndarray) -> float:
        return float(np.abs(np.diff(np.interp(grid, t, curve)[part])).sum())

    halves = (tv(d0, first) + tv(d1, first), tv(d0, second) + tv(d1, second))
    total = sum(halves)
    disagreement = 0.5 * (float(d0[-1]) + float(d1[0]))
    far = tv(d0, second) + tv(d1, first)
    return {
        "first_half": halves[0],
        "second_half": halves[1],
        "one_half_share": max(halves) / total if total > 0 else float("nan"),
        "constancy": 1.0 - far / (2.0 * disagreement) if disagreement > 0 else float("nan"),
    }


def _evaluate_path(
    pts: torch.Tensor,
    eval_loss: Callable[[torch.Tensor], Any],
    metrics_fn: Callable[[torch.Tensor], dict] | None,
    predict_fn: Callable[[torch.Tensor], Any] | None,
    end_labels: tuple[np.ndarray, np.ndarray] | None,
) -> dict[str, np.ndarray]:
    out: dict[str, list] = {"loss": []}
    metric_rows: list[dict] = []
    agree: list[tuple[float, float]] = []
    with torch.no_grad():
        for p in pts:
            out["loss"].append(float(eval_loss(p)))
            if metrics_fn is not None:
                metric_rows.append(dict(metrics_fn(p)))
            if predict_fn is not None and end_labels is not None:
                lab = _labels(predict_fn(p))
                agree.append((float(np.mean(lab == end_labels[0])), float(np.mean(lab == end_labels[1]))))
    res = {"loss": np.asarray(out["loss"], dtype=float)}
    if metric_rows:
        for key in metric_rows[0]:
            res[f"metric/{key}"] = np.asarray([float(r.get(key, float("nan"))) for r in metric_rows])
    if agree:
        a = np.asarray(agree)
        res["agree_with_0"], res["agree_with_1"] = a[:, 0], a[:, 1]
    return res


def _labels(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _warn_diverged(runs: Sequence[ConstrainedRun], names: Sequence[str]) -> list[str]:
    msgs = [f"{name}: {r.message}" for r, name in zip(runs, names) if r.diverged]
    for m in msgs:
        warnings.warn(m, ConnectorWarning, stacklevel=3)
    return msgs


# ---------------------------------------------------------------------------------------------
# 1-connector


@dataclass
class ConnectorResult:
    t: np.ndarray  # (P,) positions along the path, 0..1 (nodes and in-between points)
    node_index: np.ndarray  # (K+1,) indices of the nodes in ``t``
    points: torch.Tensor  # (K+1, D) connector nodes: θ_a, optimised interior nodes, θ_b
    line_points: torch.Tensor  # (K+1, D) the same nodes on the straight line
    linear: dict[str, np.ndarray]  # per point of the straight path: "loss", "metric/<k>", "agree_with_0/1"
    connector: dict[str, np.ndarray]  # the same along the connector (polyline through ``points``)
    start_loss: np.ndarray  # (K+1,) training loss at the nodes before optimisation (step 0)
    final_loss: np.ndarray  # (K+1,) after (endpoints: their own loss)
    diverged: np.ndarray  # (K+1,) bool; endpoints False
    constraint_residual: np.ndarray  # (K+1,) |u·(θ_k − line_k)| per node (0 at the endpoints)
    cosines: np.ndarray  # (K−1, K−1) cosines between interior deviations from the line
    deviation_norms: np.ndarray  # (K−1,)
    warnings: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, float]:
        return {
            "max_loss_linear": float(np.nanmax(self.linear["loss"])),
            "max_loss_connector": float(np.nanmax(self.connector["loss"])),
            "endpoint_distance": float((self.points[-1] - self.points[0]).norm()),
            "max_deviation": float(np.max(self.deviation_norms)) if self.deviation_norms.size else 0.0,
            "two_block_contrast": two_block_contrast(self.cosines),
            "two_block_relative_contrast": two_block_at_equal_lag(self.cosines)["relative_contrast"],
            "num_diverged": int(self.diverged.sum()),
            "max_constraint_residual": float(np.max(self.constraint_residual)),
        }


def low_loss_connector(
    loss_fn: LossFn,
    theta_a: torch.Tensor,
    theta_b: torch.Tensor,
    num_segments: int = 10,
    steps: int = 500,
    lr: float = 1e-2,
    optimizer: OptimizerSpec = "adam",
    optimizer_kwargs: dict[str, Any] | None = None,
    schedule: str = "constant",
    divergence_factor: float = 100.0,
    points_per_segment: int = 0,
    eval_loss_fn: Callable[[torch.Tensor], Any] | None = None,
    metrics_fn: Callable[[torch.Tensor], dict] | None = None,
    predict_fn: Callable[[torch.Tensor], Any] | None = None,
    progress: bool = False,
    memo: Memo = compute_now,
) -> ConnectorResult:
    """Fort & Jastrzebski's 1-connector between two optima (Sec. 4.2).

    ``num_segments`` segments give ``num_segments − 1`` interior nodes, each optimised in the
    hyperplane through it normal to θ_b − θ_a. Both paths are then evaluated at the nodes and at
    ``points_per_segment`` extra points per segment: the loss (``eval_loss_fn``, default the
    training loss at step 0), optional ``metrics_fn(θ) -> dict`` and, with ``predict_fn(θ) ->
    labels``, the fraction of labels equal to those of each endpoint (Fig. 3 right). ``progress``
    shows a bar over the hyperplane optimisations; each goes through ``memo`` (key ``node_<k>``),
    so a job resumes between nodes.

    The paper reports the loss at the nodes. The in-between points show whether the straight
    segments joining the nodes stay low too. They need not: on the wedge toy, where consecutive
    nodes land on different wedges the segment between them rises (measured: nodes at ~1e-5,
    one segment at ~0.8 of the line's 2.2 barrier, hardly lower with 48 segments than with 6 —
    the optimised node jumps as a function of its position on the line).
    """
    a, b = _check_points([theta_a, theta_b], "endpoint")
    if num_segments < 2:
        raise ValueError(f"num_segments must be >= 2 (at least one interior node), got {num_segments}")
    if points_per_segment < 0:
        raise ValueError(f"points_per_segment must be >= 0, got {points_per_segment}")
    direction = (b - a).detach()
    length = float(direction.norm())
    if not length > 0 or not math.isfinite(length):
        raise ValueError(
            f"the two endpoints are identical or not finite (distance {length}): the line between them has "
            "no direction, so there is no normal hyperplane; pass two distinct optima"
        )
    u = (direction / length).reshape(-1, 1)
    ts = torch.linspace(0.0, 1.0, num_segments + 1, dtype=torch.float64)
    line = torch.stack([a.detach() + float(t) * direction for t in ts])

    runs: list[ConstrainedRun] = []
    for k in tqdm(range(1, num_segments), desc="connector nodes", disable=not progress, leave=False):
        runs.append(
            memo(
                f"node_{k}",
                partial(
                    optimize_in_affine_subspace,
                    loss_fn,
                    line[k],
                    u,
                    steps=steps,
                    lr=lr,
                    optimizer=optimizer,
                    optimizer_kwargs=optimizer_kwargs,
                    schedule=schedule,
                    divergence_factor=divergence_factor,
                ),
            )
        )
    msgs = _warn_diverged(runs, [f"connector node {k}" for k in range(1, num_segments)])
    nodes = torch.stack([a.detach()] + [r.theta for r in runs] + [b.detach()])

    eval_loss = eval_loss_fn or as_plain_loss(loss_fn, 0)
    end_labels = None
    if predict_fn is not None:
        with torch.no_grad():
            end_labels = (_labels(predict_fn(nodes[0])), _labels(predict_fn(nodes[-1])))
    t, lin_pts, node_idx = polyline(line, points_per_segment)
    _, con_pts, _ = polyline(nodes, points_per_segment)
    linear = _evaluate_path(lin_pts, eval_loss, metrics_fn, predict_fn, end_labels)
    connector = _evaluate_path(con_pts, eval_loss, metrics_fn, predict_fn, end_labels)
    cos, dev_norms = deviation_cosines(nodes[1:-1], line[1:-1])
    end_loss = [float(linear["loss"][0]), float(linear["loss"][-1])]
    return ConnectorResult(
        t=t,
        node_index=node_idx,
        points=nodes,
        line_points=line,
        linear=linear,
        connector=connector,
        start_loss=np.asarray([end_loss[0]] + [r.start_loss for r in runs] + [end_loss[1]]),
        final_loss=np.asarray([end_loss[0]] + [r.final_loss for r in runs] + [end_loss[1]]),
        diverged=np.asarray([False] + [r.diverged for r in runs] + [False]),
        constraint_residual=np.asarray([0.0] + [r.constraint_residual for r in runs] + [0.0]),
        cosines=cos,
        deviation_norms=dev_norms,
        warnings=msgs,
    )


# ---------------------------------------------------------------------------------------------
# m-connector


@dataclass
class MConnectorResult:
    m: int
    weights: np.ndarray  # (S, m+1) convex weights of the hull points (last row: barycentre if asked)
    points_before: torch.Tensor  # (S, D) hull points
    points_after: torch.Tensor  # (S, D) optimised points (on their (D−m)-dim affine subspaces)
    loss_before: np.ndarray  # (S,) evaluation loss at the hull points
    loss_after: np.ndarray  # (S,)
    optima_loss: np.ndarray  # (m+1,) evaluation loss at the optima themselves
    diverged: np.ndarray  # (S,) bool
    constraint_residual: np.ndarray  # (S,) max |Qᵀ(θ_after − θ_before)|, Q the orthonormal span of the optima
    basis: torch.Tensor  # (D, m) orthonormal basis of span{θ_i − θ_0}
    barycentre_index: int | None
    warnings: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, float]:
        return {
            "m": self.m,
            "mean_loss_before": float(np.nanmean(self.loss_before)),
            "mean_loss_after": float(np.nanmean(self.loss_after)),
            "max_loss_before": float(np.nanmax(self.loss_before)),
            "max_loss_after": float(np.nanmax(self.loss_after)),
            "num_diverged": int(self.diverged.sum()),
            "max_constraint_residual": float(np.max(self.constraint_residual)),
        }


def hull_weights(num_vertices: int, num_samples: int, seed: int, alpha: float = 1.0, barycentre: bool = True) -> np.ndarray:
    """Convex weights: ``num_samples`` Dirichlet(alpha) draws (seeded), plus the barycentre as the last row."""
    if num_samples < 0 or (num_samples == 0 and not barycentre):
        raise ValueError(f"need at least one hull point (num_samples={num_samples}, barycentre={barycentre})")
    rng = np.random.default_rng(seed)
    rows = [rng.dirichlet(np.full(num_vertices, alpha)) for _ in range(num_samples)]
    if barycentre:
        rows.append(np.full(num_vertices, 1.0 / num_vertices))
    return np.asarray(rows, dtype=float).reshape(-1, num_vertices)


def m_connector(
    loss_fn: LossFn,
    optima: Sequence[torch.Tensor],
    m: int | None = None,
    num_samples: int = 8,
    seed: int = 0,
    barycentre: bool = True,
    dirichlet_alpha: float = 1.0,
    steps: int = 500,
    lr: float = 1e-2,
    optimizer: OptimizerSpec = "adam",
    optimizer_kwargs: dict[str, Any] | None = None,
    schedule: str = "constant",
    divergence_factor: float = 100.0,
    eval_loss_fn: Callable[[torch.Tensor], Any] | None = None,
    progress: bool = False,
    memo: Memo = compute_now,
) -> MConnectorResult:
    """Optimise points of the convex hull of the first m+1 ``optima`` (Sec. 4.3).

    Each hull point moves only in the (D−m)-dimensional affine subspace through it orthogonal to
    span{θ_i − θ_0} (basis by QR), so it cannot slide towards an optimum along the simplex.
    ``m`` defaults to ``len(optima) − 1``. Each hull point's optimisation goes through ``memo``
    (key ``point_<i>``).
    """
    pts = _check_points(list(optima), "optimum")
    m = len(pts) - 1 if m is None else int(m)
    if m < 1:
        raise ValueError(f"m must be >= 1 (an m-connector joins m+1 optima), got {m}")
    if len(pts) < m + 1:
        raise ValueError(f"an {m}-connector needs {m + 1} optima, got {len(pts)}")
    pts = [p.detach() for p in pts[: m + 1]]
    dim = pts[0].numel()
    if m >= dim:
        raise ValueError(f"m={m} must be below the number of parameters ({dim})")
    stack = torch.stack(pts)
    basis = orthonormal_span((stack[1:] - stack[0]).T)
    w = hull_weights(m + 1, num_samples, seed, dirichlet_alpha, barycentre)
    before = torch.as_tensor(w, dtype=stack.dtype, device=stack.device) @ stack

    runs = [
        memo(
            f"point_{i}",
            partial(
                optimize_in_affine_subspace,
                loss_fn,
                p,
                basis,
                steps=steps,
                lr=lr,
                optimizer=optimizer,
                optimizer_kwargs=optimizer_kwargs,
                schedule=schedule,
                divergence_factor=divergence_factor,
            ),
        )
        for i, p in enumerate(tqdm(before, desc=f"{m}-connector hull points", disable=not progress, leave=False))
    ]
    msgs = _warn_diverged(runs, [f"{m}-connector hull point {i}" for i in range(len(runs))])
    after = torch.stack([r.theta for r in runs])
    eval_loss = eval_loss_fn or as_plain_loss(loss_fn, 0)
    with torch.no_grad():
        lb = np.asarray([float(eval_loss(p)) for p in before])
        la = np.asarray([float(eval_loss(p)) for p in after])
        lo = np.asarray([float(eval_loss(p)) for p in stack])
    return MConnectorResult(
        m=m,
        weights=w,
        points_before=before,
        points_after=after,
        loss_before=lb,
        loss_after=la,
        optima_loss=lo,
        diverged=np.asarray([r.diverged for r in runs]),
        constraint_residual=np.asarray([r.constraint_residual for r in runs]),
        basis=basis,
        barycentre_index=(len(w) - 1) if barycentre else None,
        warnings=msgs,
    )


# ---------------------------------------------------------------------------------------------
# short directions (Fig. 4)


SHORT_THRESHOLD_MODES = ("relative", "absolute")


def _counts(loss_fn: LossFn, theta: torch.Tensor, thresholds: Sequence[float], k_max: int, seed: int) -> np.ndarray:
    """Hessian eigenvalues above each threshold, from one Lanczos run per k (counts up to ``k_max``).

    Grows k geometrically until an eigenvalue at or below the *lowest* threshold appears or k reaches
    ``k_max`` (with one threshold this is :func:`~lsx.landscape.curvature.hessian.count_short_directions`),
    so every threshold is counted on the same eigenvalues.
    """
    from ..curvature.hessian import top_eigenpairs

    n = theta.numel()
    if not 1 <= k_max < n:
        raise ValueError(f"k_max={k_max} must be in 1..{n - 1} (Lanczos needs k < number of parameters {n})")
    thr = np.asarray(list(thresholds), dtype=float)
    if thr.size == 0:
        raise ValueError("no short-direction threshold to count above")
    f, th = as_plain_loss(loss_fn, 0), theta.detach()
    k = min(8, k_max)
    while True:
        vals = np.asarray(top_eigenpairs(f, th, k, "LA", tol=1e-3, seed=seed).values, dtype=float)
        if (vals <= thr.min()).any() or k >= k_max:
            return np.asarray([int((vals > t).sum()) for t in thr], dtype=int)
        k = min(2 * k, k_max)


def top_eigenvalue(loss_fn: LossFn, theta: torch.Tensor, seed: int = 0) -> float:
    """The largest Hessian eigenvalue at θ (Lanczos)."""
    from ..curvature.hessian import top_eigenpairs

    return float(np.max(top_eigenpairs(as_plain_loss(loss_fn, 0), theta.detach(), 1, "LA", tol=1e-4, seed=seed).values))


def short_threshold(loss_fn: LossFn, reference: torch.Tensor, mode: str, value: float, seed: int = 0) -> tuple[float, float]:
    """The eigenvalue level above which a direction is "short", and λ_max at ``reference`` (NaN if unused).

    ``relative`` (the default of the jobs): ``value`` × λ_max at the reference optimum, so the count
    does not depend on the loss's scale (held-out vs training data, dataset, model size);
    ``absolute``: ``value`` itself.
    """
    if mode not in SHORT_THRESHOLD_MODES:
        raise ValueError(f"unknown short-direction threshold mode {mode!r}; valid: {', '.join(SHORT_THRESHOLD_MODES)}")
    if not value > 0:
        raise ValueError(f"the short-direction threshold must be > 0, got {value}")
    if mode == "absolute":
        return float(value), float("nan")
    lam = top_eigenvalue(loss_fn, reference, seed)
    if not lam > 0:
        raise ValueError(
            f"the top Hessian eigenvalue at the reference optimum is {lam:.4g} (not > 0): "
            "a relative threshold needs a positive one"
        )
    return float(value) * lam, lam


def short_directions_along_path(
    loss_fn: LossFn,
    points: torch.Tensor | Sequence[torch.Tensor],
    threshold: float,
    k_max: int,
    seed: int = 0,
    more_thresholds: Sequence[float] = (),
) -> dict[str, np.ndarray | np.generic]:
    """Number of Hessian eigenvalues above ``threshold`` at each point of a path (Fig. 4 left).

    ``points`` is e.g. ``ConnectorResult.points``. ``saturated`` marks counts that hit ``k_max``
    (the true count may be larger). ``loss`` is ``loss_fn`` at each point, so counts can be compared
    at matched loss. The loss must be deterministic at step 0 (a fixed batch). With
    ``more_thresholds`` the same eigenvalues are also counted above each of them: ``thresholds``
    (T,) is ``threshold`` followed by those, ``counts`` and ``saturated_by_threshold`` are (T, P).
    """
    pts = _check_points(list(points), "path point")
    thr = [float(threshold)] + [float(t) for t in more_thresholds]
    counts = np.asarray([_counts(loss_fn, p, thr, k_max, seed) for p in pts], dtype=int).T.reshape(len(thr), len(pts))
    f = as_plain_loss(loss_fn, 0)
    with torch.no_grad():
        losses = np.asarray([float(f(p)) for p in pts])
    return {
        "t": np.linspace(0.0, 1.0, len(pts)),
        "count": counts[0],
        "saturated": counts[0] >= k_max,
        "loss": losses,
        "threshold": np.float64(threshold),
        "thresholds": np.asarray(thr),
        "counts": counts,
        "saturated_by_threshold": counts >= k_max,
    }


def short_directions_vs_m(
    loss_fn: LossFn,
    optima: Sequence[torch.Tensor],
    threshold: float,
    k_max: int,
    max_m: int | None = None,
    seed: int = 0,
    hessian_loss_fn: LossFn | None = None,
    more_thresholds: Sequence[float] = (),
    **connector_kwargs: Any,
) -> dict[str, np.ndarray | np.generic]:
    """Short directions in the middle of m-connectors, m = 1..max_m (Fig. 4 middle).

    For each m the barycentre of the first m+1 optima is optimised on ``loss_fn`` in its (D−m)-dim
    subspace (:func:`m_connector` with no Dirichlet samples, ``connector_kwargs`` passed on) and
    the Hessian eigenvalues above ``threshold`` are counted there on ``hessian_loss_fn`` (default
    ``loss_fn`` at step 0; pass held-out data so the count is not taken on the data the point was
    optimised on). ``loss_mid`` is that loss at each middle, ``count_at_optimum`` and
    ``loss_at_optimum`` the same at ``optima[0]`` (the baseline). With ``more_thresholds`` the same
    eigenvalues are also counted above each: ``thresholds`` (T,) is ``threshold`` followed by them,
    ``counts`` (T, max_m) and ``counts_at_optimum`` (T,) hold every threshold's counts.
    """
    pts = _check_points(list(optima), "optimum")
    max_m = len(pts) - 1 if max_m is None else int(max_m)
    if max_m < 1 or len(pts) < max_m + 1:
        raise ValueError(f"short directions up to m={max_m} need {max_m + 1} optima (m >= 1), got {len(pts)}")
    hess = hessian_loss_fn if hessian_loss_fn is not None else as_plain_loss(loss_fn, 0)
    h_plain = as_plain_loss(hess, 0)
    connector_kwargs = {**connector_kwargs, "num_samples": 0, "barycentre": True}
    connector_kwargs.setdefault("eval_loss_fn", h_plain)
    thr = [float(threshold)] + [float(t) for t in more_thresholds]
    ms, counts, before, after, diverged, msgs, mid_loss = [], [], [], [], [], [], []
    for m in range(1, max_m + 1):
        res = m_connector(loss_fn, pts, m=m, **connector_kwargs)
        mid = res.points_after[res.barycentre_index]
        ms.append(m)
        counts.append(_counts(hess, mid, thr, k_max, seed))
        before.append(res.loss_before[-1])
        after.append(res.loss_after[-1])
        diverged.append(bool(res.diverged[-1]))
        msgs.extend(res.warnings)
        with torch.no_grad():
            mid_loss.append(float(h_plain(mid)))
    counts_t = np.asarray(counts, dtype=int).T.reshape(len(thr), len(ms))
    counts_a = counts_t[0]
    at_opt = _counts(hess, pts[0], thr, k_max, seed)
    with torch.no_grad():
        opt_loss = float(h_plain(pts[0]))
    return {
        "m": np.asarray(ms),
        "count": counts_a,
        "saturated": counts_a >= k_max,
        "thresholds": np.asarray(thr),
        "counts": counts_t,
        "counts_at_optimum": at_opt,
        "saturated_by_threshold": counts_t >= k_max,
        "loss_before": np.asarray(before),
        "loss_after": np.asarray(after),
        "diverged": np.asarray(diverged),
        "loss_mid": np.asarray(mid_loss),
        "loss_at_optimum": np.float64(opt_loss),
        "count_at_optimum": np.int64(at_opt[0]),
        "threshold": np.float64(threshold),
        "warnings": np.asarray(msgs, dtype=object),
    }
