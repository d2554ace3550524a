"""Fort & Jastrzebski 2019 statistics over independent units: connectors, m-connectors, snapshots, the toy.

Every statistic here reduces each independent unit (a training seed, or a disjoint set of optima:
jobs that share a trained model are one unit) to ONE value and gives the 95% interval of those
values from :func:`lsx.claims.inference.unit_interval` (``test``: ``sign`` — exact order-statistic
interval for the median, the default; ``t`` — Student-t for the mean). Below
:data:`~lsx.claims.inference.MIN_UNITS` units the sign interval is NaN, so the verdict is
inconclusive by construction.

* ``fort_unit_value``: a scalar metric (or one element of a per-job list) per unit.
* ``fort_list_at``: a per-job list metric read at one x (e.g. the highest max LR), optionally minus
  another list at the same x (mean snapshot accuracy − SWA accuracy).
* ``fort_threshold_robust``: a claim that depends on a numeric threshold (short directions counted
  above c·λmax) is decided on the *envelope* of its intervals over every threshold the job counted
  at: reproduced only if it holds at each one, not reproduced only if it fails at each one, else
  inconclusive by rule (the threshold, not the landscape, would decide it).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from lsx.claims.inference import MIN_UNITS, describe, unit_interval
from lsx.claims.records import JobRecord
from lsx.claims.statistics import Estimate, InsufficientData, register_statistic, register_statistic_plot, unit_of


def _per_unit(jobs: Sequence[JobRecord], unit: str, value: Callable[[JobRecord], float]) -> dict[Any, float]:
    """One value per unit: the mean over the unit's jobs (they share its trained model), NaN dropped."""
    acc: dict[Any, list[float]] = {}
    for j in jobs:
        v = float(value(j))
        if math.isfinite(v):
            acc.setdefault(unit_of(j, unit), []).append(v)
    return {u: float(np.mean(v)) for u, v in sorted(acc.items(), key=lambda kv: str(kv[0]))}


def _scalar(job: JobRecord, key: str) -> float:
    """A metric as a float; NaN when the job wrote it as undefined (null/NaN: e.g. no label changed on a
    path), so that unit is dropped and counted, while a metric the job never wrote stays a MissingKey."""
    head, _, rest = key.partition(".")
    if head == "metrics" and rest in job.metrics:
        raw = job.metrics[rest]
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            return math.nan
    return float(job.get(key))


def _estimate(
    units: dict[Any, float], unit: str, test: str, what: str, n_jobs: int, details: dict | None = None, table: list | None = None
) -> Estimate:
    if not units:
        raise InsufficientData(f"no unit has a finite value of {what} ({n_jobs} jobs)")
    centre, lo, hi = unit_interval(list(units.values()), test)
    note = "" if len(units) >= MIN_UNITS else f" (fewer than {MIN_UNITS} units: no interval)"
    return Estimate(
        centre,
        lo,
        hi,
        len(units),
        f"{what}: {describe(test, len(units), unit)}{note}",
        {**(details or {}), "unit": unit, "test": test, "n_jobs": n_jobs, "per_unit": {str(u): v for u, v in units.items()}},
        table if table is not None else [{unit: str(u), "value": v} for u, v in units.items()],
    )


def _as_list(job: JobRecord, key: str) -> np.ndarray:
    v = np.asarray(job.get(key), dtype=float)
    if v.ndim == 0:
        raise ValueError(f"{key} is a scalar in job {job.job_dir.name}; a per-job list is needed")
    return v


# ----------------------------------------------------------------------------- generic
@register_statistic("fort_unit_value")
def fort_unit_value(jobs: Sequence[JobRecord], y: str, unit: str = "seed", test: str = "sign") -> Estimate:
    """The metric ``y`` (a scalar; ``metrics.name.-1`` picks a list's last element) per unit; a unit whose
    jobs all have it undefined (NaN) is left out and counted in ``details.units_undefined``."""
    units = _per_unit(jobs, unit, lambda j: _scalar(j, y))
    undefined = len({unit_of(j, unit) for j in jobs} - set(units))
    return _estimate(units, unit, test, y, len(jobs), {"y": y, "units_undefined": undefined})


