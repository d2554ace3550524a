"""Statistics of Xu et al.'s curve taxonomy, mining and Sec. 3 theory (preset ``xu_taxonomy``).

- ``xu_curve_kind``: the fraction of curves (of one direction kind, or mined by one algorithm) that the
  classifier puts in the paper's type, with a Wilson 95% interval. The unit is the training seed by
  default (a seed counts as a success when at least half of its curves, e.g. its Gaussian direction
  seeds, have the type), so curves that share one trained model never count as independent evidence;
  ``unit: curve`` counts every curve (direction seeds then count as independent, which they are not
  quite).
- ``xu_gmi_ratio``: measured E[δL] under Gaussian perturbation over the prediction ½σ²tr(H), at one σ:
  geometric mean over training seeds with a t-interval on log-ratios.
Jobs of other analyses in the same preset are ignored (selected by ``analysis.job``).
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .figures import register_figure
from .records import JobRecord, MissingKey
from .statistics import Estimate, InsufficientData, register_statistic, register_statistic_plot, t_interval

TYPE_ORDER = ("v-basin", "v-side", "w-basin", "w-peak", "vvv-basin", "other")


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k/n (95% by default)."""
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


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


@register_statistic("xu_curve_kind")
def xu_curve_kind(jobs: Sequence[JobRecord], y: str, expect: str | list[str], job: str = "curve_taxonomy",
                  unit: str = "seed") -> Estimate:
    """Fraction of curves whose type (``y``: a metric holding a type or a list of types, e.g.
    ``metrics.types_gaussian``) is in ``expect``, with a Wilson interval over ``unit`` (seed | curve)."""
    if unit not in ("seed", "curve"):
        raise ValueError(f"unit={unit!r}; valid: seed, curve")
    expected = set(_as_types(expect))
    mine = _of_job(jobs, job)
    if not mine:
        raise InsufficientData(f"no finished {job!r} job among the preset's {len(jobs)} jobs")
    per_seed: dict[int, list[str]] = {}
    rows = []
    for j in sorted(mine, key=lambda j: j.seed):
        types = _as_types(j.get(y))
        per_seed.setdefault(j.seed, []).extend(types)
        rows.append({"seed": j.seed, "types": ", ".join(types), "of the paper's type": sum(t in expected for t in types),
                     "curves": len(types), "train_loss": _train_loss(j)})
    all_types = [t for ts in per_seed.values() for t in ts]
    if unit == "curve":
        k, n = sum(t in expected for t in all_types), len(all_types)
    else:
        k = sum(2 * sum(t in expected for t in ts) >= len(ts) for ts in per_seed.values())
        n = len(per_seed)
    if n < 2:
        raise InsufficientData(f"{n} {unit}(s) of {job!r} curves: an interval needs at least 2")
    lo, hi = wilson_interval(k, n)
    return Estimate(k / n, lo, hi, n, f"fraction of {unit}s classified {'/'.join(sorted(expected))} (Wilson 95%)",
                    details={"successes": k, "type_counts": dict(Counter(all_types)), "curves": len(all_types),
                             "seeds": len(per_seed)}, table=rows)


@register_statistic("xu_gmi_ratio")
def xu_gmi_ratio(jobs: Sequence[JobRecord], sigma_index: int = 0, job: str = "xu_theory") -> Estimate:
    """Measured E[δL] / (½σ² tr(H)) at ``sigmas[sigma_index]``: geometric mean over training seeds,
    t-interval on the log-ratios (a ratio ≤ 0 makes the claim inconclusive: the model does not apply)."""
    mine = _of_job(jobs, job)
    if not mine:
        raise InsufficientData(f"no finished {job!r} job among the preset's {len(jobs)} jobs")
    logs, rows = {}, []
    for j in sorted(mine, key=lambda j: j.seed):
        ratios, sigmas = j.get("metrics.gmi_ratios"), j.get("metrics.sigmas")
        if not -len(ratios) <= sigma_index < len(ratios):
            raise ValueError(f"sigma_index={sigma_index} but job {j.job_dir.name} measured {len(ratios)} sigmas")
        r = float(ratios[sigma_index])
        rows.append({"seed": j.seed, "sigma": float(sigmas[sigma_index]), "measured E[δL]": j.get("metrics.delta_means")[sigma_index],
                     "½σ²tr(H)": j.get("metrics.delta_predicted")[sigma_index], "ratio": r, "train_loss": _train_loss(j)})
        if not r > 0:
            raise InsufficientData(f"seed {j.seed}: measured/predicted = {r:.3g} is not positive; the quadratic model fails")
        logs.setdefault(j.seed, []).append(math.log(r))
    per_seed = [float(np.mean(v)) for v in logs.values()]
    m, lo, hi = t_interval(per_seed)
    if len(per_seed) < 2:
        raise InsufficientData(f"{len(per_seed)} training seed(s): an interval needs at least 2")
    return Estimate(math.exp(m), math.exp(lo), math.exp(hi), len(per_seed),
                    "geometric mean over seeds of E[δL] / ½σ²tr(H), t-interval on logs", table=rows)


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
    ax.set_title(f"{est.details.get('curves', 0)} curves, {est.details.get('seeds', 0)} seeds; "
                 f"fraction {est.value:.2f} [{est.lo:.2f}, {est.hi:.2f}]", fontsize=8)
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
