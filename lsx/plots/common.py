"""Saving figures atomically and consistently; the conventions every lsx figure follows.

Every figure is made with constrained layout (labels never overlap), every axis is labelled
(α/β on 3D views), and axes that count things get integer ticks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from lsx.utils.io import atomic_path

# constrained layout for every figure from its creation: switching engines at save time breaks
# figures that already hold a colorbar (matplotlib's layout grid divides by zero)
plt.rcParams["figure.constrained_layout.use"] = True


def new_figure(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6, 4), **kw: Any):
    """``plt.subplots`` with constrained layout (the one place that choice is made)."""
    return plt.subplots(nrows, ncols, figsize=figsize, layout="constrained", **kw)


def integer_ticks(ax: Any, axes: str = "x") -> None:
    """Integer tick marks on the axes (``"x"``, ``"y"``, ``"xy"``) that plot counts or indices."""
    for a in axes:
        getattr(ax, f"{a}axis").set_major_locator(MaxNLocator(integer=True))


def n_label(counts: Iterable[int], unit: str = "seed") -> str:
    """``"n = 3 seeds per point"`` or ``"n = 1–3 seeds per point"`` for figure titles."""
    counts = sorted(set(int(c) for c in counts))
    if not counts:
        return "n = 0"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return f"n = {span} {unit}{'' if counts == [1] else 's'} per point"


def missing_labels(fig: plt.Figure) -> list[str]:
    """Axes of ``fig`` without an x or y label (z too on 3D axes; colorbars excepted): for tests."""
    out = []
    for i, ax in enumerate(fig.axes):
        if getattr(ax, "_colorbar", None) is not None or ax.get_label() == "<colorbar>":
            continue
        names = ("x", "y", "z") if hasattr(ax, "get_zlabel") else ("x", "y")
        for a in names:
            if ax.axison and getattr(ax, f"{a}axis").get_visible() and not getattr(ax, f"get_{a}label")():
                out.append(f"axes {i}: no {a} label")
    return out


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    if fig.get_layout_engine() is None and not any(getattr(a, "_colorbar", None) for a in fig.axes):
        fig.set_layout_engine("constrained")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