@register_statistic("fort_list_at")
def fort_list_at(
    jobs: Sequence[JobRecord], x: str, y: str, minus: str | None = None, at: Any = "max", unit: str = "seed", test: str = "sign"
) -> Estimate:
    """``y`` (minus ``minus``) where the per-job list ``x`` equals ``at`` (``max``/``min``: its largest or
    smallest entry, e.g. the highest max LR of a Fig. 6 sweep), one value per unit."""

    def value(j: JobRecord) -> float:
        xs, ys = _as_list(j, x), _as_list(j, y)
        if xs.shape != ys.shape:
            raise ValueError(f"{x} has {xs.size} values but {y} has {ys.size} in job {j.job_dir.name}")
        if at in ("max", "min"):
            i = int(np.nanargmax(xs) if at == "max" else np.nanargmin(xs))
        else:
            hits = np.nonzero(np.isclose(xs, float(at), rtol=1e-9, atol=0.0))[0]
            if not hits.size:
                raise InsufficientData(f"job {j.job_dir.name}: {x} has no entry {at} (has {xs.tolist()})")
            i = int(hits[0])
        v = float(ys[i])
        if minus is not None:
            other = _as_list(j, minus)
            if other.shape != xs.shape:
                raise ValueError(f"{x} has {xs.size} values but {minus} has {other.size} in job {j.job_dir.name}")
            v -= float(other[i])
        return v

    if at not in ("max", "min"):
        try:
            float(at)
        except (TypeError, ValueError):
            raise ValueError(f"at={at!r}: valid: 'max', 'min' or a number in the list {x}") from None
    units = _per_unit(jobs, unit, value)
    what = f"{y}{' − ' + minus if minus else ''} at {x} = {at}"
    return _estimate(units, unit, test, what, len(jobs), {"x": x, "y": y, "minus": minus, "at": at})


