"""Statistics a claim can name, and the generic ones: ``spearman``, ``mean``, ``difference``, ``ratio``.

A statistic maps the finished jobs of a preset to an :class:`Estimate` (value, 95% interval, n
independent units). It computes ONE value per independent unit (the training seed unless a claim's
``args.unit`` names another key: an analysis seed, or a disjoint set of optima) and takes its interval
from :func:`lsx.claims.inference.unit_interval` (``interval: t`` or ``sign``), never from jobs that
share one trained model and never from a percentile bootstrap over a handful of units. Trends are
computed within each unit and then combined (:func:`trends_per_unit`). docs/statistics.md lists each
statistic's interval and its simulated error rates.
Per-paper statistics live in ``lsx/claims/stats_<paper>.py``; every such module is imported when a
statistic is looked up, so adding one needs no edit here.

Two ways a statistic may fail: :class:`InsufficientData` (and :class:`~lsx.claims.records.MissingKey`)
make the claim ``inconclusive`` with the reason; ``ValueError`` means the claim itself is malformed.
"""

from __future__ import annotations

import importlib
import logging
import math
import pkgutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .inference import LEVEL, check_test, describe, t_interval, unit_interval  # noqa: F401  (t_interval: paper modules use it)
from .records import JobRecord

log = logging.getLogger("lsx.claims")


class InsufficientData(Exception):
    """The jobs cannot support an estimate (one x value, an empty group, ...): the verdict is inconclusive."""


@dataclass
class Estimate:
    value: float
    lo: float
    hi: float
    n: int
    method: str
    details: dict[str, Any] = field(default_factory=dict)
    table: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}


StatisticFn = Callable[..., Estimate]
PlotFn = Callable[..., Path]  # plot(jobs, estimate, path, **args) -> path of a PNG
_STATISTICS: dict[str, StatisticFn] = {}
_PLOTS: dict[str, PlotFn] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
_plugins_loaded = False


def register_statistic(name: str, plot: PlotFn | None = None) -> Callable[[StatisticFn], StatisticFn]:
    """Decorator: ``@register_statistic("name")`` on ``fn(jobs, **args) -> Estimate``; ``plot`` optionally
    draws the statistic for the report (``plot(jobs, estimate, path, **args) -> path``)."""

    def deco(fn: StatisticFn) -> StatisticFn:
        _STATISTICS[name] = fn
        if plot is not None:
            _PLOTS[name] = plot
        return fn

    return deco


def register_statistic_plot(name: str) -> Callable[[PlotFn], PlotFn]:
    """Decorator: the report figure of statistic ``name`` (``fn(jobs, estimate, path, **args) -> path``)."""

    def deco(fn: PlotFn) -> PlotFn:
        _PLOTS[name] = fn
        return fn

    return deco


def load_plugins() -> None:
    """Import every ``lsx/claims/stats_*.py`` once; a module that fails to import is reported, not fatal."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("stats_"):
            try:
                importlib.import_module(f"{__package__}.{info.name}")
            except Exception as err:  # one broken paper module must not hide every other claim
                _PLUGIN_ERRORS[info.name] = f"{type(err).__name__}: {err}"
                log.warning("could not import lsx.claims.%s: %s", info.name, _PLUGIN_ERRORS[info.name])


def statistic_names() -> list[str]:
    load_plugins()
    return sorted(_STATISTICS)


def get_statistic(name: str) -> StatisticFn:
    load_plugins()
    if name not in _STATISTICS:
        broken = f" (modules that failed to import: {_PLUGIN_ERRORS})" if _PLUGIN_ERRORS else ""
        raise ValueError(f"unknown statistic {name!r}; valid statistics: {', '.join(sorted(_STATISTICS))}{broken}")
    return _STATISTICS[name]


def get_statistic_plot(name: str) -> PlotFn | None:
    load_plugins()
    return _PLOTS.get(name)


# ----------------------------------------------------------------------------- helpers for statistics
def same_value(a: Any, b: Any) -> bool:
    """Config values compared as a preset author means them: 1e-3 == 0.001, [0, 1] == (0, 1)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or str(a).lower() == str(b).lower()
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return str(a) == str(b)


def unit_of(job: JobRecord, unit: str = "seed") -> Any:
    """The independent unit a job belongs to (default its training seed); lists become tuples."""
    v = job.get(unit)
    return tuple(v) if isinstance(v, list) else v


