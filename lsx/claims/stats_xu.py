"""Statistics of Xu et al.'s curve taxonomy, mining and Sec. 3 theory (presets ``xu_taxonomy``, ``xu_resnet32``).

Every statistic computes ONE value per independent unit — the training seed: a job's curves, mined
directions and spectra all share its trained model — and takes its 95% interval from
:func:`lsx.claims.inference.unit_interval` (``sign``: exact order-statistic interval for the median unit;
``t``: Student-t for the mean). With fewer than ``MIN_UNITS`` units holding a defined value the claim is
inconclusive.

- ``xu_curve_kind``: per seed, the fraction of its curves (of one direction kind, or mined by one algorithm)
  that the classifier puts in the paper's type. With ``alt`` (the job's ``alt_types_<kind>``: the types one
  grid step or the extremum filter would give) a seed whose membership moves under either has no value:
  a type decided by one grid step or a numeric filter is inconclusive by rule.
- ``xu_gmi_ratio``: per seed, log(measured E[δL] / ½σ²tr(H)) at one σ; t-interval, reported as a ratio.
- ``xu_per_unit``: per seed, one metric of its job (a list reduced by ``reduce``), e.g. the cosine scale
  ratio, a Spearman trend over epochs, a stationary-point count.
Jobs of other analyses in the same preset are ignored (selected by ``analysis.job``).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .figures import register_figure
from .inference import MIN_UNITS, TESTS, describe, finite_units, unit_interval
from .records import JobRecord, MissingKey
from .statistics import Estimate, InsufficientData, register_statistic, register_statistic_plot

TYPE_ORDER = ("v-basin", "v-side", "w-basin", "w-peak", "vvv-basin", "other")
REDUCERS: dict[str, Callable[[np.ndarray], float]] = {"mean": np.mean, "median": np.median, "max": np.max, "min": np.min}


def _of_job(jobs: Sequence[JobRecord], job: str) -> list[JobRecord]:
    def name(j: JobRecord) -> str:
        return str(getattr(j, "job", "") or (j.config.get("analysis") or {}).get("job", ""))

    return [j for j in jobs if name(j) == job]


def _as_types(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]


def _train_loss(j: JobRecord) -> float | None:
    try:
        return float(j.get("training.train_loss"))
    except (MissingKey, TypeError, ValueError):
        return None


def _mine(jobs: Sequence[JobRecord], job: str) -> list[JobRecord]:
    mine = _of_job(jobs, job)
    if not mine:
        raise InsufficientData(f"no finished {job!r} job among the preset's {len(jobs)} jobs")
    return sorted(mine, key=lambda j: j.seed)


def unit_estimate(
    per_unit: dict[Any, float],
    test: str,
    what: str,
    table: list[dict[str, Any]],
    details: dict[str, Any] | None = None,
    why_undefined: str = "undefined",
) -> Estimate:
    """The Estimate over the units with a finite value (``test`` interval); fewer than MIN_UNITS → inconclusive."""
    if test not in TESTS:
        raise ValueError(f"unknown interval test {test!r}; valid: {', '.join(TESTS)}")
    ok = finite_units(per_unit)
    dropped = sorted(set(per_unit) - set(ok), key=str)
    if len(ok) < MIN_UNITS:
        gone = f"; seeds {dropped} {why_undefined}" if dropped else ""
        raise InsufficientData(f"{len(ok)} training seed(s) with a defined value{gone}: a verdict needs {MIN_UNITS}")
    c, lo, hi = unit_interval(list(ok.values()), test)
    det = {"units": len(ok), "dropped_units": dropped, **(details or {})}
    return Estimate(c, lo, hi, len(ok), f"{what}: {describe(test, len(ok), 'training seed')}", details=det, table=table)


@register_statistic("xu_curve_kind")
def xu_curve_kind(
    jobs: Sequence[JobRecord],
    y: str,
    expect: str | list[str],
    job: str = "curve_taxonomy",
    alt: str | None = None,
    test: str = "sign",
) -> Estimate:
    """Per seed, the fraction of its curves whose type (``y``: a type or a list of types, e.g.
    ``metrics.types_gaussian``) is in ``expect``; ``alt`` (e.g. ``metrics.alt_types_gaussian``) drops a seed
    whose fraction would move under one grid step or the extremum filter."""
    expected = set(_as_types(expect))
    per: dict[int, list[float]] = {}
    rows, all_types = [], []
    for j in _mine(jobs, job):
        types = _as_types(j.get(y))
        frac = float(np.mean([t in expected for t in types]))
        fragile = False
        if alt is not None:
            alts = j.get(alt)
            if len(alts) != len(types):
                raise ValueError(f"{alt} has {len(alts)} entries but {y} has {len(types)} (job {j.job_dir.name})")
            # a curve is fragile when its alternatives disagree on whether it has the paper's type
            fragile = any(len({a in expected for a in _as_types(al)}) > 1 for al in alts)
        per.setdefault(j.seed, []).append(float("nan") if fragile else frac)
        all_types += types
        rows.append(
            {
                "seed": j.seed,
                "types": ", ".join(types),
                "of the paper's type": frac,
                "rests on a grid step / filter": fragile,
                "train_loss": _train_loss(j),
            }
        )
    per_unit = {s: float(np.mean(v)) for s, v in per.items()}
    return unit_estimate(
        per_unit,
        test,
        f"fraction of a seed's curves classified {'/'.join(sorted(expected))}",
        rows,
        {"type_counts": dict(Counter(all_types)), "curves": len(all_types), "seeds": len(per)},
        "have a type that one grid step or the extremum filter decides",
    )


@register_statistic("xu_gmi_ratio")
def xu_gmi_ratio(jobs: Sequence[JobRecord], sigma_index: int = 0, job: str = "xu_theory") -> Estimate:
    """Measured E[δL] / (½σ² tr(H)) at ``sigmas[sigma_index]``: per seed its log, t-interval, reported as a
    ratio (geometric mean). A ratio ≤ 0 leaves that seed undefined (the quadratic model does not apply)."""
    per: dict[int, list[float]] = {}
    rows = []
    for j in _mine(jobs, job):
        ratios, sigmas = j.get("metrics.gmi_ratios"), j.get("metrics.sigmas")
        if not -len(ratios) <= sigma_index < len(ratios):
            raise ValueError(f"sigma_index={sigma_index} but job {j.job_dir.name} measured {len(ratios)} sigmas")
        r = float(ratios[sigma_index])
        rows.append(
            {
                "seed": j.seed,
                "sigma": float(sigmas[sigma_index]),
                "measured E[δL]": j.get("metrics.delta_means")[sigma_index],
                "½σ²tr(H)": j.get("metrics.delta_predicted")[sigma_index],
                "ratio": r,
                "train_loss": _train_loss(j),
            }
        )
        per.setdefault(j.seed, []).append(math.log(r) if r > 0 else float("nan"))
    est = unit_estimate(
        {s: float(np.mean(v)) for s, v in per.items()},
        "t",
        "log(E[δL] / ½σ²tr(H))",
        rows,
        why_undefined="have a non-positive ratio (the quadratic model does not apply)",
    )
    return Estimate(
        math.exp(est.value),
        math.exp(est.lo),
        math.exp(est.hi),
        est.n,
        est.method.replace("mean over", "geometric mean over"),
        est.details,
        est.table,
    )


@register_statistic("xu_per_unit")
def xu_per_unit(
    jobs: Sequence[JobRecord], y: str, job: str, reduce: str = "mean", test: str = "sign", log10: bool = False
) -> Estimate:
    """Per seed, metric ``y`` of its ``job`` (a list is reduced by ``reduce``; ``log10`` takes log10 of the
    unit value, ≤ 0 → undefined); interval by ``test``."""
    if reduce not in REDUCERS:
        raise ValueError(f"unknown reduce {reduce!r}; valid: {', '.join(REDUCERS)}")
    per: dict[int, list[float]] = {}
    rows = []
    for j in _mine(jobs, job):
        raw = j.get(y)
        vals = np.asarray(raw if isinstance(raw, (list, tuple)) else [raw], dtype=float)
        v = float(REDUCERS[reduce](vals)) if vals.size else float("nan")
        per.setdefault(j.seed, []).append(v)
        rows.append(
            {"seed": j.seed, y: raw if vals.size <= 6 else f"{vals.size} values", "unit value": v, "train_loss": _train_loss(j)}
        )
    per_unit = {s: float(np.mean(v)) for s, v in per.items()}
    if log10:
        per_unit = {s: math.log10(v) if v > 0 else float("nan") for s, v in per_unit.items()}
    what = f"{'log10 ' if log10 else ''}{reduce + ' of ' if reduce != 'mean' else ''}{y.split('.')[-1]}"
    return unit_estimate(per_unit, test, what, rows, why_undefined="have no finite value")


@register_statistic_plot("xu_per_unit")
def _plot_per_unit(jobs: Sequence[JobRecord], est: Estimate, path: Path, **_: Any) -> Path:
    """The unit values behind the interval, one dot per training seed."""
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    vals = [r["unit value"] for r in est.table]
    fig, ax = plt.subplots(figsize=(4.2, 3.0), layout="constrained")
    ax.plot(range(len(vals)), vals, "o")
    ax.axhspan(est.lo, est.hi, color="tab:green", alpha=0.2, label="95% interval")
    ax.set_xlabel("training seed (index)")
    ax.set_ylabel("unit value")
    ax.set_title(f"n = {est.n}; centre {est.value:.3g} [{est.lo:.3g}, {est.hi:.3g}]", fontsize=8)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


@register_statistic_plot("xu_curve_kind")
def _plot_curve_kind(jobs: Sequence[JobRecord], est: Estimate, path: Path, expect: str | list[str], **_: Any) -> Path:
    """Counts of every curve type behind the fraction, the paper's type(s) highlighted."""
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    counts = est.details.get("type_counts", {})
    expected = set(_as_types(expect))
    names = [t for t in TYPE_ORDER if t in counts] + sorted(set(counts) - set(TYPE_ORDER))
    fig, ax = plt.subplots(figsize=(4.2, 3.2), layout="constrained")
    ax.bar(names, [counts[t] for t in names], color=["tab:green" if t in expected else "tab:gray" for t in names])
    ax.set_ylabel("curves")
    ax.set_xlabel("classified type (green: the paper's)")
    ax.set_title(
        f"{est.details.get('curves', 0)} curves, {est.details.get('seeds', 0)} seeds; "
        f"median fraction {est.value:.2f} [{est.lo:.2f}, {est.hi:.2f}]",
        fontsize=8,
    )
    return save_figure(fig, path)


