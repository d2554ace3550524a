"""Statistics of a 2D loss surface around an optimum (preset ``quickstart``, Li et al. Fig. 1 style;
``li_fig7``: how the surface's flatness changes with a hyper-parameter).

They read each ``surface2d`` job's ``surface_grid.npz`` (the train-loss grid and its axes).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .inference import check_test, describe, unit_interval
from .records import JobRecord
from .statistics import (
    Estimate,
    InsufficientData,
    get_statistic_plot,
    register_statistic,
    register_statistic_plot,
    spearman,
    unit_of,
)


def _grid(job: JobRecord, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = job.job_dir / "surface_grid.npz"
    if not path.is_file():
        raise InsufficientData(f"job {job.job_dir.name} has no surface_grid.npz (is it a surface2d job?)")
    data = np.load(path)
    if metric not in data.files:
        raise InsufficientData(f"job {job.job_dir.name}: surface_grid.npz has no {metric!r}; it has {', '.join(data.files)}")
    return np.asarray(data["x"]), np.asarray(data["y"]), np.asarray(data[metric], float)


def border_ratio(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Mean loss on the grid's border over the loss at the point nearest the centre (0, 0)."""
    border = np.concatenate([z[0, :], z[-1, :], z[1:-1, 0], z[1:-1, -1]])
    return float(np.nanmean(border) / z[np.abs(y).argmin(), np.abs(x).argmin()])


