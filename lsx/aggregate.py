"""``python -m lsx.aggregate <sweep_dir> [--x override.optimizer.lr] [--y metrics.width_mean]``

Turns a finished multirun directory into ``summary.csv`` and, for each swept key, a figure of
the chosen metric vs that key (mean ± std over seeds), e.g. tunnel width vs LR (Fort Fig. 5).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lsx.tracking.aggregate import collect, group_mean, swept_keys, write_summary


def aggregate(sweep_dir: Path, x_keys: list[str] | None = None, y_keys: list[str] | None = None, log_x: bool = True) -> dict:
    rows = collect(sweep_dir)
    summary = write_summary(rows, sweep_dir / "summary.csv")
    xs = x_keys or swept_keys(rows)
    ys = y_keys or sorted({k for r in rows for k in r if k.startswith("metrics.")})
    plots = []
    if xs and ys:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from lsx.plots.common import save_figure

        for x in xs:
            for y in ys:
                pts = group_mean(rows, x, y)
                if len(pts) < 2:
                    continue
                fig, ax = plt.subplots(figsize=(5, 3.6))
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3)
                if log_x and all(p[0] > 0 for p in pts):
                    ax.set_xscale("log")
                ax.set_xlabel(x.replace("override.", ""))
                ax.set_ylabel(y.replace("metrics.", ""))
                ax.grid(alpha=0.3)
                name = f"{y.replace('metrics.', '')}_vs_{x.replace('override.', '').replace('.', '_')}.png"
                plots.append(save_figure(fig, sweep_dir / name))
    return {"summary": summary, "plots": plots, "rows": rows, "swept": xs}


def log_to_wandb(sweep_dir: Path, out: dict) -> None:
    """One W&B run of job_type 'aggregate' holding the summary table and the figures."""
    import wandb

    from lsx.tracking.wandb_setup import finish, wandb_mode

    run = wandb.init(project="lsx", name=f"aggregate-{sweep_dir.name}", job_type="aggregate", dir=str(sweep_dir),
                     mode=wandb_mode(), reinit="finish_previous")
    cols = sorted({k for r in out["rows"] for k in r})
    run.log({"summary": wandb.Table(columns=cols, data=[[str(r.get(c, "")) for c in cols] for r in out["rows"]]),
             **{p.stem: wandb.Image(str(p)) for p in out["plots"]}})
    finish()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sweep_dir", type=Path)
    ap.add_argument("--x", action="append", help="swept key(s) for the x axis (default: every key that varies)")
    ap.add_argument("--y", action="append", help="metric(s) to plot (default: all scalar metrics)")
    ap.add_argument("--linear-x", action="store_true")
    ap.add_argument("--wandb", action="store_true", help="also log summary table and figures to W&B (offline without a key)")
    args = ap.parse_args(argv)
    try:
        out = aggregate(args.sweep_dir, args.x, args.y, not args.linear_x)
    except ValueError as err:
        print(f"lsx: error: {err}", file=sys.stderr)
        return 2
    if args.wandb:
        log_to_wandb(args.sweep_dir, out)
    print(f"{len(out['rows'])} jobs → {out['summary']}")
    for p in out["plots"]:
        print(f"  {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