@register_statistic_plot("xu_gmi_ratio")
def _plot_gmi(jobs: Sequence[JobRecord], est: Estimate, path: Path, job: str = "xu_theory", **_: Any) -> Path:
    """Measured E[δL] / ½σ²tr(H) against σ, one line per training seed."""
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    fig, ax = plt.subplots(figsize=(4.2, 3.2), layout="constrained")
    for j in _of_job(jobs, job):
        ax.plot(j.get("metrics.sigmas"), j.get("metrics.gmi_ratios"), "o-", alpha=0.6, label=f"seed {j.seed}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("σ (per parameter)")
    ax.set_ylabel("E[δL] / ½σ²tr(H)")
    ax.set_title(f"n = {est.n} seeds; geometric mean {est.value:.2f} [{est.lo:.2f}, {est.hi:.2f}]", fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    return save_figure(fig, path)


@register_figure("xu_taxonomy_curves")
def xu_taxonomy_curves(jobs: Sequence[JobRecord], path: Path, job: str = "curve_taxonomy", log_y: bool = False) -> Path:
    """Every curve of every ``curve_taxonomy`` job, one panel per direction kind, coloured by its type.

    ``log_y``: a log loss axis, for models whose curves blow up at the window's ends (a BN ResNet's reach
    1e8 and more), where a linear axis flattens the basin at λ = 0 into the floor."""
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    curves: dict[str, list[tuple[np.ndarray, np.ndarray, str]]] = {}
    for j in _of_job(jobs, job):
        f = j.job_dir / "curve_taxonomy.npz"
        if not f.is_file():
            continue
        d = np.load(f)
        if "lams" not in d.files:
            continue
        for kind, t, lam, y in zip(d["kinds"], d["types"], d["lams"], d["loss"]):
            curves.setdefault(str(kind), []).append((lam, y, str(t)))
    if not curves:
        raise InsufficientData(f"no {job!r} job with curve_taxonomy.npz")
    colours = dict(zip(TYPE_ORDER, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:gray")))
    fig, axes = plt.subplots(1, len(curves), figsize=(3.0 * len(curves), 2.8), squeeze=False, layout="constrained")
    for ax, (kind, cs) in zip(axes[0], curves.items()):
        for lam, y, t in cs:
            ax.plot(lam, y, color=colours.get(t, "k"), alpha=0.6, lw=1)
        counts = Counter(t for _, _, t in cs)
        ax.set_title(f"{kind} (n={len(cs)})\n" + ", ".join(f"{t} {c}" for t, c in counts.most_common()), fontsize=7)
        ax.set_xlabel("λ")
        if log_y:
            ax.set_yscale("log")
    axes[0][0].set_ylabel("train loss")
    return save_figure(fig, path)