def argmin_offset(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Distance of the grid's lowest point from the centre, in units of the grid step."""
    iy, ix = np.unravel_index(np.nanargmin(z), z.shape)
    step = min(np.diff(x).min(), np.diff(y).min())
    return float(math.hypot(x[ix], y[iy]) / step)


def mean_rise(x: np.ndarray, y: np.ndarray, z: np.ndarray, radius: float | None = None) -> float:
    """Mean of z − z(centre) over the grid points within Euclidean distance ``radius`` of (0, 0), the
    centre excluded; ``radius=None``: every point of the grid.

    Why: the surface-side twin of the ``sharpness`` job's filter-normalized loss rise at a fixed
    distance (Li et al. read flatness off the filter-normalized plots at equal α, β), averaged over
    every direction the 2D slice holds rather than two axis lines; NaN points are skipped.
    """
    X, Y = np.meshgrid(x, y)
    r = np.hypot(X, Y)
    ic = (int(np.abs(y).argmin()), int(np.abs(x).argmin()))
    inside = np.ones_like(r, dtype=bool) if radius is None else r <= float(radius) * (1 + 1e-9)
    inside[ic] = False
    vals = z[inside & np.isfinite(z)]
    if vals.size == 0:
        raise InsufficientData(
            f"no finite grid point lies within radius {radius} of the centre (grid step "
            f"{float(np.diff(x).min()):.3g}); use a larger radius"
        )
    return float(vals.mean() - z[ic])


def _per_unit(jobs: Sequence[JobRecord], unit: str, metric: str, fn) -> tuple[dict[Any, list[float]], list[dict[str, Any]]]:
    acc: dict[Any, list[float]] = {}
    rows = []
    for j in jobs:
        v = fn(*_grid(j, metric))
        u = unit_of(j, unit)
        acc.setdefault(u, []).append(v)
        rows.append(
            {
                unit: u,
                "direction_seeds": j.get("analysis.direction_seeds", None),
                "value": v,
                "train_loss": j.get("training.train_loss", None),
                "test_acc": j.get("training.test_acc", None),
            }
        )
    return acc, rows


@register_statistic("surface_border_ratio")
def surface_border_ratio(
    jobs: Sequence[JobRecord], metric: str = "train_loss", unit: str = "seed", interval: str = "t"
) -> Estimate:
    """Mean border loss / centre loss of each surface, one value per unit (direction seeds of one
    optimum averaged in log space first). > 1: the centre is lower. ``interval: t`` (default) on the
    logs, value their geometric mean: a loss ratio varies by factors, so its log is close to normal;
    ``interval: sign``: the median ratio."""
    check_test(interval)
    acc, rows = _per_unit(jobs, unit, metric, border_ratio)
    if any(v <= 0 or not math.isfinite(v) for vs in acc.values() for v in vs):
        raise InsufficientData(f"border/centre {metric} ratios must be positive and finite")
    logs = {u: float(np.mean(np.log(v))) for u, v in acc.items()}
    m, lo, hi = unit_interval(list(logs.values()), interval)
    return Estimate(
        math.exp(m),
        math.exp(lo),
        math.exp(hi),
        len(logs),
        f"border/centre {metric}: {describe(interval, len(logs), unit)} on the logs",
        details={
            "metric": metric,
            "unit": unit,
            "interval": interval,
            "per_unit": {str(u): math.exp(v) for u, v in logs.items()},
        },
        table=rows,
    )


@register_statistic("surface_argmin_offset")
def surface_argmin_offset(
    jobs: Sequence[JobRecord], metric: str = "train_loss", unit: str = "seed", interval: str = "sign"
) -> Estimate:
    """How far (in grid steps) the lowest grid point lies from the centre, one value per unit.

    ``interval: sign`` (default): the offset is a discrete grid distance (0, 1, √2, 2, …; mostly 0),
    far from normal, and a t interval collapses to a point when every unit says 0; the sign interval
    for the median holds for any distribution (conservative for discrete ones). ``interval: t``: the mean."""
    check_test(interval)
    acc, rows = _per_unit(jobs, unit, metric, argmin_offset)
    means = {u: float(np.mean(v)) for u, v in acc.items()}
    m, lo, hi = unit_interval(list(means.values()), interval)
    return Estimate(
        m,
        lo,
        hi,
        len(means),
        f"argmin's distance from the centre (grid steps): {describe(interval, len(means), unit)}",
        details={"metric": metric, "unit": unit, "interval": interval, "per_unit": {str(u): v for u, v in means.items()}},
        table=rows,
    )


RISE_KEY = "surface_mean_rise"  # the per-job rise, attached as a metric so the generic spearman can rank it


def _with_rise(jobs: Sequence[JobRecord], radius: float | None, metric: str) -> list[JobRecord]:
    return [replace(j, metrics={**j.metrics, RISE_KEY: mean_rise(*_grid(j, metric), radius)}) for j in jobs]


@register_statistic("surface_rise_spearman")
def surface_rise_spearman(
    jobs: Sequence[JobRecord],
    x: str,
    radius: float | None = None,
    metric: str = "train_loss",
    unit: str = "seed",
    log_x: bool = False,
    interval: str = "t",
) -> Estimate:
    """Spearman ρ of each surface's mean loss rise within ``radius`` (:func:`mean_rise`) with ``x``
    (e.g. ``model.width``): < 0 when flatter surfaces go with larger x. Same estimator as the generic
    ``spearman``: ρ within each unit (seed), combined over units (``interval`` t: mean, or sign: median)."""
    est = spearman(_with_rise(jobs, radius, metric), x, f"metrics.{RISE_KEY}", log_x=log_x, unit=unit, interval=interval)
    est.details.update(
        y=f"mean {metric} rise within radius {radius if radius is not None else 'all'} (surface_grid.npz)",
        radius=radius,
        metric=metric,
    )
    est.method = f"{est.method}; y = mean {metric} rise over the surface's points within radius {radius}"
    return est


@register_statistic_plot("surface_rise_spearman")
def _plot_rise_spearman(
    jobs: Sequence[JobRecord],
    est: Estimate,
    path: Path,
    x: str,
    radius: float | None = None,
    metric: str = "train_loss",
    unit: str = "seed",
    log_x: bool = False,
    **_: Any,
) -> Path:
    """The rise against x, one line per unit (the generic spearman plot on the derived value)."""
    plot = get_statistic_plot("spearman")
    if plot is None:  # registered by lsx.claims.statistics, which this module imports
        raise LookupError("the generic 'spearman' statistic plot is not registered")
    return plot(_with_rise(jobs, radius, metric), est, path, x=x, y=f"metrics.{RISE_KEY}", log_x=log_x, unit=unit)


@register_statistic_plot("surface_border_ratio")
@register_statistic_plot("surface_argmin_offset")
def plot_centre_profiles(
    jobs: Sequence[JobRecord], est: Estimate, path: Path, metric: str = "train_loss", unit: str = "seed", **_: Any
) -> Path:
    """The surface's two axis profiles through the centre, every job: the minimum should sit at 0."""
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.4), layout="constrained", sharey=True)
    for k, j in enumerate(jobs):
        x, y, z = _grid(j, metric)
        ax1.plot(x, z[np.abs(y).argmin(), :], color=f"C{k % 10}", alpha=0.7)
        ax2.plot(y, z[:, np.abs(x).argmin()], color=f"C{k % 10}", alpha=0.7)
    for ax, name in ((ax1, "α (β = 0)"), (ax2, "β (α = 0)")):
        ax.axvline(0, color="k", ls="--", lw=0.8)
        ax.set_xlabel(name)
        ax.set_yscale("log")
    ax1.set_ylabel(metric.replace("_", " "))
    fig.suptitle(f"profiles through the centre, {len(jobs)} surfaces, n = {est.n} {unit}s", fontsize=9)
    return save_figure(fig, path)
