"""Statistics of the n-wedge toy model (Fort & Jastrzebski 2019, Sec. 3; preset ``fort_toy``).

Both read each job's ``toy_wedges.npz`` (success rate per hyperplane dimension d for every (D, n)
pair), so they need no metric the job does not store.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .inference import check_test, describe, unit_interval
from .records import JobRecord
from .statistics import Estimate, InsufficientData, register_statistic, register_statistic_plot, unit_of


def _curves(job: JobRecord) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    path = job.job_dir / "toy_wedges.npz"
    if not path.is_file():
        raise InsufficientData(f"job {job.job_dir.name} has no toy_wedges.npz (is it a toy_wedges job?)")
    data = np.load(path)
    out = {}
    for k in data.files:
        m = re.fullmatch(r"success_D(\d+)_n(\d+)", k)
        if m:
            D, n = int(m.group(1)), int(m.group(2))
            out[(D, n)] = (np.asarray(data[f"dims_D{D}_n{n}"], float), np.asarray(data[k], float))
    if not out:
        raise InsufficientData(f"job {job.job_dir.name}: toy_wedges.npz holds no success curves")
    return out


def threshold_dim(dims: np.ndarray, success: np.ndarray, level: float = 0.5) -> float:
    """The hyperplane dimension where the success rate first reaches ``level``, linearly
    interpolated between the measured dimensions (NaN if it never does)."""
    order = np.argsort(dims)
    d, s = dims[order], success[order]
    above = np.nonzero(s >= level)[0]
    if not above.size:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(d[0])
    return float(d[i - 1] + (level - s[i - 1]) * (d[i] - d[i - 1]) / (s[i] - s[i - 1]))


def _mean_over_units(jobs: Sequence[JobRecord], unit: str, interval: str, per_job, **details: Any) -> Estimate:
    """``per_job(job)`` gives a value per (D, n) pair: mean over the pairs of each job (one value per
    unit), then over the units (trial seeds) by ``interval``; every pair's value is a row of the table.

    ``t`` (default): each unit's value averages several (D, n) pairs, so it is close to normal over
    trial seeds; ``sign``: the median, for a value pinned at a bound (a success gap of exactly 1)."""
    check_test(interval)
    acc: dict[Any, list[float]] = {}
    rows = []
    for j in jobs:
        values = per_job(j)
        for (D, n), v in values.items():
            rows.append({unit: unit_of(j, unit), "D": D, "wedge n": n, "D−n": D - n, "value": v})
        acc.setdefault(unit_of(j, unit), []).append(float(np.mean(list(values.values()))))
    units = {u: float(np.mean(v)) for u, v in acc.items()}
    m, lo, hi = unit_interval(list(units.values()), interval)
    return Estimate(
        m,
        lo,
        hi,
        len(units),
        f"mean over (D, n) pairs per unit, then the {describe(interval, len(units), unit)}",
        details={**details, "unit": unit, "interval": interval, "per_unit": {str(u): v for u, v in units.items()}},
        table=rows,
    )


@register_statistic("wedge_threshold_offset")
def wedge_threshold_offset(
    jobs: Sequence[JobRecord], level: float = 0.5, unit: str = "analysis.seed", interval: str = "t"
) -> Estimate:
    """d* − (D − n): where random-hyperplane optimization starts to succeed (success rate ≥ ``level``)
    relative to the predicted threshold, averaged over the (D, n) pairs of a job, then over units
    (trial seeds: each job draws its own random hyperplanes) by ``interval``."""

    def per_job(j: JobRecord) -> dict[tuple[int, int], float]:
        out = {}
        for (D, n), (dims, s) in _curves(j).items():
            t = threshold_dim(dims, s, level)
            if not np.isfinite(t):
                raise InsufficientData(
                    f"job {j.job_dir.name}: D={D}, n={n} never reaches success rate {level} "
                    f"at d ≤ {int(dims.max())}; widen analysis.dim_offsets"
                )
            out[(D, n)] = t - (D - n)
        return out

    return _mean_over_units(jobs, unit, interval, per_job, level=level)


@register_statistic("wedge_success_gap")
def wedge_success_gap(jobs: Sequence[JobRecord], margin: int = 3, unit: str = "analysis.seed", interval: str = "t") -> Estimate:
    """Success rate at d ≥ D−n+margin minus success rate at d ≤ D−n−margin (1 = a sharp threshold),
    averaged over the (D, n) pairs, then over units by ``interval``."""

    def per_job(j: JobRecord) -> dict[tuple[int, int], float]:
        out = {}
        for (D, n), (dims, s) in _curves(j).items():
            below, above = s[dims <= D - n - margin], s[dims >= D - n + margin]
            if not below.size or not above.size:
                raise InsufficientData(f"job {j.job_dir.name}: D={D}, n={n} has no dimension {margin} below and above D−n")
            out[(D, n)] = float(above.mean() - below.mean())
        return out

    return _mean_over_units(jobs, unit, interval, per_job, margin=margin)


@register_statistic_plot("wedge_threshold_offset")
@register_statistic_plot("wedge_success_gap")
def plot_success_curves(jobs: Sequence[JobRecord], est: Estimate, path: Path, unit: str = "analysis.seed", **_: Any) -> Path:
    """Success rate against d − (D − n) for every job and (D, n) pair: the threshold sits at 0."""
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    colours: dict[tuple[int, int], str] = {}
    for j in jobs:
        for (D, n), (dims, s) in sorted(_curves(j).items()):
            c = colours.setdefault((D, n), f"C{len(colours)}")
            ax.plot(dims - (D - n), s, "o-", color=c, alpha=0.5, ms=3, label=f"D={D}, n={n}")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7)
    ax.axvline(0, color="k", ls="--", lw=0.8)
    ax.set_xlabel("hyperplane dimension d − (D − n)")
    ax.set_ylabel("success rate")
    units = {unit_of(j, unit) for j in jobs}
    ax.set_title(f"random-hyperplane optimization, n = {len(units)} {unit} values", fontsize=9)
    return save_figure(fig, path)
