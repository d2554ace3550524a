"""Barrier against a swept key (e.g. ``model.width``) for a sweep of ``permutation_barrier`` jobs.

Why a figure of its own: ``lsx.aggregate`` draws one figure per scalar metric, so the naive, matched and
REPAIRed barriers of a width sweep land in separate files whose axes cannot be compared by eye. This one
puts every variant on shared axes, one thin line per pair of optima and the median over pairs, the
figure Entezari et al. (barrier vs width) and Ainsworth et al. (naive vs matched) argue from.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from lsx.tracking.aggregate import ok_rows

# the barriers the job's own figures show: the train loss (what matching is judged on) and the test error
BARRIERS = (("barrier_train_loss", "train loss barrier"), ("barrier_test_error", "test error barrier"))


def barrier_points(sweep_dir: Path, rows: Sequence[dict[str, Any]], x: str, swept: Sequence[str]) -> list[dict[str, Any]]:
    """One point per (successful job, pair, variant): its panel (the other swept keys' values), variant,
    pair (with the job's seed, so replicated sweeps keep their pairs apart), x and barriers, read from the
    job's ``results.json`` (``metrics.pairs``). Empty when ``x`` is not numeric."""
    points = []
    others = [k for k in swept if k != x]
    for r in ok_rows(rows):
        if r.get("job") != "permutation_barrier":
            continue
        xv = r.get(x)
        if isinstance(xv, bool) or not isinstance(xv, (int, float)):
            return []
        res = json.loads((Path(sweep_dir) / r["run_dir"] / "results.json").read_text())
        panel = ", ".join(f"{k}={r.get(k)}" for k in others)
        for p in (res.get("metrics") or {}).get("pairs") or []:
            points.append(
                {
                    "panel": panel,
                    "variant": p["variant"],
                    "pair": f"{p['pair']} (seed {r.get('seed')})",
                    "x": float(xv),
                    **{y: p.get(y) for y, _ in BARRIERS},
                }
            )
    return points


def draw_barrier_lines(ax: Any, by_variant: Mapping[str, Mapping[Any, Mapping[float, float]]]) -> None:
    """On ``ax``, per variant (colours in the mapping's order): a thin line per pair ({x: barrier}) and the
    median over the pairs that have a value at each x (markers); a log₂ x axis for a ratio of 4 or more."""
    xs = sorted({w for lines in by_variant.values() for line in lines.values() for w in line})
    for i, (v, lines) in enumerate(by_variant.items()):
        if not lines:
            continue
        for line in lines.values():
            ax.plot(xs, [line.get(w, np.nan) for w in xs], color=f"C{i}", alpha=0.25, lw=0.7)
        at = [[line[w] for line in lines.values() if w in line] for w in xs]
        n = len(lines)
        label = f"{v} ({'1 pair' if n == 1 else f'median of {n} pairs'})"
        ax.plot(xs, [float(np.median(a)) if a else np.nan for a in at], "o-", color=f"C{i}", label=label)
    if xs and min(xs) > 0 and max(xs) / min(xs) >= 4:
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [f"{w:g}" for w in xs])
        ax.minorticks_off()
    ax.axhline(0, color="grey", lw=0.6)


def barrier_sweep_figure(points: Sequence[dict[str, Any]], x: str) -> Any:
    """Rows: train-loss and test-error barrier; columns: the other swept keys' combinations; per variant a
    thin line per pair and its median (markers) over x. None with fewer than two x values."""
    from lsx.plots.common import new_figure

    if len({p["x"] for p in points}) < 2:
        return None
    panels = sorted({p["panel"] for p in points})
    variants = list(dict.fromkeys(p["variant"] for p in points))  # the job's order: naive first
    fig, axes = new_figure(len(BARRIERS), len(panels), figsize=(5.2 * len(panels), 3.6 * len(BARRIERS)), squeeze=False)
    for col, panel in enumerate(panels):
        for row, (y, label) in enumerate(BARRIERS):
            by_variant: dict[str, dict[str, dict[float, float]]] = {v: {} for v in variants}
            for p in points:
                if p["panel"] == panel and p[y] is not None and math.isfinite(p[y]):
                    by_variant[p["variant"]].setdefault(p["pair"], {})[p["x"]] = float(p[y])
            ax = axes[row][col]
            draw_barrier_lines(ax, by_variant)
            ax.set(xlabel=x, ylabel=label)
            ax.set_title(f"{label} vs {x}" + (f"\n{panel}" if panel else ""), fontsize=9)
            ax.grid(alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=7)
    return fig