# ----------------------------------------------------------------------------- threshold robustness
def _rank_trend(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ of y with x; 0 when y is constant (no growth), NaN with fewer than 3 points."""
    from scipy.stats import spearmanr

    if x.size < 3 or np.ptp(x) == 0:
        return float("nan")
    if np.ptp(y) == 0:
        return 0.0
    return float(spearmanr(x, y).statistic)


def envelope(intervals: Sequence[tuple[float, float, float]]) -> tuple[float, float, float]:
    """(median centre, min lo, max hi) of several intervals; NaN bounds if any bound is NaN.

    Why the envelope: ``decide_interval`` then says "reproduced" only when every interval clears the
    bound, "not reproduced" only when every one is on the wrong side, and "inconclusive" otherwise."""
    arr = np.asarray(intervals, dtype=float).reshape(-1, 3)
    if arr.size == 0:
        return math.nan, math.nan, math.nan
    bounds_ok = np.isfinite(arr[:, 1:]).all()
    lo = float(arr[:, 1].min()) if bounds_ok else math.nan
    hi = float(arr[:, 2].max()) if bounds_ok else math.nan
    return float(np.nanmedian(arr[:, 0])) if np.isfinite(arr[:, 0]).any() else math.nan, lo, hi


@register_statistic("fort_threshold_robust")
def fort_threshold_robust(
    jobs: Sequence[JobRecord],
    y: str,
    thresholds: str = "metrics.short_directions_thresholds",
    x: str | None = None,
    saturated: str | None = "metrics.short_directions_saturated_by_threshold",
    unit: str = "seed",
    test: str = "sign",
) -> Estimate:
    """A short-direction statistic at every threshold the jobs counted at, decided on the envelope.

    ``y`` holds one entry per threshold (aligned with ``thresholds``): a scalar (e.g. the count gain
    of the middle over the ends) or, with ``x``, a list over ``x`` (e.g. counts per m), reduced per
    unit to the Spearman ρ of the list with ``x`` (0 when the counts are constant). A unit whose
    counts saturated (hit k_max) at a threshold has no value there. Each threshold gets its own
    interval over units; the estimate is their envelope (see :func:`envelope`), so the claim is
    reproduced only if it holds at every threshold."""
    per_thr: dict[float, dict[Any, list[float]]] = {}
    for j in jobs:
        thr = _as_list(j, thresholds)
        ys = j.get(y)
        if len(ys) != thr.size:
            raise ValueError(f"{y} has {len(ys)} entries but {thresholds} has {thr.size} in job {j.job_dir.name}")
        sat = np.zeros(thr.size) if saturated is None else _as_list(j, saturated)
        xs = None if x is None else _as_list(j, x)
        for t, yt, st in zip(thr, ys, sat):
            if st > 0:
                v = math.nan
            elif xs is None:
                v = float(yt)
            else:
                ya = np.asarray(yt, dtype=float)
                if ya.shape != xs.shape:
                    raise ValueError(f"{y} at threshold {t:g} has {ya.size} values but {x} has {xs.size} in job {j.job_dir.name}")
                v = _rank_trend(xs, ya)
            if math.isfinite(v):
                per_thr.setdefault(float(t), {}).setdefault(unit_of(j, unit), []).append(v)
    all_thr = sorted({float(t) for j in jobs for t in _as_list(j, thresholds)})
    if not all_thr:
        raise InsufficientData(f"no job lists a threshold in {thresholds}")
    rows, intervals, per_unit = [], [], {}
    for t in all_thr:
        units = {u: float(np.mean(v)) for u, v in per_thr.get(t, {}).items()}
        c, lo, hi = unit_interval(list(units.values()), test) if units else (math.nan, math.nan, math.nan)
        intervals.append((c, lo, hi))
        per_unit[f"{t:g}"] = {str(u): v for u, v in units.items()}
        rows.append({"threshold": t, "value": c, "lo": lo, "hi": hi, "units": len(units)})
    centre, lo, hi = envelope(intervals)
    n = min(r["units"] for r in rows)
    what = f"Spearman ρ of {y} with {x} per unit" if x else f"{y} per unit"
    return Estimate(
        centre,
        lo,
        hi,
        n,
        f"{what}, at each of {len(all_thr)} thresholds ({', '.join(f'{t:g}' for t in all_thr)}): "
        f"{describe(test, n, unit)} per threshold; the envelope of the intervals "
        "(holds at every threshold or is inconclusive)",
        {
            "y": y,
            "x": x,
            "unit": unit,
            "test": test,
            "thresholds": all_thr,
            "per_unit_by_threshold": per_unit,
            "n_jobs": len(jobs),
        },
        rows,
    )


# ----------------------------------------------------------------------------- report figure
@register_statistic_plot("fort_unit_value")
@register_statistic_plot("fort_list_at")
@register_statistic_plot("fort_threshold_robust")
def plot_unit_values(jobs: Sequence[JobRecord], est: Estimate, path: Path, **_: Any) -> Path:
    """One dot per unit (per threshold for ``fort_threshold_robust``) and each 95% interval: what the verdict rests on."""
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    groups = est.details.get("per_unit_by_threshold") or {"": est.details.get("per_unit", {})}
    rows = {f"{r['threshold']:g}": r for r in est.table if "threshold" in r}
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(groups), 3.4), layout="constrained")
    for i, (name, per_unit) in enumerate(groups.items()):
        vals = np.asarray(list(per_unit.values()), dtype=float)
        ax.plot(np.full(vals.size, i) + np.linspace(-0.12, 0.12, max(vals.size, 1))[: vals.size], vals, "o", alpha=0.7, ms=4)
        c, lo, hi = (rows[name]["value"], rows[name]["lo"], rows[name]["hi"]) if name in rows else (est.value, est.lo, est.hi)
        if math.isfinite(lo) and math.isfinite(hi):
            ax.errorbar([i + 0.3], [c], yerr=[[c - lo], [hi - c]], fmt="ks", capsize=4)
    ax.set_xticks(range(len(groups)), [f"c = {g}" if g else "" for g in groups], fontsize=8)
    ax.set_xlim(-0.5, len(groups) - 0.3)
    ax.set_ylabel(str(est.details.get("y", "value")).split(".")[-1], fontsize=8)
    ax.set_title(f"{est.n} {est.details.get('unit', 'unit')} units, 95% [{est.lo:.3g}, {est.hi:.3g}]", fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
