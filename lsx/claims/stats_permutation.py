"""Statistics for mode connectivity up to permutation (Entezari et al. 2022; Ainsworth et al. 2023;
Jordan et al. 2023), read from the ``permutation_barrier`` job's per-pair rows (``metrics.pairs``).

The independent unit is a *pair of optima* (its two training seeds): with ``pairs: disjoint`` no two
pairs of a job share a trained model. The same seed pair at another width is another pair of models
trained from the same seeds; a width comparison pairs them (one value per seed pair). Every interval
is :func:`lsx.claims.inference.unit_interval` over those per-pair values; pairs that share an optimum
(``pairs: all``) are refused, since they are not independent.

- ``perm_barrier``: one variant's barrier (e.g. the weight-matched test-error barrier) per pair.
- ``perm_barrier_ratio``: barrier(num) / barrier(den) per pair (e.g. weight / naive; weight_repair / weight).
- ``perm_width_trend``: log(barrier at the widest width / barrier at the narrowest) per seed pair.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from .inference import MIN_UNITS, describe, unit_interval
from .records import JobRecord
from .statistics import Estimate, InsufficientData, register_statistic, register_statistic_plot, same_value


def _selected(jobs: Sequence[JobRecord], where: dict[str, Any] | None) -> list[JobRecord]:
    sel = [j for j in jobs if all(same_value(j.get(k), v) for k, v in (where or {}).items())]
    if not sel:
        raise InsufficientData(f"no permutation_barrier job matches {where}")
    return sel


def _rows(job: JobRecord, variant: str) -> dict[tuple[int, ...], dict[str, Any]]:
    """The job's rows of ``variant`` keyed by the pair's seeds; pairs sharing an optimum are refused."""
    rows = job.get("metrics.pairs")
    if not rows:
        raise InsufficientData(f"job {job.job_dir.name} has no per-pair rows (metrics.pairs)")
    chosen = {tuple(r["seeds"]): r for r in rows if r["variant"] == variant}
    if not chosen:
        have = sorted({r["variant"] for r in rows})
        raise InsufficientData(f"job {job.job_dir.name} has no variant {variant!r}; it has {', '.join(have)}")
    seeds = [s for p in chosen for s in p]
    if len(seeds) != len(set(seeds)):
        raise InsufficientData(f"job {job.job_dir.name}: pairs share optima (pairs=all); the claims need pairs=disjoint")
    return chosen


def _interval(values: dict[Any, float], test: str, what: str) -> tuple[float, float, float]:
    finite = {u: v for u, v in values.items() if math.isfinite(v)}
    if len(finite) < 2:
        raise InsufficientData(f"{len(finite)} pair(s) with a finite {what}; an interval needs more")
    return unit_interval(list(finite.values()), test)


def _unit_label(seeds: tuple[int, ...], job: JobRecord, multi: bool) -> str:
    tag = "-".join(map(str, seeds))
    return f"{tag} ({job.job_dir.name})" if multi else tag


@register_statistic("perm_barrier")
def perm_barrier(
    jobs: Sequence[JobRecord],
    variant: str,
    y: str = "barrier_test_error",
    test: str = "sign",
    where: dict[str, Any] | None = None,
) -> Estimate:
    """``y`` of ``variant`` per pair, over every pair of the selected jobs (each job its own optima)."""
    sel = _selected(jobs, where)
    values, table = {}, []
    for j in sel:
        for seeds, r in _rows(j, variant).items():
            u = _unit_label(seeds, j, len(sel) > 1)
            values[u] = float(r[y])
            table.append({"pair": u, variant: r[y], "train_loss_a": r.get("train_loss_a"), "train_loss_b": r.get("train_loss_b")})
    c, lo, hi = _interval(values, test, y)
    return Estimate(
        c,
        lo,
        hi,
        len(values),
        f"{y} of {variant}: " + describe(test, len(values), "pair of optima"),
        {"variant": variant, "y": y, "where": where or {}, "min_units": MIN_UNITS},
        table,
    )


@register_statistic("perm_barrier_ratio")
def perm_barrier_ratio(
    jobs: Sequence[JobRecord],
    num: str,
    den: str,
    y: str = "barrier_train_loss",
    test: str = "sign",
    where: dict[str, Any] | None = None,
) -> Estimate:
    """barrier(``num``) / barrier(``den``) per pair; pairs whose ``den`` barrier is not positive are dropped (listed)."""
    sel = _selected(jobs, where)
    values, table, dropped = {}, [], []
    for j in sel:
        rn, rd = _rows(j, num), _rows(j, den)
        for seeds in rn:
            u = _unit_label(seeds, j, len(sel) > 1)
            b_num, b_den = float(rn[seeds][y]), float(rd[seeds][y])
            if not b_den > 0:
                dropped.append(u)
                continue
            values[u] = b_num / b_den
            table.append({"pair": u, num: b_num, den: b_den, "ratio": values[u], "train_loss_a": rn[seeds].get("train_loss_a")})
    c, lo, hi = _interval(values, test, f"{y} ratio")
    return Estimate(
        c,
        lo,
        hi,
        len(values),
        f"{y} {num}/{den}: " + describe(test, len(values), "pair of optima"),
        {"num": num, "den": den, "y": y, "where": where or {}, "dropped_nonpositive_den": dropped},
        table,
    )


def width_series(
    jobs: Sequence[JobRecord], variant: str, y: str, where: dict[str, Any] | None, key: str = "model.width"
) -> dict[tuple[int, ...], dict[float, float]]:
    """Seed pair → {width: barrier} over the selected jobs (one job per width)."""
    out: dict[tuple[int, ...], dict[float, float]] = {}
    for j in _selected(jobs, where):
        w = float(j.get(key))
        for seeds, r in _rows(j, variant).items():
            if w in out.setdefault(seeds, {}):
                raise InsufficientData(f"two jobs for seed pair {seeds} at {key}={w}; select one with 'where'")
            out[seeds][w] = float(r[y])
    return out


@register_statistic("perm_width_trend")
def perm_width_trend(
    jobs: Sequence[JobRecord],
    variant: str = "naive",
    y: str = "barrier_train_loss",
    test: str = "t",
    where: dict[str, Any] | None = None,
    key: str = "model.width",
) -> Estimate:
    """log(barrier at the widest ``key`` / barrier at the narrowest) per seed pair (< 0: falls with width)."""
    series = width_series(jobs, variant, y, where, key)
    widths = sorted({w for s in series.values() for w in s})
    if len(widths) < 2:
        raise InsufficientData(f"one {key} value only ({widths}); the trend needs two or more")
    lo_w, hi_w = widths[0], widths[-1]
    values, table = {}, []
    for seeds, s in sorted(series.items()):
        row = {"pair": "-".join(map(str, seeds)), **{f"{key}={w:g}": s.get(w) for w in widths}}
        if lo_w in s and hi_w in s and s[lo_w] > 0 and s[hi_w] > 0:
            values[row["pair"]] = math.log(s[hi_w] / s[lo_w])
            row["log_ratio"] = values[row["pair"]]
        table.append(row)
    c, lo, hi = _interval(values, test, "log barrier ratio")
    return Estimate(
        c,
        lo,
        hi,
        len(values),
        f"log({y} of {variant} at {key}={hi_w:g} / at {lo_w:g}): " + describe(test, len(values), "seed pair"),
        {"variant": variant, "y": y, "widths": widths, "where": where or {}},
        table,
    )


@register_statistic_plot("perm_width_trend")
def plot_width_trend(
    jobs: Sequence[JobRecord],
    est: Estimate,
    path: Path,
    variant: str = "naive",
    y: str = "barrier_train_loss",
    where: dict[str, Any] | None = None,
    key: str = "model.width",
    **_: Any,
) -> Path:
    """Barrier against width: one thin line per seed pair and the median, for naive and every aligned variant."""
    from lsx.plots.common import new_figure, save_figure
    from lsx.plots.permutation import draw_barrier_lines

    fig, ax = new_figure(figsize=(5.5, 3.8))
    variants = sorted({r["variant"] for j in _selected(jobs, where) for r in j.get("metrics.pairs") or []})
    draw_barrier_lines(ax, {v: width_series(jobs, v, y, where, key) for v in [variant] + [x for x in variants if x != variant]})
    ax.set(xlabel=key, ylabel=y.replace("_", " "), title=f"barrier vs width {where or ''}")
    ax.legend(fontsize=7)
    return save_figure(fig, path)
