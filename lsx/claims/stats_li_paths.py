"""Statistics for Li et al. 2018 claims decided per independent unit (a training seed by default).

Every one computes ONE value per unit and its interval with :func:`lsx.claims.inference.unit_interval`
(``test: sign`` — the exact order-statistic interval for the median, NaN below 6 units — or ``t``):

- ``li_sign_flip_units`` (Figs. 2–3): per unit, min(y' at ``key=a``, −y' at ``key=b``) with y' = log y:
  positive iff that unit shows both signs as claimed (the weight-norm and apparent-sharpness flips);
- ``li_unit_value`` (Sec. 7.2 / Fig. 9, Sec. 7.1): a per-unit metric, e.g. the trajectory's variance in
  two PCA components, or log10 of the PCA plane's share over a random plane's share;
- ``li_paired`` (Figs. 4–5, Table 1): per unit, y at ``key=a`` against y at ``key=b`` (a log ratio, or
  a difference) within one panel (``where``: e.g. one optimizer and weight decay), so "all four
  panels" is decided panel by panel instead of averaged over them; ``max_train_loss`` keeps only
  units whose compared optima both reached the training target;
- ``li_flatness_tracks_error`` (Sec. 6.6, Fig. 7): per unit, Spearman ρ across architectures between
  the surface's loss rise around the optimum (flatness) and the test error.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from lsx.claims.inference import describe, finite_units, unit_interval
from lsx.claims.records import JobRecord
from lsx.claims.statistics import Estimate, InsufficientData, register_statistic, same_value, unit_of

_OPS = ("log_ratio", "difference")


def _where(jobs: Sequence[JobRecord], where: dict[str, Any] | None) -> list[JobRecord]:
    return [j for j in jobs if all(same_value(j.get(k, None), v) for k, v in (where or {}).items())]


def _worst_train_loss(job: JobRecord, key: str = "training.train_loss") -> float:
    """The job's final train loss: its worst optimum's (``training.train_loss``, eval-mode BN) or a metric."""
    if key == "training.train_loss":
        return max((float(t.get("train_loss", math.inf)) for t in job.training), default=math.inf)
    return float(job.get(key))


def _interval(per_unit: dict[Any, float], test: str, unit: str, what: str, back=None) -> tuple[float, float, float, str]:
    c, lo, hi = unit_interval(list(per_unit.values()), test)
    if back is not None:
        c, lo, hi = (back(v) if math.isfinite(v) else v for v in (c, lo, hi))
    return c, lo, hi, f"{what}: {describe(test, len(per_unit), unit)}"


@register_statistic("li_unit_value")
def li_unit_value(
    jobs: Sequence[JobRecord], y: str, test: str = "sign", unit: str = "seed", where: dict[str, Any] | None = None
) -> Estimate:
    """The per-unit value of ``y`` (jobs of one unit averaged) and its interval over units."""
    sel = _where(jobs, where)
    acc: dict[Any, list[float]] = {}
    for j in sel:
        acc.setdefault(unit_of(j, unit), []).append(float(j.get(y)))
    per_unit = finite_units({u: float(np.mean(v)) for u, v in acc.items()})
    if not per_unit:
        raise InsufficientData(f"no job with a finite {y}" + (f" where {where}" if where else ""))
    c, lo, hi, method = _interval(per_unit, test, unit, y)
    table = [{unit: u, y: v, "n_jobs": len(acc[u])} for u, v in sorted(per_unit.items(), key=lambda kv: str(kv[0]))]
    return Estimate(
        c,
        lo,
        hi,
        len(per_unit),
        method,
        {"y": y, "test": test, "unit": unit, "where": where or {}, "dropped_units": sorted(map(str, set(acc) - set(per_unit)))},
        table,
    )


@register_statistic("li_paired")
def li_paired(
    jobs: Sequence[JobRecord],
    key: str,
    a: Any,
    b: Any,
    y: str,
    op: str = "log_ratio",
    test: str = "sign",
    unit: str = "seed",
    where: dict[str, Any] | None = None,
    max_train_loss: float | None = None,
    train_loss_key: str = "training.train_loss",
) -> Estimate:
    """Per unit: y(key=a) vs y(key=b) within ``where``; ``op``: ``log_ratio`` (the per-unit log ratio; the
    centre and interval are reported back on the ratio scale) or ``difference``. Units whose optima did not reach
    ``max_train_loss`` (read from ``train_loss_key``, e.g. a job's loss with re-estimated BN statistics
    where running statistics lag) on either side are excluded and listed."""
    if op not in _OPS:
        raise ValueError(f"op={op!r}; valid: {', '.join(_OPS)}")
    sel = _where(jobs, where)
    sides: dict[str, dict[Any, list[float]]] = {"a": {}, "b": {}}
    untrained: dict[Any, str] = {}
    for j in sel:
        side = "a" if same_value(j.get(key, None), a) else "b" if same_value(j.get(key, None), b) else None
        if side is None:
            continue
        u = unit_of(j, unit)
        if max_train_loss is not None and _worst_train_loss(j, train_loss_key) > float(max_train_loss):
            worst = _worst_train_loss(j, train_loss_key)
            untrained[u] = f"{key}={j.get(key)}: {train_loss_key} {worst:.3g} > {float(max_train_loss):g}"
            continue
        sides[side].setdefault(u, []).append(float(j.get(y)))
    both = sorted((set(sides["a"]) & set(sides["b"])) - set(untrained), key=str)
    if not both:
        raise InsufficientData(
            f"no {unit} has trained jobs at both {key}={a!r} and {key}={b!r}"
            + (f" where {where}" if where else "")
            + (f"; untrained: {untrained}" if untrained else "")
        )
    ya = {u: float(np.mean(sides["a"][u])) for u in both}
    yb = {u: float(np.mean(sides["b"][u])) for u in both}
    if op == "difference":
        per_unit = {u: ya[u] - yb[u] for u in both}
        back, what = None, f"{y} at {key}={a} minus at {key}={b}"
    else:
        bad = [u for u in both if not (ya[u] > 0 and yb[u] > 0)]
        if bad:
            raise InsufficientData(f"{op} needs positive {y}; {unit}s {bad} have values <= 0")
        per_unit = {u: math.log(ya[u] / yb[u]) for u in both}
        back, what = math.exp, f"{y} at {key}={a} / at {key}={b} (median of per-{unit} ratios)"
    per_unit = finite_units(per_unit)
    c, lo, hi, method = _interval(per_unit, test, unit, what, back)
    table = [
        {unit: u, f"{key}={a}": ya[u], f"{key}={b}": yb[u], "value": (back(per_unit[u]) if back else per_unit[u])}
        for u in per_unit
    ]
    table += [{unit: u, "excluded": reason} for u, reason in untrained.items()]
    return Estimate(
        c,
        lo,
        hi,
        len(per_unit),
        method + (f" within {where}" if where else ""),
        {
            "key": key,
            "a": a,
            "b": b,
            "y": y,
            "op": op,
            "test": test,
            "unit": unit,
            "where": where or {},
            "max_train_loss": max_train_loss,
            "excluded": untrained,
        },
        table,
    )


@register_statistic("li_flatness_tracks_error")
def li_flatness_tracks_error(
    jobs: Sequence[JobRecord],
    x: str,
    radius: float = 0.5,
    metric: str = "train_loss",
    error: str = "training.test_acc",
    test: str = "sign",
    unit: str = "seed",
) -> Estimate:
    """Per unit: Spearman ρ, across the values of ``x`` (architectures), between the surface's mean loss
    rise within ``radius`` of the optimum (stats_surface.mean_rise: larger = sharper) and the test error
    (1 − ``error`` when ``error`` is an accuracy). ρ > 0: sharper minimizers have higher test error."""
    from scipy.stats import spearmanr

    from lsx.claims.stats_surface import _grid, mean_rise

    acc_like = error.endswith("acc")
    pts: dict[Any, list[tuple[float, float, float]]] = {}
    for j in jobs:
        gx, gy, z = _grid(j, metric)
        rise = mean_rise(gx, gy, z, radius)
        e = float(j.get(error))
        pts.setdefault(unit_of(j, unit), []).append((float(j.get(x)), rise, 1.0 - e if acc_like else e))
    per_unit: dict[Any, float] = {}
    for u, p in pts.items():
        rises, errs = np.array([q[1] for q in p]), np.array([q[2] for q in p])
        if len({q[0] for q in p}) < 3 or np.unique(rises).size < 2 or np.unique(errs).size < 2:
            continue  # a rank correlation over fewer than 3 architectures, or with a constant side, is undefined
        per_unit[u] = float(spearmanr(rises, errs).statistic)
    per_unit = finite_units(per_unit)
    if not per_unit:
        raise InsufficientData(f"no {unit} has 3 or more values of {x} with varying rise and test error")
    what = f"within-{unit} Spearman ρ(loss rise within {radius}, test error) over {x}"
    c, lo, hi, method = _interval(per_unit, test, unit, what)
    table = [{unit: u, "rho": per_unit[u], "points": sorted(pts[u])} for u in per_unit]
    return Estimate(
        c,
        lo,
        hi,
        len(per_unit),
        method,
        {
            "x": x,
            "radius": radius,
            "metric": metric,
            "error": error,
            "test": test,
            "unit": unit,
            "skipped_units": sorted(map(str, set(pts) - set(per_unit))),
        },
        table,
    )


@register_statistic("li_sign_flip_units")
def li_sign_flip_units(
    jobs: Sequence[JobRecord], key: str, a: Any, b: Any, y: str, log: bool = True, test: str = "sign", unit: str = "seed"
) -> Estimate:
    """Per unit: min(y'(key=a), −y'(key=b)), y' = log(y) with ``log``; > 0 iff the unit has y' > 0 at a and < 0 at b."""
    vals: dict[str, dict[Any, list[float]]] = {"a": {}, "b": {}}
    for j in jobs:
        side = "a" if same_value(j.get(key, None), a) else "b" if same_value(j.get(key, None), b) else None
        if side is None:
            continue
        v = float(j.get(y))
        if log:
            if not v > 0:
                raise InsufficientData(f"{y}={v} in job {j.job_dir.name} is not positive; its log is undefined")
            v = math.log(v)
        vals[side].setdefault(unit_of(j, unit), []).append(v)
    both = sorted(set(vals["a"]) & set(vals["b"]), key=str)
    if not both:
        raise InsufficientData(f"no {unit} has jobs at both {key}={a!r} and {key}={b!r}")
    ya = {u: float(np.mean(vals["a"][u])) for u in both}
    yb = {u: float(np.mean(vals["b"][u])) for u in both}
    per_unit = finite_units({u: min(ya[u], -yb[u]) for u in both})
    yname = f"log {y}" if log else y
    c, lo, hi, method = _interval(per_unit, test, unit, f"per-{unit} min({yname} at {key}={a}, −{yname} at {key}={b})")
    table = [{unit: u, f"{yname} at {a}": ya[u], f"{yname} at {b}": yb[u], "value": per_unit[u]} for u in per_unit]
    return Estimate(
        c,
        lo,
        hi,
        len(per_unit),
        method,
        {
            "key": key,
            "a": a,
            "b": b,
            "y": y,
            "log": log,
            "test": test,
            "unit": unit,
            "unpaired_units": sorted(map(str, (set(vals["a"]) | set(vals["b"])) - set(both))),
        },
        table,
    )