def per_unit_means(jobs: Sequence[JobRecord], y: str, unit: str = "seed") -> dict[Any, float]:
    """Mean of ``y`` per unit: several jobs of one seed (e.g. direction seeds) count once."""
    acc: dict[Any, list[float]] = {}
    for j in jobs:
        acc.setdefault(unit_of(j, unit), []).append(float(j.get(y)))
    return {u: math.fsum(v) / len(v) for u, v in sorted(acc.items(), key=lambda kv: str(kv[0]))}


def group_rows(jobs: Sequence[JobRecord], key: str, y: str, unit: str = "seed") -> list[dict[str, Any]]:
    """Report rows per value of ``key``: mean ± sd of ``y`` over units, n, and the mean final
    train loss / test accuracy of the optima behind them (what a matched comparison must show)."""
    groups: dict[str, list[JobRecord]] = {}
    values: dict[str, Any] = {}
    for j in jobs:
        v = j.get(key)
        k = _label(v)
        groups.setdefault(k, []).append(j)
        values[k] = v
    rows = []
    for k in sorted(groups, key=lambda s: _sort_key(values[s])):
        units = per_unit_means(groups[k], y, unit)
        v = np.asarray(list(units.values()))
        rows.append(
            {
                key: values[k],
                "mean": float(v.mean()),
                "sd": float(v.std(ddof=1)) if v.size > 1 else None,
                "n": int(v.size),
                "train_loss": _mean_training(groups[k], "train_loss"),
                "test_acc": _mean_training(groups[k], "test_acc"),
            }
        )
    return rows


def _mean_training(jobs: Sequence[JobRecord], fld: str) -> float | None:
    v = [t[fld] for j in jobs for t in j.training if t.get(fld) is not None]
    return float(np.mean(v)) if v else None


def _label(v: Any) -> str:
    return str(list(v) if isinstance(v, tuple) else v)


