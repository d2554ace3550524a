"""Report figures drawn across all jobs of a preset (e.g. Fort Fig. 5's width panels).

A preset lists them under ``reproduce.figures: [{figure: <name>, args: {...}}]``; the functions live
beside their paper's statistics in ``lsx/claims/stats_<paper>.py`` (imported with the statistics).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from .records import JobRecord
from .statistics import load_plugins

FigureFn = Callable[..., Path]  # fn(jobs, path, **args) -> path of the PNG it wrote
_FIGURES: dict[str, FigureFn] = {}


def register_figure(name: str) -> Callable[[FigureFn], FigureFn]:
    def deco(fn: FigureFn) -> FigureFn:
        _FIGURES[name] = fn
        return fn

    return deco


def figure_names() -> list[str]:
    load_plugins()
    return sorted(_FIGURES)


def get_figure(name: str) -> FigureFn:
    load_plugins()
    if name not in _FIGURES:
        raise ValueError(f"unknown report figure {name!r}; valid figures: {', '.join(sorted(_FIGURES)) or '(none registered)'}")
    return _FIGURES[name]


def check_figures(preset: str, specs: Any) -> list[dict[str, Any]]:
    """Validate ``reproduce.figures`` of a preset: a list of {figure: name, args: mapping}."""
    if not specs:
        return []
    if not isinstance(specs, list):
        raise ValueError(f"preset {preset!r}: reproduce.figures must be a list of {{figure: name, args: {{...}}}}")
    out = []
    for i, s in enumerate(specs):
        if not isinstance(s, dict) or "figure" not in s or not isinstance(s.get("args") or {}, dict):
            raise ValueError(f"preset {preset!r}: reproduce.figures[{i}] must be {{figure: name, args: {{...}}}}, got {s!r}")
        get_figure(str(s["figure"]))
        out.append({"figure": str(s["figure"]), "args": dict(s.get("args") or {})})
    return out


def draw_figure(spec: dict[str, Any], jobs: Sequence[JobRecord], path: Path) -> Path:
    return get_figure(spec["figure"])(list(jobs), Path(path), **spec["args"])


@register_figure("metric_vs_key")
def metric_vs_key(jobs: Sequence[JobRecord], path: Path, x: str, y: str, log_x: bool = False, unit: str = "seed") -> Path:
    """A generic figure: ``y`` against ``x`` for every job, one line per unit, mean ± sd on top."""
    import matplotlib.pyplot as plt

    from lsx.plots.common import save_figure

    from .statistics import group_rows, unit_of

    fig, ax = plt.subplots(figsize=(5, 3.6), layout="constrained")
    units = sorted({unit_of(j, unit) for j in jobs}, key=str)
    for u in units:
        pts = sorted((float(j.get(x)), float(j.get(y))) for j in jobs if unit_of(j, unit) == u)
        ax.plot(*zip(*pts), "o-", alpha=0.5, ms=3)
    rows = group_rows(jobs, x, y, unit)
    ax.errorbar([r[x] for r in rows], [r["mean"] for r in rows], yerr=[r["sd"] or 0.0 for r in rows], fmt="k-", capsize=3)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{y} vs {x} (n = {len(units)} {unit}s, {len(jobs)} jobs)", fontsize=9)
    return save_figure(fig, path)
