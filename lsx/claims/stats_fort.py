"""Fort & Jastrzebski 2019 statistics and report figures for the claims framework.

* ``fort_trend``: Spearman correlation of a per-job metric with a swept hyper-parameter, over the
  jobs whose x lies in a declared range (the paper's "grows with L2 *until too strong*" is a claim
  about the lower range, so the range is part of the claim, fixed before the run). Interval: a
  bootstrap over training seeds (each resample keeps all x values of a seed together).
* ``fort_list_trend``: the same for jobs that hold a whole curve as metric lists (SWA vs ensemble
  per max LR, short directions per m): Spearman of the pooled (x, y) pairs, bootstrap over jobs.
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
from lsx.claims.statistics import Estimate, InsufficientData, register_statistic

BOOTSTRAP = 2000


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


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (average ranks for ties); NaN when either side is constant or n < 3."""
    from scipy.stats import rankdata

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    rx, ry = rankdata(x), rankdata(y)
    return float(np.corrcoef(rx, ry)[0, 1])


def _bootstrap(groups: list[tuple[np.ndarray, np.ndarray]], seed: int, n_boot: int) -> tuple[float, float]:
    """Percentile 95% interval of the pooled Spearman, resampling whole groups (seeds or jobs)."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(groups), len(groups))
        x = np.concatenate([groups[i][0] for i in pick])
        y = np.concatenate([groups[i][1] for i in pick])
        r = spearman(x, y)
        if math.isfinite(r):
            vals.append(r)
    if len(vals) < max(10, n_boot // 10):
        return float("nan"), float("nan")
    return float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))


def _per_x_table(xs: np.ndarray, ys: np.ndarray, extra: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    rows = []
    for xv in np.unique(xs):
        sel = xs == xv
        row = {"x": float(xv), "mean": float(np.mean(ys[sel])), "sd": float(np.std(ys[sel], ddof=1)) if sel.sum() > 1 else float("nan"),
               "n": int(sel.sum())}
        for k, v in extra.items():
            vals = v[sel][np.isfinite(v[sel])]
            row[k] = float(np.mean(vals)) if vals.size else float("nan")
        rows.append(row)
    return rows


@register_statistic("fort_trend")
def fort_trend(jobs: list, x: str, y: str, x_min: float | None = None, x_max: float | None = None, log_x: bool = False,
               seed: int = 0, n_boot: int = BOOTSTRAP, extra: Sequence[str] = ("training.train_loss", "metrics.base_train_loss",
                                                                              "metrics.distance_mean", "metrics.theta_norm")) -> Estimate:
    """Spearman of ``y`` with ``x`` over the jobs with x in [x_min, x_max]; bootstrap over training seeds."""
    xs, ys, seeds, cols = [], [], [], {k: [] for k in extra}
    for j in jobs:
        xv = _num(j.get(x))
        if (x_min is not None and xv < x_min) or (x_max is not None and xv > x_max):
            continue  # outside the claim's declared range (e.g. the "too strong" end): its y is not read
        yv = _num(j.get(y))  # a missing or empty y in range raises MissingKey: the claim is inconclusive
        if not math.isfinite(xv) or not math.isfinite(yv):
            continue
        xs.append(xv)
        ys.append(yv)
        seeds.append(int(j.seed))
        for k in extra:
            cols[k].append(_num(_safe_get(j, k)))
    if len(set(xs)) < 2:
        raise InsufficientData(f"{x} takes {len(set(xs))} value(s) in [{x_min}, {x_max}] among {len(jobs)} jobs: no trend to measure")
    xs_a, ys_a, seeds_a = np.asarray(xs), np.asarray(ys), np.asarray(seeds)
    names = {k: (k.replace(".", "_") if k.startswith("training.") else k.split(".")[-1]) for k in extra}
    table = _per_x_table(xs_a, ys_a, {names[k]: np.asarray(v) for k, v in cols.items()}) if xs else []
    units = sorted(set(seeds))  # the unit is the training seed: jobs of one seed are resampled together
    groups = [(xs_a[seeds_a == s], ys_a[seeds_a == s]) for s in units]
    rho = spearman(xs_a, ys_a)
    lo, hi = _bootstrap(groups, seed, n_boot) if len(units) >= 2 else (float("nan"), float("nan"))
    rng = f" over {x} in [{x_min if x_min is not None else '-inf'}, {x_max if x_max is not None else 'inf'}]"
    return Estimate(rho, lo, hi, len(units), f"Spearman of {y} with {x}{rng}; 95% bootstrap over {len(units)} seeds",
                    {"jobs": len(xs), "x_values": sorted(set(xs))}, table)


@register_statistic("fort_list_trend")
def fort_list_trend(jobs: list, x: str, y: str, seed: int = 0, n_boot: int = BOOTSTRAP) -> Estimate:
    """Spearman of the pooled (x, y) pairs of per-job metric lists (e.g. max LR vs ensemble advantage);
    bootstrap over jobs (each job is one training seed or one set of optima)."""
    groups, xs, ys = [], [], []
    for j in jobs:
        xv, yv = j.get(x), j.get(y)
        xa, ya = np.asarray(xv, float).ravel(), np.asarray(yv, float).ravel()
        if xa.shape != ya.shape:
            raise ValueError(f"{x} has {xa.size} values but {y} has {ya.size} in {getattr(j, 'job_dir', '?')}")
        ok = np.isfinite(xa) & np.isfinite(ya)
        groups.append((xa[ok], ya[ok]))
        xs.append(xa[ok])
        ys.append(ya[ok])
    if not groups:
        raise InsufficientData("no finished jobs")
    xa, ya = np.concatenate(xs), np.concatenate(ys)
    rho = spearman(xa, ya)
    lo, hi = _bootstrap(groups, seed, n_boot) if len(groups) >= 2 else (float("nan"), float("nan"))
    return Estimate(rho, lo, hi, len(groups), f"Spearman of {y} with {x} (per-job lists); 95% bootstrap over {len(groups)} jobs",
                    {"pairs": int(xa.size)}, _per_x_table(xa, ya, {}))


# ------------------------------------------------------------------------------------------ figure


def _same_setting(a: Any, b: Any) -> bool:
    """Jobs from one reproduction: same analysis, training rule, scale, data set and model family."""
    keys = ("analysis", "training", "scale")
    try:
        return all(a.config.get(k) == b.config.get(k) for k in keys) and \
            a.config["data"]["name"] == b.config["data"]["name"] and a.config["model"]["name"] == b.config["model"]["name"]
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
            ax.text(0.5, 0.5, f"no finished jobs of {preset or 'this preset'}", ha="center", va="center", transform=ax.transAxes, fontsize=8)
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
