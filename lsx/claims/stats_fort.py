"""Fort & Jastrzebski 2019 statistics and report figures for the claims framework.

* ``fort_trend``: Spearman correlation of a per-job metric with a swept hyper-parameter, over the
  jobs whose x lies in a declared range (the paper's "grows with L2 *until too strong*" is a claim
  about the lower range, so the range is part of the claim, fixed before the run). ρ is computed
  within each training seed and combined over seeds (t interval on the per-seed ρ by default).
* ``fort_list_trend``: the same for jobs that hold a whole curve as metric lists (SWA vs ensemble
  per max LR, short directions per m): ρ within each job (one unit), combined over jobs.
* figure ``tunnel_width_panels``: Fig. 5 — width against each swept hyper-parameter, mean ± sd over
  seeds, one panel per sweep preset.

Spearman is rank based, so a log scale of x changes nothing; ``log_x`` only sets the figure axis.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lsx.claims.figures import register_figure
from lsx.claims.records import JobRecord
from lsx.claims.statistics import Estimate, InsufficientData, register_statistic, trend_estimate, unit_of


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f


def _safe_get(job: Any, key: str) -> Any:
    """An optional column (a train loss beside the statistic): None when the job lacks it."""
    try:
        return job.get(key)
    except (KeyError, AttributeError, TypeError, IndexError):
        return None


def _per_x_table(xs: np.ndarray, ys: np.ndarray, extra: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    rows = []
    for xv in np.unique(xs):
        sel = xs == xv
        row = {
            "x": float(xv),
            "mean": float(np.mean(ys[sel])),
            "sd": float(np.std(ys[sel], ddof=1)) if sel.sum() > 1 else float("nan"),
            "n": int(sel.sum()),
        }
        for k, v in extra.items():
            vals = v[sel][np.isfinite(v[sel])]
            row[k] = float(np.mean(vals)) if vals.size else float("nan")
        rows.append(row)
    return rows


@register_statistic("fort_trend")
def fort_trend(
    jobs: list,
    x: str,
    y: str,
    x_min: float | None = None,
    x_max: float | None = None,
    log_x: bool = False,
    unit: str = "seed",
    interval: str = "t",
    extra: Sequence[str] = ("training.train_loss", "metrics.base_train_loss", "metrics.distance_mean", "metrics.theta_norm"),
) -> Estimate:
    """Spearman ρ of ``y`` with ``x`` over the jobs with x in [x_min, x_max], within each unit (a
    training seed: every x of the sweep is trained from it), combined over units by ``interval``
    (``t``: mean ρ, the default; ``sign``: median ρ). Why t: see the generic ``spearman``; per-unit
    ρ over 3–4 sweep values is bounded and, under the null, symmetric, where the simulated t
    interval keeps its level and has more power than the sign interval (docs/statistics.md)."""
    points: list[tuple[Any, float, float]] = []
    cols: dict[str, list[float]] = {k: [] for k in extra}
    for j in jobs:
        xv = _num(j.get(x))
        if (x_min is not None and xv < x_min) or (x_max is not None and xv > x_max):
            continue  # outside the claim's declared range (e.g. the "too strong" end): its y is not read
        yv = _num(j.get(y))  # a missing or empty y in range raises MissingKey: the claim is inconclusive
        if not math.isfinite(xv) or not math.isfinite(yv):
            continue
        points.append((unit_of(j, unit), xv, yv))
        for k in extra:
            cols[k].append(_num(_safe_get(j, k)))
    xs = {p[1] for p in points}
    if len(xs) < 2:
        raise InsufficientData(f"{x} takes {len(xs)} value(s) in [{x_min}, {x_max}] among {len(jobs)} jobs: no trend to measure")
    names = {k: (k.replace(".", "_") if k.startswith("training.") else k.split(".")[-1]) for k in extra}
    table = _per_x_table(
        np.asarray([p[1] for p in points]), np.asarray([p[2] for p in points]), {names[k]: np.asarray(v) for k, v in cols.items()}
    )
    rng = f" over {x} in [{x_min if x_min is not None else '-inf'}, {x_max if x_max is not None else 'inf'}]"
    return trend_estimate(
        points,
        unit,
        interval,
        f"{y} with {x}{rng}",
        {"x": x, "y": y, "log_x": bool(log_x), "jobs": len(points), "x_values": sorted(xs)},
        table,
    )


@register_statistic("fort_list_trend")
def fort_list_trend(jobs: list, x: str, y: str, unit: str | None = None, interval: str = "t") -> Estimate:
    """Spearman ρ of per-job metric lists (e.g. max LR vs ensemble advantage, epoch vs radius) within
    each unit, combined over units by ``interval`` (``t``: mean ρ, default; ``sign``: median ρ).

    ``unit: None`` (default): each job is one unit, as in every preset that uses it (fort_fig2: a
    disjoint set of analysis seeds per job; fort_fig4: a disjoint set of optima; fort_fig6: one
    training seed per job); a key (``seed``, ``analysis.seeds``) makes jobs sharing it one unit."""
    if not jobs:
        raise InsufficientData("no finished jobs")
    points: list[tuple[Any, float, float]] = []
    for i, j in enumerate(jobs):
        xv, yv = j.get(x), j.get(y)
        xa, ya = np.asarray(xv, float).ravel(), np.asarray(yv, float).ravel()
        if xa.shape != ya.shape:
            raise ValueError(f"{x} has {xa.size} values but {y} has {ya.size} in {getattr(j, 'job_dir', '?')}")
        ok = np.isfinite(xa) & np.isfinite(ya)
        u = f"{i}:{Path(getattr(j, 'job_dir', '')).name}" if unit is None else unit_of(j, unit)
        points += [(u, float(a), float(b)) for a, b in zip(xa[ok], ya[ok])]
    name = "job" if unit is None else unit
    return trend_estimate(
        points,
        name,
        interval,
        f"{y} with {x} (per-job lists)",
        {"x": x, "y": y, "pairs": len(points)},
        _per_x_table(np.asarray([p[1] for p in points]), np.asarray([p[2] for p in points]), {}),
    )


# ------------------------------------------------------------------------------------------ figure


def _same_setting(a: Any, b: Any) -> bool:
    """Jobs from one reproduction: same analysis, training rule, scale, data set and model family."""
    keys = ("analysis", "training", "scale")
    try:
        return (
            all(a.config.get(k) == b.config.get(k) for k in keys)
            and a.config["data"]["name"] == b.config["data"]["name"]
            and a.config["model"]["name"] == b.config["model"]["name"]
        )
    except (KeyError, TypeError, AttributeError):
        return False


def sibling_jobs(jobs: list, preset: str, job: str = "tunnel_width") -> list:
    """Finished jobs of another preset beside ``jobs`` (same job directory root and same setting)."""
    if not jobs:
        return []
    root = Path(jobs[0].job_dir).parent
    out = []
    for d in sorted(root.glob(f"{job}_{preset}_*")):
        if (d / "results.json").exists() and (d / "config.yaml").exists() and (d / "DONE").exists():
            try:
                r = JobRecord.from_dir(d)
            except (OSError, ValueError, KeyError):
                continue
            if r.config.get("experiment_name") == preset and _same_setting(r, jobs[0]):
                out.append(r)
    return out


@register_figure("tunnel_width_panels")
def tunnel_width_panels(jobs: list, path: Path, panels: Sequence[dict] = (), y: str = "metrics.width_mean", **_: Any) -> Path:
    """Fort Fig. 5: one panel per sweep — width (mean ± sd over seeds, each seed a dot) against the
    swept hyper-parameter. A panel's ``preset`` names the sweep preset whose jobs it draws (its own
    jobs when it is this preset's, else finished sibling jobs of the same setting); empty panels say so."""
    import matplotlib.pyplot as plt

    from lsx.utils.io import atomic_path

    panels = list(panels) or [{"x": "optimizer.lr", "log_x": True}]
    own = {j.config.get("experiment_name") for j in jobs if hasattr(j, "config")}
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.3), layout="constrained", squeeze=False)
    for ax, p in zip(axes[0], panels):
        preset = p.get("preset")
        pj = jobs if (preset is None or preset in own) else sibling_jobs(jobs, preset)
        xs = np.asarray([_num(_safe_get(j, p["x"])) for j in pj])
        ys = np.asarray([_num(_safe_get(j, y)) for j in pj])
        ok = np.isfinite(xs) & np.isfinite(ys)
        xs, ys = xs[ok], ys[ok]
        seeds = len({j.seed for j, k in zip(pj, ok) if k})
        if xs.size:
            ux = np.unique(xs)
            plot_x = ux.copy()
            if p.get("log_x") and (ux <= 0).any():  # x = 0 (no L2 / no dropout) drawn one decade below the smallest > 0
                pos = ux[ux > 0]
                plot_x[ux <= 0] = (pos.min() / 10) if pos.size else 1.0
            mean = np.asarray([ys[xs == v].mean() for v in ux])
            sd = np.asarray([ys[xs == v].std(ddof=1) if (xs == v).sum() > 1 else 0.0 for v in ux])
            ax.fill_between(plot_x, mean - sd, mean + sd, alpha=0.25)
            ax.plot(plot_x, mean, "o-")
            for v, px in zip(ux, plot_x):
                ax.plot(np.full((xs == v).sum(), px), ys[xs == v], ".", color="k", ms=3, alpha=0.6)
            if p.get("log_x"):
                ax.set_xscale("log")
        else:
            ax.text(
                0.5,
                0.5,
                f"no finished jobs of {preset or 'this preset'}",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=8,
            )
        ax.set_xlabel(p.get("label", p["x"]))
        ax.set_ylabel(p.get("y_label", "tunnel angular width (rad)"))
        ax.set_title(f"{preset or ''} n={seeds} seeds, {xs.size} jobs", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("Fort & Jastrzebski Fig. 5: tunnel width vs hyper-parameter (mean ± sd over seeds)", fontsize=9)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
