"""Statistics for Li et al. 2018 (Visualizing the loss landscape of neural nets).

- ``li_sign_flip`` (Fig. 2–3): a quantity has one sign under one setting and the other sign under
  another — e.g. log(‖θ_small‖/‖θ_large‖) > 0 without weight decay and < 0 with it. The estimate is
  min(mean_a, −mean_b); its interval combines the two groups' 97.5% intervals over units (lo =
  min(lo_a, −hi_b), hi = min(hi_a, −lo_b)) into a ≥ 95% one, so ``greater: 0`` holds only when
  both signs are as claimed.
- ``li_trained_difference`` (Fig. 6): mean(y | key=a) − mean(y | key=b) over *trained* nets only: a job
  whose optimum did not reach ``max_train_loss`` is excluded and listed with the reason (an untrained
  net's surface says nothing about its architecture's landscape).
Fig. 5 / Table 1 and Fig. 9 use the generic ``difference``, ``ratio`` and ``mean``; Fig. 7 the generic
``spearman`` and ``surface_rise_spearman`` (lsx/claims/stats_surface.py). Report figures:
``li_convexity_panels`` (Fig. 6; the principal-curvature maps of the published version) and ``li_width_surfaces`` (Fig. 7).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lsx.claims.inference import LEVEL, check_test, unit_interval
from lsx.claims.records import JobRecord
from lsx.claims.statistics import Estimate, InsufficientData, group_rows, register_statistic, same_value, unit_of


def _values(jobs: Sequence[JobRecord], key: str, value: Any, y: str, log: bool, unit: str) -> dict[Any, float]:
    acc: dict[Any, list[float]] = {}
    for j in jobs:
        if same_value(j.get(key), value):
            v = float(j.get(y))
            if log:
                if not v > 0:
                    raise InsufficientData(f"{y}={v} in job {j.job_dir.name} is not positive; its log is undefined")
                v = math.log(v)
            acc.setdefault(unit_of(j, unit), []).append(v)
    return {u: float(np.mean(v)) for u, v in acc.items()}


GROUP_LEVEL = 1 - (1 - LEVEL) / 2  # each group's interval in li_sign_flip: Bonferroni over the two groups


@register_statistic("li_sign_flip")
def li_sign_flip(
    jobs: Sequence[JobRecord], key: str, a: Any, b: Any, y: str, log: bool = False, unit: str = "seed", interval: str = "t"
) -> Estimate:
    """min(mean(y'|key=a), −mean(y'|key=b)) with y' = log(y) if ``log``: > 0 iff y' > 0 at a and < 0 at b.

    One value per unit in each group; each group gets a 97.5% interval (``t``: mean, the default, as
    a log norm- or sharpness-ratio is close to normal over seeds; ``sign``: median, which needs ≥ 8
    units per group at 97.5%). Combined: lo = min(lo_a, −hi_b), hi = min(hi_a, −lo_b). Why 97.5%: min
    is monotone in both means, so when both group intervals cover, the combined one covers
    min(μ_a, −μ_b); by Bonferroni that happens with probability ≥ 95%, which bounds the false
    "reproduced" and the false "not reproduced" rate by 2.5% each (two 95% intervals would allow
    up to 4.9% false "not reproduced" when both means sit at 0; simulated in docs/statistics.md)."""
    check_test(interval)
    va, vb = _values(jobs, key, a, y, log, unit), _values(jobs, key, b, y, log, unit)
    if not va or not vb:
        raise InsufficientData(f"no jobs with {key}={a!r}" if not va else f"no jobs with {key}={b!r}")
    ma, la, ha = unit_interval(list(va.values()), interval, GROUP_LEVEL)
    mb, lb, hb = unit_interval(list(vb.values()), interval, GROUP_LEVEL)
    value = min(ma, -mb)
    lo, hi = min(la, -hb), min(ha, -lb)
    yname, centre = (f"log {y}" if log else y), ("mean" if interval == "t" else "median")
    table = group_rows([j for j in jobs if same_value(j.get(key), a) or same_value(j.get(key), b)], key, y, unit)
    return Estimate(
        value,
        lo,
        hi,
        min(len(va), len(vb)),
        f"min({centre} {yname} at {key}={a}, −{centre} at {key}={b}) over {len(va)} and {len(vb)} {unit}s; "
        "each group's "
        f"{'Student-t' if interval == 't' else 'sign-test'} {GROUP_LEVEL * 100:g}% interval, combined into a ≥ "
        f"{LEVEL * 100:g}% one (Bonferroni)",
        {
            "key": key,
            "a": a,
            "b": b,
            "y": y,
            "log": log,
            "unit": unit,
            "interval": interval,
            "group_level": GROUP_LEVEL,
            "mean_a": ma,
            "ci_a": [la, ha],
            "mean_b": mb,
            "ci_b": [lb, hb],
            "per_unit_a": {str(u): v for u, v in va.items()},
            "per_unit_b": {str(u): v for u, v in vb.items()},
        },
        table,
    )


def trained_jobs(jobs: Sequence[JobRecord], max_train_loss: float) -> tuple[list[JobRecord], list[dict[str, Any]]]:
    """Jobs whose every optimum reached ``max_train_loss``, and the excluded ones with the reason."""
    keep: list[JobRecord] = []
    excluded: list[dict[str, Any]] = []
    for j in jobs:
        if not j.training:
            excluded.append({"job": j.job_dir.name, "reason": "results.json records no trained optimum"})
            continue
        worst = max(float(t.get("train_loss", math.inf)) for t in j.training)
        if worst <= max_train_loss:
            keep.append(j)
        else:
            stops = sorted({str(t.get("stopped_by")) for t in j.training})
            excluded.append(
                {
                    "job": j.job_dir.name,
                    "seed": j.seed,
                    "train_loss": worst,
                    "reason": f"not trained: train loss {worst:.3g} > {max_train_loss:g} (stopped by {', '.join(stops)})",
                }
            )
    return keep, excluded


@register_statistic("li_trained_difference")
def li_trained_difference(
    jobs: Sequence[JobRecord],
    key: str,
    a: Any,
    b: Any,
    y: str,
    max_train_loss: float,
    where: dict[str, Any] | None = None,
    unit: str = "seed",
    interval: str = "t",
) -> Estimate:
    """mean(y | key=a) − mean(y | key=b) among jobs matching ``where`` whose optima reached
    ``max_train_loss``: the generic ``difference`` (paired per unit, ``interval`` t or sign) on them."""
    from lsx.claims.statistics import difference

    sel = [j for j in jobs if all(same_value(j.get(k), v) for k, v in (where or {}).items())]
    keep, excluded = trained_jobs(sel, float(max_train_loss))
    if not any(same_value(j.get(key), a) for j in keep) or not any(same_value(j.get(key), b) for j in keep):
        raise InsufficientData(
            f"after excluding untrained nets no comparison of {key}={a!r} vs {b!r} is left; excluded: "
            + "; ".join(f"{e['job']}: {e['reason']}" for e in excluded)
        )
    est = difference(keep, key, a, b, y, unit, interval)
    est.details.update(where=where or {}, max_train_loss=max_train_loss, excluded=excluded)
    est.method += f"; trained nets only (train loss ≤ {max_train_loss:g}), {len(excluded)} excluded"
    for e in excluded:
        est.table.append({"excluded": e["job"], "reason": e["reason"]})
    return est


# ---------------------------------------------------------------------------------------------- figures
def _register_figures() -> None:
    try:
        from lsx.claims.figures import register_figure
    except ImportError:  # the framework without report figures: statistics still work
        return

    @register_figure("li_convexity_panels")
    def convexity_panels(jobs: Sequence[JobRecord], path: Path, **args: Any) -> Path:
        """Fig. 6 beside Li et al.'s curvature measure: one |λ_min/λ_max| map per (depth, shortcut), first seed of each."""
        import matplotlib.pyplot as plt

        from lsx.plots.common import save_figure

        cells: dict[tuple[str, str], JobRecord] = {}
        for j in sorted(jobs, key=lambda j: j.seed):
            cells.setdefault((str(j.get("model.name")), str(j.get("model.shortcut"))), j)
        keys = sorted(cells)
        fig, axes = plt.subplots(
            1, max(1, len(keys)), figsize=(3.2 * max(1, len(keys)), 3.2), layout="constrained", squeeze=False
        )
        im = None
        for ax, k in zip(axes[0], keys):
            j = cells[k]
            f = j.job_dir / "convexity.npz"
            if not f.exists():
                ax.set_title(f"{k[0]} shortcut={k[1]}: no map", fontsize=8)
                continue
            d = np.load(f)
            im = ax.imshow(
                d["ratio"], origin="lower", vmin=0, vmax=1, cmap="viridis", extent=[d["x"][0], d["x"][-1], d["y"][0], d["y"][-1]]
            )
            tl = j.training[0].get("train_loss") if j.training else None
            ax.set_title(
                f"{k[0]} shortcut={k[1]}\nseed {j.seed}, train loss {tl:.3g}" if tl is not None else f"{k[0]} {k[1]}", fontsize=8
            )
            ax.set_xlabel("α")
            ax.set_ylabel("β")
        if im is not None:
            fig.colorbar(im, ax=axes[0].tolist(), label="|λ_min/λ_max|")
        fig.suptitle(f"Li et al. convexity maps (n={len(jobs)} jobs)", fontsize=9)
        return save_figure(fig, path)

    @register_figure("li_width_surfaces")
    def width_surfaces(
        jobs: Sequence[JobRecord], path: Path, key: str = "model.width", metric: str = "train_loss", levels: int = 15, **_: Any
    ) -> Path:
        """Fig. 7 next to the paper: one filter-normalized contour plot per value of ``key`` (the first
        seed of each), on one shared log colour scale so flatter surfaces show wider low-loss regions."""
        import matplotlib.pyplot as plt

        from lsx.plots.common import save_figure

        cells: dict[float, JobRecord] = {}
        for j in sorted(jobs, key=lambda j: j.seed):
            if (j.job_dir / "surface_grid.npz").exists():
                cells.setdefault(float(j.get(key)), j)
        if not cells:
            raise InsufficientData("no job has a surface_grid.npz (is the preset's analysis surface2d?)")
        keys = sorted(cells)
        grids = {k: np.load(cells[k].job_dir / "surface_grid.npz") for k in keys}
        logz = {k: np.log10(np.clip(g[metric], 1e-8, None)) for k, g in grids.items()}
        z_all = np.concatenate([z.ravel() for z in logz.values()])
        bounds = np.linspace(np.nanmin(z_all), np.nanmax(z_all), levels)
        fig, axes = plt.subplots(1, len(keys), figsize=(3.1 * len(keys), 3.1), layout="constrained", squeeze=False)
        cs = None
        for ax, k in zip(axes[0], keys):
            g, j = grids[k], cells[k]
            cs = ax.contourf(g["x"], g["y"], logz[k], levels=bounds, cmap="viridis")
            ax.contour(g["x"], g["y"], logz[k], levels=bounds, colors="k", linewidths=0.4, linestyles="solid")
            acc = j.get("training.test_acc", None)
            ax.set_title(
                f"{key.split('.')[-1]} = {k:g}, seed {j.seed}" + (f"\ntest acc {acc:.3f}" if acc is not None else ""), fontsize=8
            )
            ax.set_xlabel("α")
            ax.set_aspect("equal")
        axes[0][0].set_ylabel("β")
        if cs is not None:
            fig.colorbar(cs, ax=axes[0].tolist(), label=f"log10 {metric.replace('_', ' ')}")
        fig.suptitle(f"Li Fig. 7: filter-normalized surfaces by {key} (n={len(jobs)} jobs)", fontsize=9)
        return save_figure(fig, path)


_register_figures()
