"""Figures of Li et al. (2018): 1D curves, 2D surfaces (contour, filled, 3D, heatmap), PCA paths.

Array layout everywhere: ``values[i_y, i_x]`` with ``x`` the first direction's coordinates
(columns) and ``y`` the second's (rows) — matplotlib's convention, so non-square grids are
never transposed. NaN values (diverged far points) are drawn as gaps, not errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .common import new_figure, save_figure


def _prepare(values: np.ndarray, log: bool) -> np.ndarray:
    v = np.array(values, dtype=float)
    v[~np.isfinite(v)] = np.nan
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.log10(np.where(v > 0, v, np.nan))
    return v


def plot_interpolation(alphas, metrics: dict[str, np.ndarray], path: Path, title: str = "", labels=("θ_a", "θ_b")) -> Path:
    """Loss (left axis, log) and accuracy (right axis) along θ(α) = (1−α)θ_a + αθ_b (Li Fig. 2)."""
    fig, ax = new_figure(figsize=(6, 4))
    ax2 = ax.twinx()
    for split, color in (("train", "tab:blue"), ("test", "tab:red")):
        ax.semilogy(alphas, metrics[f"{split}_loss"], "-", color=color, label=f"{split} loss")
        ax2.plot(alphas, 100 * np.asarray(metrics[f"{split}_acc"]), "--", color=color, label=f"{split} acc")
    ax.set_xlabel(f"α  (0 = {labels[0]}, 1 = {labels[1]})")
    ax.set_ylabel("loss (log)")
    ax2.set_ylabel("accuracy (%)")
    ax2.set_ylim(0, 100)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="best", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_curves(
    xs, curves: Sequence[np.ndarray], labels: Sequence[str], path: Path, ylabel="train loss", title="", log=False
) -> Path:
    """Several 1D curves (e.g. random directions) in one plot; labels carry stationary-point counts."""
    fig, ax = new_figure(figsize=(6, 4))
    for y, lab in zip(curves, labels):
        ax.plot(xs, y, label=lab)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step along the direction")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_surface_views(
    x: np.ndarray,
    y: np.ndarray,
    values: np.ndarray,
    out_dir: Path,
    stem: str,
    label: str = "train loss",
    log: bool = False,
    points: dict[str, tuple[float, float]] | None = None,
    levels: int = 30,
    xlabel: str = "α (direction 1)",
    ylabel: str = "β (direction 2)",
) -> dict[str, Path]:
    """Contour, filled contour, heatmap and 3D surface of ``values[i_y, i_x]``; returns name → path."""
    values = np.asarray(values, dtype=float)
    if values.shape != (len(y), len(x)):
        raise ValueError(f"surface values have shape {values.shape}, expected (len(y), len(x)) = {(len(y), len(x))}")
    v = _prepare(values, log)
    zlabel = f"log10 {label}" if log else label
    X, Y = np.meshgrid(x, y)
    out: dict[str, Path] = {}
    finite = np.isfinite(v)
    lv = np.linspace(np.nanmin(v), np.nanmax(v), levels) if finite.any() and np.nanmax(v) > np.nanmin(v) else levels

    def mark(ax):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        for name, (px, py) in (points or {}).items():
            ax.plot(px, py, "k*", ms=9)
            ax.annotate(name, (px, py), textcoords="offset points", xytext=(4, 4), fontsize=8)

    fig, ax = new_figure(figsize=(5, 4.5))
    cs = ax.contour(X, Y, v, levels=lv, cmap="viridis", linewidths=0.8)
    ax.clabel(cs, inline=True, fontsize=6, fmt="%.2g")
    mark(ax)
    ax.set_title(f"{zlabel}: contour", fontsize=10)
    out["contour"] = save_figure(fig, out_dir / f"{stem}_contour.png")

    fig, ax = new_figure(figsize=(5.5, 4.5))
    cf = ax.contourf(X, Y, v, levels=lv, cmap="viridis")
    fig.colorbar(cf, ax=ax, label=zlabel)
    mark(ax)
    ax.set_title(f"{zlabel}: filled contour", fontsize=10)
    out["contourf"] = save_figure(fig, out_dir / f"{stem}_contourf.png")

    fig, ax = new_figure(figsize=(5.5, 4.5))
    im = ax.imshow(v, origin="lower", extent=(x[0], x[-1], y[0], y[-1]), aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label=zlabel)
    mark(ax)
    ax.set_title(f"{zlabel}: heatmap", fontsize=10)
    out["heatmap"] = save_figure(fig, out_dir / f"{stem}_heatmap.png")

    fig = plt.figure(figsize=(6, 5), layout="constrained")
    ax3 = fig.add_subplot(projection="3d")
    ax3.plot_surface(X, Y, np.where(finite, v, np.nan), cmap="viridis", linewidth=0, antialiased=True)
    ax3.set_xlabel(xlabel)
    ax3.set_ylabel(ylabel)
    ax3.set_zlabel(zlabel)
    ax3.set_title(f"{zlabel}: 3D surface", fontsize=10)
    out["surface3d"] = save_figure(fig, out_dir / f"{stem}_3d.png")
    return out


def plot_pca_trajectory(
    x: np.ndarray,
    y: np.ndarray,
    values: np.ndarray | None,
    path_xy: np.ndarray,
    epochs: Sequence[int],
    explained: Sequence[float],
    out: Path,
    log: bool = True,
) -> Path:
    """The optimizer's path projected on the top-2 PCA plane, over the loss contours (Li Fig. 9)."""
    fig, ax = new_figure(figsize=(5.5, 5))
    if values is not None:
        v = _prepare(values, log)
        X, Y = np.meshgrid(x, y)
        cs = ax.contour(X, Y, v, levels=25, cmap="viridis", linewidths=0.8)
        ax.clabel(cs, inline=True, fontsize=6, fmt="%.2g")
    ax.plot(path_xy[:, 0], path_xy[:, 1], "r.-", lw=1.2, ms=5)
    for e, (px, py) in zip(epochs, path_xy):
        ax.annotate(str(e), (px, py), fontsize=6, textcoords="offset points", xytext=(2, 2))
    ax.set_xlabel(f"1st PCA component: {100 * explained[0]:.1f}%")
    ax.set_ylabel(f"2nd PCA component: {100 * explained[1]:.1f}%")
    ax.set_title("optimization path on the PCA plane", fontsize=10)
    return save_figure(fig, out)


def plot_weight_histograms(hists: dict[str, tuple[np.ndarray, np.ndarray]], out: Path) -> Path:
    """Histograms of weights of several checkpoints (Li Fig. 3)."""
    fig, ax = new_figure(figsize=(6, 4))
    for label, (counts, edges) in hists.items():
        centers = 0.5 * (edges[1:] + edges[:-1])
        ax.plot(centers, counts, label=label)
    ax.set_xlabel("weight value")
    ax.set_ylabel("density")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, out)