def _sort_key(v: Any) -> tuple:
    try:
        return (0, float(v), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(v))


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite_or_none(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite_or_none(x) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return _finite_or_none(v.item())
    return v


def _select(jobs: Sequence[JobRecord], key: str, value: Any) -> list[JobRecord]:
    return [j for j in jobs if same_value(j.get(key), value)]


# ----------------------------------------------------------------------------- trends within units
def average_ranks(values: Sequence[float]) -> list[float]:
    """Ranks 1..n of finite values, ties given their average rank (scipy's ``rankdata``). Plain Python:
    a unit's curve has a handful of points, where numpy's per-call overhead dominates (the
    calibration tests rank tens of thousands of them)."""
    v = list(values)
    order = sorted(range(len(v)), key=v.__getitem__)
    ranks = [0.0] * len(v)
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ of finite values (Pearson correlation of average ranks); NaN when x or y takes
    fewer than 2 distinct values."""
    xs, ys = [float(v) for v in x], [float(v) for v in y]
    if len(xs) != len(ys):
        raise ValueError(f"rank_correlation needs as many x as y values; got {len(xs)} and {len(ys)}")
    if len(set(xs)) < 2 or len(set(ys)) < 2:
        return math.nan
    rx, ry = average_ranks(xs), average_ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def trends_per_unit(points: Sequence[tuple[Any, float, float]]) -> tuple[dict[Any, float], dict[str, str]]:
    """ρ of y with x WITHIN each unit from ``(unit, x, y)`` points, and the units that have none.

    Points of one unit at the same x (e.g. direction seeds of one optimum) are averaged first, so a
    unit is one curve. Why never pool across units: a seed's offset then blurs the trend, and with
    the same x values in every unit the ties cap ρ below 1 (0.896 for 3 seeds × 3 values)."""
    acc: dict[Any, dict[float, list[float]]] = {}
    for u, xv, yv in points:
        acc.setdefault(u, {}).setdefault(float(xv), []).append(float(yv))
    rho, dropped = {}, {}
    for u in sorted(acc, key=str):
        xs = sorted(acc[u])
        r = rank_correlation(xs, [math.fsum(acc[u][v]) / len(acc[u][v]) for v in xs])
        if math.isfinite(r):
            rho[u] = r
        else:
            why = f"{len(xs)} value(s) of x" if len(xs) < 2 else "y is constant over x"
            dropped[str(u)] = f"{why}: no trend within the unit"
    return rho, dropped


def trend_estimate(
    points: Sequence[tuple[Any, float, float]],
    unit: str,
    interval: str,
    what: str,
    details: dict[str, Any],
    table: list[dict[str, Any]],
) -> Estimate:
    """Per-unit ρ (:func:`trends_per_unit`) combined over units by :func:`~lsx.claims.inference.unit_interval`."""
    check_test(interval)
    rho, dropped = trends_per_unit(points)
    if not rho:
        raise InsufficientData(
            f"no {unit} has a trend of its own ({'; '.join(f'{u}: {r}' for u, r in dropped.items())}); "
            "a trend is computed within each unit, never pooled across units"
        )
    centre, lo, hi = unit_interval(list(rho.values()), interval)
    method = f"Spearman ρ of {what} within each {unit}, then the {describe(interval, len(rho), unit)}"
    if dropped:
        method += f" ({len(dropped)} {unit}(s) without a trend dropped)"
    return Estimate(
        centre,
        lo,
        hi,
        len(rho),
        method,
        details | {"unit": unit, "interval": interval, "per_unit": {str(u): v for u, v in rho.items()}, "dropped_units": dropped},
        table,
    )


# ----------------------------------------------------------------------------- generic statistics
@register_statistic("spearman")
def spearman(jobs: Sequence[JobRecord], x: str, y: str, log_x: bool = False, unit: str = "seed", interval: str = "t") -> Estimate:
    """Spearman ρ of ``y`` with ``x`` within each unit (a training seed by default), combined over units.

    ``interval: t`` (default): mean ρ with a Student-t interval. Under the null (y independent of x
    within a unit) each unit's ρ is exactly symmetric about 0 and bounded, where the t interval keeps
    its level at 6–12 units, and it weighs each ρ's size, so one tied or reversed unit does not decide
    alone. ``interval: sign``: the median ρ's order-statistic interval (at 6–8 units it needs every
    unit on one side: less power, shown in docs/statistics.md). ``log_x`` only changes the plot."""
    pts = [(unit_of(j, unit), float(j.get(x)), float(j.get(y))) for j in jobs]
    if len({p[1] for p in pts}) < 2:
        raise InsufficientData(f"spearman needs at least 2 values of {x}; the jobs have {sorted({p[1] for p in pts})}")
    return trend_estimate(
        pts,
        unit,
        interval,
        f"{y} with {x}",
        {"x": x, "y": y, "log_x": bool(log_x), "n_jobs": len(pts)},
        group_rows(jobs, x, y, unit),
    )


@register_statistic("mean")
def mean(jobs: Sequence[JobRecord], y: str, unit: str = "seed", interval: str = "t") -> Estimate:
    """Mean of ``y`` over units (jobs of one unit averaged first).

    ``interval: t`` (default): a smooth metric averaged within a seed is close to normal over seeds,
    and the t interval then has the most power. ``interval: sign``: the median's distribution-free
    interval, for a metric with outliers or a floor/ceiling (needs ≥ 6 units; at 6–8 every unit must
    lie beyond the bound)."""
    units = per_unit_means(jobs, y, unit)
    m, lo, hi = unit_interval(list(units.values()), check_test(interval))
    table = [
        {
            unit: u,
            "mean": v,
            "n_jobs": sum(1 for j in jobs if unit_of(j, unit) == u),
            "train_loss": _mean_training([j for j in jobs if unit_of(j, unit) == u], "train_loss"),
            "test_acc": _mean_training([j for j in jobs if unit_of(j, unit) == u], "test_acc"),
        }
        for u, v in units.items()
    ]
    return Estimate(
        m,
        lo,
        hi,
        len(units),
        describe(interval, len(units), unit),
        details={"y": y, "unit": unit, "interval": interval, "per_unit": {str(u): v for u, v in units.items()}},
        table=table,
    )


def _two_groups(jobs: Sequence[JobRecord], key: str, a: Any, b: Any, y: str, unit: str):
    ga, gb = _select(jobs, key, a), _select(jobs, key, b)
    for name, g, v in (("a", ga, a), ("b", gb, b)):
        if not g:
            present = sorted({_label(j.get(key)) for j in jobs})
            raise InsufficientData(f"no finished job has {key}={v} (group {name}); values present: {', '.join(present)}")
    return per_unit_means(ga, y, unit), per_unit_means(gb, y, unit)


def _unpaired_sign(interval: str, n_paired: int, unit: str) -> None:
    if interval == "sign":
        raise InsufficientData(
            f"interval: sign needs units in both groups; {n_paired} {unit}(s) are (use interval: t for "
            "Welch's unpaired interval)"
        )


def _two_group_details(key: str, a: Any, b: Any, y: str, unit: str, interval: str, ua: dict, ub: dict) -> dict[str, Any]:
    """What a two-group comparison records beside its estimate (the groups' means over units)."""
    return {
        "key": key,
        "a": a,
        "b": b,
        "y": y,
        "unit": unit,
        "interval": interval,
        "mean_a": float(np.mean(list(ua.values()))),
        "mean_b": float(np.mean(list(ub.values()))),
    }


@register_statistic("difference")
def difference(jobs: Sequence[JobRecord], key: str, a: Any, b: Any, y: str, unit: str = "seed", interval: str = "t") -> Estimate:
    """mean(y | key=a) − mean(y | key=b), paired per unit: one difference per unit present in both
    groups (at least 2), else Welch's unpaired interval.

    ``interval: t`` (default) on the per-unit differences: a difference of two smooth metrics of
    runs that share a seed is close to normal, and the simulated nulls keep the t interval at its
    level (docs/statistics.md). ``interval: sign``: the median difference, distribution-free."""
    check_test(interval)
    ua, ub = _two_groups(jobs, key, a, b, y, unit)
    paired = [u for u in ua if u in ub]
    details = _two_group_details(key, a, b, y, unit, interval, ua, ub)
    table = group_rows(_select(jobs, key, a) + _select(jobs, key, b), key, y, unit)
    if len(paired) >= 2:
        d = [ua[u] - ub[u] for u in paired]
        m, lo, hi = unit_interval(d, interval)
        return Estimate(
            m,
            lo,
            hi,
            len(paired),
            f"paired difference per {unit}: {describe(interval, len(paired), unit)}",
            details | {"paired": True, "per_unit": {str(u): v for u, v in zip(paired, d)}},
            table,
        )
    _unpaired_sign(interval, len(paired), unit)
    m, lo, hi, n = _welch(list(ua.values()), list(ub.values()))
    return Estimate(
        m,
        lo,
        hi,
        n,
        f"unpaired difference of means over {len(ua)} and {len(ub)} {unit}s, Welch interval",
        details | {"paired": False},
        table,
    )


def _welch(a: list[float], b: list[float]) -> tuple[float, float, float, int]:
    from scipy import stats

    va, vb = np.asarray(a, float), np.asarray(b, float)
    m = float(va.mean() - vb.mean())
    n = min(va.size, vb.size)
    if n < 2:
        return m, math.nan, math.nan, n
    sa, sb = va.var(ddof=1) / va.size, vb.var(ddof=1) / vb.size
    se = math.sqrt(sa + sb)
    if se == 0:
        return m, m, m, n
    df = (sa + sb) ** 2 / (sa**2 / (va.size - 1) + sb**2 / (vb.size - 1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df) * se)
    return m, m - half, m + half, n


@register_statistic("ratio")
def ratio(jobs: Sequence[JobRecord], key: str, a: Any, b: Any, y: str, unit: str = "seed", interval: str = "t") -> Estimate:
    """mean(y | key=a) / mean(y | key=b), paired per unit: one log-ratio per unit present in both
    groups (at least 2); unpaired: the ratio of means with a delta-method interval on its log. Needs
    positive values.

    ``interval: t`` (default) on the per-unit log-ratios (value: their geometric mean): sharpness-like
    metrics vary by factors, so their logs are close to normal. ``interval: sign``: the median ratio."""
    check_test(interval)
    ua, ub = _two_groups(jobs, key, a, b, y, unit)
    if min(list(ua.values()) + list(ub.values())) <= 0:
        raise InsufficientData(f"ratio needs positive {y}; got values ≤ 0 (use statistic: difference)")
    paired = [u for u in ua if u in ub]
    details = _two_group_details(key, a, b, y, unit, interval, ua, ub)
    table = group_rows(_select(jobs, key, a) + _select(jobs, key, b), key, y, unit)
    if len(paired) >= 2:
        logs = [math.log(ua[u] / ub[u]) for u in paired]
        m, lo, hi = unit_interval(logs, interval)
        return Estimate(
            math.exp(m),
            math.exp(lo),
            math.exp(hi),
            len(paired),
            f"paired log-ratio per {unit}: {describe(interval, len(paired), unit)}, exponentiated",
            details | {"paired": True, "per_unit": {str(u): math.exp(v) for u, v in zip(paired, logs)}},
            table,
        )
    _unpaired_sign(interval, len(paired), unit)
    va, vb = np.asarray(list(ua.values())), np.asarray(list(ub.values()))
    r = float(va.mean() / vb.mean())
    n = min(va.size, vb.size)
    if n < 2:
        return Estimate(
            r, math.nan, math.nan, n, "ratio of means (too few units for an interval)", details | {"paired": False}, table
        )
    from scipy import stats

    se = math.sqrt(va.var(ddof=1) / (va.size * va.mean() ** 2) + vb.var(ddof=1) / (vb.size * vb.mean() ** 2))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1) * se)
    return Estimate(
        r,
        r * math.exp(-half),
        r * math.exp(half),
        n,
        "ratio of means, delta-method interval on the log",
        details | {"paired": False},
        table,
    )


