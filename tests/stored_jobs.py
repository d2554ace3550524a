"""Tiny finished job directories written with the storage API (no training): a surface2d store, a PCA
plane with its trajectory, a 1D curve family, a connector path, for the interactive-figure and export tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsx.landscape.engine.grids import grid_points
from lsx.landscape.engine.storage import PointStore
from lsx.tracking.results import write_results

METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


def _grid_metrics(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    X, Y = np.meshgrid(x, y)
    loss = 0.01 + 3.0 * (X**2 + 0.5 * Y**2) + 0.1 * np.sin(7 * X) * Y  # spans decades: the log toggle appears
    loss[0, -1] = np.nan  # a diverged corner point: drawn as a gap, exported as NaN
    return {
        "train_loss": loss,
        "train_acc": np.clip(1 - loss / 4, 0, 1),
        "test_loss": 1.1 * loss + 0.02,
        "test_acc": np.clip(0.95 - loss / 4, 0, 1),
    }


def _store(path: Path, x: np.ndarray, y: np.ndarray, values: dict[str, np.ndarray], prov: dict) -> None:
    coords = grid_points(x, y)
    rng = np.random.default_rng(0)
    st = PointStore(path, coords, rng.standard_normal((2, 16)), list(values), prov, {"job": path.stem}, theta0=np.zeros(16))
    for i in range(len(coords)):
        st.record(i, {m: float(v.ravel()[i]) for m, v in values.items()})
    st.flush()


def surface_job(root: Path, nx: int = 9, ny: int = 7, name: str = "surface2d_demo") -> Path:
    """A finished ``surface2d`` job: surface.h5 (non-square grid), surface_grid.npz, results.json."""
    d = root / name
    x, y = np.linspace(-1, 1, nx), np.linspace(-0.6, 0.6, ny)
    values = _grid_metrics(x, y)
    _store(d / "surface.h5", x, y, values, {"kind": "random_gaussian", "seeds": [1, 2], "norm": "filter"})
    np.savez(d / "surface_grid.npz", x=x, y=y, **values)
    write_results(
        d,
        "surface2d",
        {"analysis": {"job": "surface2d", "log_scale": True}},
        {"grid": [nx, ny]},
        {"data": "surface.h5", "grid": "surface_grid.npz"},
    )
    return d


def pca_job(root: Path) -> Path:
    """A finished ``pca_trajectory`` job: pca.h5 and pca.npz with a 5-epoch trajectory."""
    d = root / "pca_trajectory_demo"
    x, y = np.linspace(-2, 1, 13), np.linspace(-1, 1, 9)  # (0, 0), the final epoch, is a grid node
    values = _grid_metrics(x, y)
    _store(d / "pca.h5", x, y, values, {"kind": "pca"})
    path = np.array([[-1.5, 0.8], [-1.0, 0.5], [-0.5, 0.2], [-0.1, 0.05], [0.0, 0.0]])
    np.savez(
        d / "pca.npz",
        x=x,
        y=y,
        train_loss=values["train_loss"],
        path=path,
        epochs=np.arange(1, 6),
        explained=np.array([0.8, 0.15]),
        off_plane=np.zeros(5),
    )
    write_results(
        d, "pca_trajectory", {"analysis": {"job": "pca_trajectory", "log_scale": False}}, {}, {"data": "pca.h5", "pca": "pca.npz"}
    )
    return d


def curves_job(root: Path) -> Path:
    """A finished ``curves1d`` job: curves.npz with 3 directions of 21 points."""
    d = root / "curves1d_demo"
    d.mkdir(parents=True)
    xs = np.linspace(-1, 1, 21)
    loss = np.stack([0.05 + (i + 1) * xs**2 for i in range(3)])
    np.savez(
        d / "curves.npz",
        x=xs,
        seeds=np.array([5, 6, 7]),
        stationary_points=np.array([1, 1, 3]),
        train_loss=loss,
        train_acc=1 - loss / 4,
        test_loss=loss + 0.1,
        test_acc=0.9 - loss / 4,
    )
    write_results(
        d, "curves1d", {"analysis": {"job": "curves1d", "norm": "filter", "log_scale": False}}, {}, {"curves": "curves.npz"}
    )
    return d


def connector_job(root: Path) -> Path:
    """A finished ``connector`` job: connector.npz with the straight line and the connector along t."""
    d = root / "connector_demo"
    d.mkdir(parents=True)
    t = np.linspace(0, 1, 17)
    line = 0.02 + 4 * np.sin(np.pi * t) ** 2
    conn = 0.02 + 0.05 * np.sin(np.pi * t) ** 2
    save = {"t": t}
    for part, v in (("linear", line), ("connector", conn)):
        save.update(
            {
                f"{part}_loss": v * 1.2,
                f"{part}_metric_train_loss": v,
                f"{part}_metric_train_acc": 1 - v / 5,
                f"{part}_metric_test_loss": v * 1.3,
                f"{part}_metric_test_acc": 0.9 - v / 5,
            }
        )
    np.savez(d / "connector.npz", **save)
    write_results(d, "connector", {"analysis": {"job": "connector", "seeds": [0, 1]}}, {}, {"data": "connector.npz"})
    return d


def tunnel_job(root: Path) -> Path:
    """A finished job without a surface or path (tunnel widths)."""
    d = root / "tunnel_width_demo"
    d.mkdir(parents=True)
    np.savez(d / "tunnel.npz", distances=np.ones(3), angular=np.ones(3), reached=np.ones(3, bool))
    write_results(d, "tunnel_width", {"analysis": {"job": "tunnel_width"}}, {"width_mean": 1.0}, {"data": "tunnel.npz"})
    return d
