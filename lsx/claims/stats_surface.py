"""Statistics of a 2D loss surface around an optimum (preset ``quickstart``, Li et al. Fig. 1 style).

They read each ``surface2d`` job's ``surface_grid.npz`` (the train-loss grid and its axes).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .records import JobRecord
from .statistics import Estimate, InsufficientData, register_statistic, register_statistic_plot, t_interval, unit_of


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


def _per_unit(jobs: Sequence[JobRecord], unit: str, metric: str, fn) -> tuple[dict[Any, list[float]], list[dict[str, Any]]]:
    acc: dict[Any, list[float]] = {}
    rows = []
    for j in jobs:
        v = fn(*_grid(j, metric))
        u = unit_of(j, unit)
        acc.setdefault(u, []).append(v)
        rows.append({unit: u, "direction_seeds": j.get("analysis.direction_seeds", None), "value": v,
                     "train_loss": j.get("training.train_loss", None), "test_acc": j.get("training.test_acc", None)})
    return acc, rows


@register_statistic("surface_border_ratio")
def surface_border_ratio(jobs: Sequence[JobRecord], metric: str = "train_loss", unit: str = "seed") -> Estimate:
    """Mean border loss / centre loss of each surface; geometric mean over units (direction seeds of
    one optimum averaged in log space first) with a t-interval on the logs. > 1: the centre is lower."""
    acc, rows = _per_unit(jobs, unit, metric, border_ratio)
    if any(v <= 0 or not math.isfinite(v) for vs in acc.values() for v in vs):
        raise InsufficientData(f"border/centre {metric} ratios must be positive and finite")
    logs = {u: float(np.mean(np.log(v))) for u, v in acc.items()}
    m, lo, hi = t_interval(list(logs.values()))
    return Estimate(math.exp(m), math.exp(lo), math.exp(hi), len(logs),
                    f"geometric mean over {len(logs)} {unit}s of border/centre {metric}; t-interval on logs",
                    details={"metric": metric, "unit": unit, "per_unit": {str(u): math.exp(v) for u, v in logs.items()}}, table=rows)


@register_statistic("surface_argmin_offset")
def surface_argmin_offset(jobs: Sequence[JobRecord], metric: str = "train_loss", unit: str = "seed") -> Estimate:
    """How far (in grid steps) the lowest grid point lies from the centre: mean over units, t-interval."""
    acc, rows = _per_unit(jobs, unit, metric, argmin_offset)
    means = {u: float(np.mean(v)) for u, v in acc.items()}
    m, lo, hi = t_interval(list(means.values()))
    return Estimate(m, lo, hi, len(means), f"mean over {len(means)} {unit}s of the argmin's distance from the centre (grid steps)",
                    details={"metric": metric, "unit": unit, "per_unit": {str(u): v for u, v in means.items()}}, table=rows)


@register_statistic_plot("surface_border_ratio")
@register_statistic_plot("surface_argmin_offset")
def plot_centre_profiles(jobs: Sequence[JobRecord], est: Estimate, path: Path, metric: str = "train_loss",
                         unit: str = "seed", **_: Any) -> Path:
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