# ----------------------------------------------------------------------------- their report plots
@register_statistic_plot("spearman")
def _plot_spearman(
    jobs: Sequence[JobRecord], est: Estimate, path: Path, x: str, y: str, log_x: bool = False, unit: str = "seed", **_: Any
) -> Path:
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
    units = sorted({unit_of(j, unit) for j in jobs}, key=str)
    for u in units:
        pts = sorted((float(j.get(x)), float(j.get(y))) for j in jobs if unit_of(j, unit) == u)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", alpha=0.6, ms=4, label=f"{unit} {_label(u)}")
    rows = est.table
    if rows:
        ax.plot([r[x] for r in rows], [r["mean"] for r in rows], "k-", lw=2, label="mean")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"ρ = {est.value:.2f} [{est.lo:.2f}, {est.hi:.2f}], n = {est.n} {unit}s", fontsize=9)
    if len(units) <= 10:
        ax.legend(fontsize=7)
    return save_figure(fig, path)


@register_statistic_plot("mean")
def _plot_mean(jobs: Sequence[JobRecord], est: Estimate, path: Path, y: str, unit: str = "seed", **_: Any) -> Path:
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    fig, ax = plt.subplots(figsize=(4, 3.4), layout="constrained")
    vals = [r["mean"] for r in est.table]
    ax.plot(np.zeros(len(vals)), vals, "o", alpha=0.7, label=f"per {unit}")
    if math.isfinite(est.lo):
        ax.errorbar(
            [0.25], [est.value], yerr=[[est.value - est.lo], [est.hi - est.value]], fmt="ks", capsize=4, label="mean, 95% CI"
        )
    ax.set_xlim(-0.5, 0.75)
    ax.set_xticks([])
    ax.set_ylabel(y)
    ax.set_title(f"mean = {est.value:.3g}, n = {est.n} {unit}s", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _plot_two_groups(
    jobs: Sequence[JobRecord], est: Estimate, path: Path, key: str, a: Any, b: Any, y: str, unit: str = "seed", **_: Any
) -> Path:
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    ua = per_unit_means(_select(jobs, key, a), y, unit)
    ub = per_unit_means(_select(jobs, key, b), y, unit)
    fig, ax = plt.subplots(figsize=(4, 3.4), layout="constrained")
    for u in sorted(set(ua) | set(ub), key=str):
        xs = [i for i, g in enumerate((ua, ub)) if u in g]
        ax.plot(xs, [(ua, ub)[i][u] for i in xs], "o-", color="0.5", alpha=0.7)
    ax.set_xticks([0, 1], [f"{key}={a}", f"{key}={b}"], fontsize=8)
    ax.set_xlim(-0.4, 1.4)
    ax.set_ylabel(y)
    ax.set_title(f"{est.value:.3g} [{est.lo:.3g}, {est.hi:.3g}], n = {est.n}", fontsize=9)
    return save_figure(fig, path)


register_statistic_plot("difference")(_plot_two_groups)
register_statistic_plot("ratio")(_plot_two_groups)
