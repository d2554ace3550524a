"""Learning curves of a training run."""

from __future__ import annotations

from pathlib import Path

from .common import integer_ticks, new_figure, save_figure


def plot_learning_curve(rows: list[dict[str, float]], path: Path, title: str = "") -> Path:
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(9, 3.5))
    ep = [r["epoch"] for r in rows]
    for key, ax in (("loss", ax1), ("acc", ax2)):
        for split, style in (("train", "-"), ("val", "--")):
            k = f"{split}/{key}"
            pts = [(e, r[k]) for e, r in zip(ep, rows) if k in r]
            if pts:
                ax.plot(*zip(*pts), style, marker="o", ms=3, label=split)
        ax.set_xlabel("epoch")
        integer_ticks(ax, "x")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
