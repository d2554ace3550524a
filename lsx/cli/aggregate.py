"""``python -m lsx.aggregate <sweep_dir> [--x optimizer.lr] [--y metrics.width_mean] [--wandb]``

Turns a finished multirun directory into ``summary.csv`` (the columns that vary; constants in
``summary_constants.json``) and, for each swept key, a figure of the chosen metric vs that key
(mean ± std over seeds; one line per value of the other swept keys), e.g. tunnel width vs LR
(Fort Fig. 5); a sweep of ``permutation_barrier`` jobs also gets ``barriers_vs_<key>.png``, every
variant's barrier per pair of optima and its median on shared axes (e.g. barrier vs ``model.width``).
Failed jobs are listed (in summary.csv with their status and reason, and in the printout) and never
averaged; so are jobs whose optima stopped above ``training.target_train_loss`` (summary.csv
``reached_target`` and ``missed_target``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lsx.tracking.aggregate import (
    collect,
    failed_rows,
    metric_keys,
    missed_target_rows,
    ok_rows,
    resolve_key,
    series,
    swept_keys,
    write_summary,
)


def aggregate(sweep_dir: Path, x_keys: list[str] | None = None, y_keys: list[str] | None = None, log_x: bool = True) -> dict:
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    swept = swept_keys(rows)
    if not ok_rows(rows):  # nothing to plot; the summary lists every failure
        summary = write_summary(rows, sweep_dir / "summary.csv")
        return {
            "summary": summary,
            "plots": [],
            "rows": rows,
            "swept": swept,
            "failed": failed_rows(rows),
            "missed_target": missed_target_rows(rows),
        }
    xs = [resolve_key(x, rows, "x") for x in x_keys] if x_keys else swept
    ys = [resolve_key(y, rows, "y") for y in y_keys] if y_keys else metric_keys(rows)
    summary = write_summary(rows, sweep_dir / "summary.csv", keep=(x_keys and xs or []) + (y_keys and ys or []))
    plots = []
    kinds = sorted({str(r.get("job")) for r in rows})
    for kind in kinds:  # one figure per job type: a folder holding several sweeps must not mix them in one plot
        these = [r for r in rows if str(r.get("job")) == kind]
        prefix = f"{kind}_" if len(kinds) > 1 else ""
        for x in xs:
            for y in ys:
                path = _plot(these, x, y, swept, sweep_dir, log_x, prefix)
                if path is not None:
                    plots.append(path)
            if kind == "permutation_barrier":  # every variant's barrier on shared axes, per pair and median
                path = _barrier_sweep(these, x, swept, sweep_dir, prefix)
                if path is not None:
                    plots.append(path)
    return {
        "summary": summary,
        "plots": plots,
        "rows": rows,
        "swept": xs,
        "failed": failed_rows(rows),
        "missed_target": missed_target_rows(rows),
    }


def _plot(
    rows: list[dict[str, Any]], x: str, y: str, swept: list[str], sweep_dir: Path, log_x: bool, prefix: str = ""
) -> Path | None:
    from lsx.plots.common import n_label, new_figure, save_figure

    lines = {label: pts for label, pts in series(rows, x, y, swept).items() if pts}
    if sum(1 for pts in lines.values() for p in pts if p[3] > 0) < 2:  # fewer than two finite points
        return None
    numeric = all(isinstance(p[0], float) for pts in lines.values() for p in pts)
    fig, ax = new_figure(figsize=(5.5, 4))
    cats: list[str] = sorted({str(p[0]) for pts in lines.values() for p in pts}) if not numeric else []
    for label, pts in lines.items():
        xv = [p[0] for p in pts] if numeric else [cats.index(str(p[0])) for p in pts]
        ax.errorbar(xv, [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3, label=label or None)
    if not numeric:
        ax.set_xticks(range(len(cats)), cats)
    elif log_x:
        xs = [p[0] for pts in lines.values() for p in pts]
        pos = [v for v in xs if v > 0]
        if len(pos) == len(xs):
            ax.set_xscale("log")
        elif pos and min(xs) == 0 and max(pos) / min(pos) >= 10:  # an L2 sweep from 0: log above the smallest step
            ax.set_xscale("symlog", linthresh=min(pos))
    xname, yname = x.removeprefix("config."), y.removeprefix("metrics.")
    ax.set_xlabel(xname)
    ax.set_ylabel(f"{yname} (mean ± std)")
    used = [r for r in ok_rows(rows) if r.get(x) is not None and r.get(y) is not None]
    n_failed = len(failed_rows(rows))
    title = f"{yname} vs {xname}: {len(used)} jobs, {n_label(p[3] for pts in lines.values() for p in pts)}"
    if n_failed:
        title += f"\n{n_failed} failed job{'s' if n_failed > 1 else ''} not shown"
    ax.set_title(title, fontsize=9)
    if any(lines):
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, sweep_dir / f"{prefix}{yname}_vs_{xname.replace('.', '_')}.png")


def _barrier_sweep(rows: list[dict[str, Any]], x: str, swept: list[str], sweep_dir: Path, prefix: str = "") -> Path | None:
    from lsx.plots.common import save_figure
    from lsx.plots.permutation import barrier_points, barrier_sweep_figure

    xname = x.removeprefix("config.")
    fig = barrier_sweep_figure(barrier_points(sweep_dir, rows, x, swept), xname)
    return None if fig is None else save_figure(fig, sweep_dir / f"{prefix}barriers_vs_{xname.replace('.', '_')}.png")


def log_to_wandb(sweep_dir: Path, out: dict, project: str | None = None, entity: str | None = None) -> None:
    """One W&B run of job_type 'aggregate' (see :func:`lsx.tracking.wandb_log.log_aggregate`)."""
    from lsx.tracking.wandb_log import log_aggregate

    log_aggregate(sweep_dir, out["rows"], out["plots"], project=project, entity=entity)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument(
        "--x", action="append", help="swept key(s) for the x axis, e.g. optimizer.lr (default: every key that varies)"
    )
    ap.add_argument("--y", action="append", help="metric(s) to plot, e.g. metrics.test_acc (default: all scalar metrics)")
    ap.add_argument("--linear-x", action="store_true")
    ap.add_argument("--wandb", action="store_true", help="also log summary table and figures to W&B (offline without a key)")
    ap.add_argument("--project", help="W&B project (default: the jobs' logger.project, else lsx)")
    ap.add_argument("--entity", help="W&B entity (default: the jobs' logger.entity)")
    args = ap.parse_args(argv)
    try:
        out = aggregate(args.sweep_dir, args.x, args.y, not args.linear_x)
    except ValueError as err:
        print(f"lsx: error: {err}", file=sys.stderr)
        return 2
    if args.wandb:
        log_to_wandb(args.sweep_dir, out, args.project, args.entity)
    n_ok = len(ok_rows(out["rows"]))
    print(f"{len(out['rows'])} jobs ({n_ok} ok, {len(out['failed'])} failed) → {out['summary']}")
    for r in out["failed"]:
        print(f"  {r['status']}: {r['run_dir']} ({r.get('reason') or '?'})")
    if out["missed_target"]:
        print(f"{len(out['missed_target'])} job(s) used optima that missed training.target_train_loss (not matched training):")
        for r in out["missed_target"]:
            for line in r["missed_target"].split(" | "):
                print(f"  missed target: {r['run_dir']}: {line}")
    for p in out["plots"]:
        print(f"  {p}")
    if not n_ok:
        print(f"lsx: error: no job of the sweep under {args.sweep_dir} succeeded; nothing to plot", file=sys.stderr)
        return 1
    return 0


def cli() -> None:
    """``python -m lsx.aggregate``."""
    sys.exit(main())
