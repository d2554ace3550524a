"""A finished job's stored surfaces and curves, read from its files (never recomputed).

Why one reader: the interactive figures (:mod:`lsx.plots.interactive`), the ParaView/CSV export
(:mod:`lsx.cli.export`) and W&B all show the same stored numbers; reading them in one place keeps
those views identical to the ``.h5`` stores and ``.npz`` files the static PNGs were drawn from.

A 2D surface is read from the job's HDF5 store (every metric, ``values[i_y, i_x]``); a 1D family of
curves from the job's ``.npz`` (the arrays its PNG plots). Jobs without a surface or curve (tunnel
widths, Hessian spectra, ...) have no view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

METRIC_LABELS = {
    "train_loss": "train loss",
    "test_loss": "test loss",
    "eval_loss": "held-out loss",
    "train_acc": "train accuracy",
    "test_acc": "test accuracy",
    "train_error": "train error",
    "test_error": "test error",
}


@dataclass
class SurfaceView:
    """One stored 2D surface: ``values[name][i_y, i_x]`` exactly as in ``source``."""

    key: str
    title: str
    x: np.ndarray
    y: np.ndarray
    values: dict[str, np.ndarray]
    source: str
    xlabel: str = "α (direction 1)"
    ylabel: str = "β (direction 2)"
    markers: dict[str, tuple[float, float]] = field(default_factory=dict)
    trajectory: np.ndarray | None = None  # (N, 2) positions in the plane (PCA: one per saved epoch)
    trajectory_labels: list[str] = field(default_factory=list)
    log: bool = False


@dataclass
class Curve:
    label: str
    x: np.ndarray
    values: dict[str, np.ndarray]


@dataclass
class CurveFamily:
    """1D curves sharing an x axis meaning; ``is_path`` for curves along a path between optima."""

    key: str
    title: str
    xlabel: str
    curves: list[Curve]
    source: str
    markers: dict[str, float] = field(default_factory=dict)
    is_path: bool = False
    log: bool = False


@dataclass
class JobViews:
    job: str
    job_dir: Path
    surfaces: list[SurfaceView] = field(default_factory=list)
    curves: list[CurveFamily] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.surfaces and not self.curves


PATH_METRICS = ("train_loss", "test_loss", "train_acc", "test_acc", "train_error", "test_error")
Reader = Callable[[Path, dict[str, Any], dict[str, Any]], tuple[list[SurfaceView], list[CurveFamily]]]
_READERS: dict[str, Reader] = {}


def reader(*jobs: str) -> Callable[[Reader], Reader]:
    def deco(fn: Reader) -> Reader:
        for j in jobs:
            _READERS[j] = fn
        return fn

    return deco


def jobs_with_views() -> list[str]:
    return sorted(_READERS)


def read_job(
    job_dir: str | Path, job: str | None = None, config: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None
) -> JobViews:
    """The surfaces and curves of a job directory. ``job``/``config``/``metrics`` default to the
    directory's results.json and config.yaml (the job runner passes them before writing those)."""
    job_dir = Path(job_dir)
    if job is None or metrics is None:
        results = job_dir / "results.json"
        if not results.is_file():
            raise ValueError(f"{job_dir} is not a finished lsx job directory (no results.json)")
        from lsx.utils.io import read_json

        r = read_json(results)
        job = job or str(r.get("job"))
        metrics = (r.get("metrics") or {}) if metrics is None else metrics
    if config is None:
        config = _read_config(job_dir)
    fn = _READERS.get(job)
    if fn is None:
        return JobViews(job, job_dir)
    surfaces, curves = fn(job_dir, config.get("analysis") or {}, metrics)
    return JobViews(job, job_dir, surfaces, curves)


def _read_config(job_dir: Path) -> dict[str, Any]:
    import yaml

    path = job_dir / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


# ----------------------------------------------------------------------------- stored grids
def stored_grid(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    """(x, y, metric → values[i_y, i_x], provenance) of a 2D store; the point list must be the row-major
    grid of its own first row and column exactly (as every job writes it), else a clear error."""
    from lsx.landscape.engine.grids import grid_points
    from lsx.landscape.engine.storage import load_store

    st = load_store(path)
    if st.grid.kind == "grid":
        x, y = st.grid.axes
    else:
        c = st.coords
        if c.ndim != 2 or c.shape[1] != 2:
            raise ValueError(f"{path} holds {c.shape[1] if c.ndim == 2 else '?'}-D points, not a 2D surface")
        nx = int(np.argmax(c[:, 1] != c[0, 1])) or len(c)
        x, y = c[:nx, 0], c[::nx, 1]
        if len(x) * len(y) != len(c) or not np.array_equal(grid_points(x, y), c):
            raise ValueError(f"{path}: its points are not a row-major grid (values[i_y, i_x]); cannot show it as a surface")
    values = {
        m: np.asarray(st.grid.reshape(v) if st.grid.kind == "grid" else v.reshape(len(y), len(x)), dtype=np.float64)
        for m, v in st.metrics.items()
    }
    return np.asarray(x, np.float64), np.asarray(y, np.float64), values, st.provenance


def grid_file(job_dir: Path, store: str, npz: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, Any], str]:
    """The job's HDF5 store when present (every metric), else its ``.npz`` grid (x, y and the 2D arrays saved
    beside it); plus the name of the file read."""
    if (job_dir / store).is_file() or not (job_dir / npz).is_file():
        return (*stored_grid(job_dir / store), store)
    with np.load(job_dir / npz) as z:
        x, y = np.asarray(z["x"], np.float64), np.asarray(z["y"], np.float64)
        values = {k: np.asarray(z[k], np.float64) for k in z.files if z[k].shape == (len(y), len(x))}
    return x, y, values, {}, npz


def _origin_inside(x: np.ndarray, y: np.ndarray) -> bool:
    return bool(x[0] <= 0 <= x[-1] and y[0] <= 0 <= y[-1])


@reader("surface2d")
def _surface2d(job_dir: Path, a: dict[str, Any], metrics: dict[str, Any]):
    x, y, values, prov, src = grid_file(job_dir, "surface.h5", "surface_grid.npz")
    markers = {"θ* (trained)": (0.0, 0.0)} if _origin_inside(x, y) else {}
    seeds = prov.get("seeds", a.get("direction_seeds", "?"))
    title = f"{prov.get('norm', a.get('norm', ''))}-normalized random directions (seeds {seeds})".lstrip("-")
    return [SurfaceView("surface", title, x, y, values, src, markers=markers, log=bool(a.get("log_scale")))], []


@reader("surface_kinds")
def _surface_kinds(job_dir: Path, a: dict[str, Any], metrics: dict[str, Any]):
    x, y, values, prov, src = grid_file(job_dir, "surface.h5", "surface_grid.npz")
    kinds = [d.get("kind", "?") for d in prov.get("directions") or []] or [a.get("x_kind", "?"), a.get("y_kind", "?")]
    return [
        SurfaceView(
            "surface",
            f"{kinds[0]} × {kinds[1]} directions",
            x,
            y,
            values,
            src,
            xlabel=f"λ ({kinds[0]})",
            ylabel=f"μ ({kinds[1]})",
            markers={"θ (trained)": (0.0, 0.0)},
            log=bool(a.get("log_scale")),
        )
    ], []


def _plane_markers(prov: dict[str, Any], seeds: list[Any]) -> dict[str, tuple[float, float]]:
    pos = prov.get("positions")
    if not pos:  # older stores: only the centre (the first optimum, the plane's origin) is known
        return {f"seed {seeds[0]}" if seeds else "optimum 1": (0.0, 0.0)}
    names = [f"seed {s}" for s in seeds] if len(seeds) == len(pos) else [f"optimum {i + 1}" for i in range(len(pos))]
    return {n: (float(p[0]), float(p[1])) for n, p in zip(names, pos)}


@reader("plane")
def _plane(job_dir: Path, a: dict[str, Any], metrics: dict[str, Any]):
    x, y, values, prov, src = grid_file(job_dir, "plane.h5", "plane_grid.npz")
    seeds = list(a.get("seeds") or [])
    if not prov.get("positions") and (job_dir / "plane_grid.npz").is_file():
        with np.load(job_dir / "plane_grid.npz") as z:
            prov = {"positions": z["positions"].tolist()} if "positions" in z.files else prov
    return [
        SurfaceView(
            "plane",
            "plane through three trained optima",
            x,
            y,
            values,
            src,
            "plane direction 1",
            "plane direction 2",
            _plane_markers(prov, seeds),
            log=bool(a.get("log_scale")),
        )
    ], []


@reader("radial_tunnels")
def _radial(job_dir: Path, a: dict[str, Any], metrics: dict[str, Any]):
    epochs = [int(e) for e in metrics.get("epochs") or a.get("epochs") or []]
    seeds = list(a.get("seeds") or [])
    out = []
    for e in epochs:
        name = f"plane_epoch{e}.h5"
        if not (job_dir / name).is_file():
            continue
        x, y, values, prov = stored_grid(job_dir / name)
        out.append(
            SurfaceView(
                f"plane_epoch{e}",
                f"epoch {e}: plane of three optima",
                x,
                y,
                values,
                name,
                "plane direction 1",
                "plane direction 2",
                _plane_markers(prov, seeds),
                log=True,
            )
        )
    return out, []


@reader("pca_trajectory")
def _pca(job_dir: Path, a: dict[str, Any], metrics: dict[str, Any]):
    x, y, values, prov = stored_grid(job_dir / "pca.h5")
    with np.load(job_dir / "pca.npz") as z:
        path, epochs, ev = z["path"], z["epochs"], z["explained"]
    labels = [f"PC{i + 1} ({100 * float(ev[i]):.1f}% of variance)" if i < len(ev) else f"PC{i + 1}" for i in range(2)]
    return [
        SurfaceView(
            "pca",
            "training trajectory on its first two principal components",
            x,
            y,
            values,
            "pca.h5",
            labels[0],
            labels[1],
            {f"epoch {int(epochs[-1])} (final)": (0.0, 0.0)},
            np.asarray(path, np.float64),
            [f"epoch {int(e)}" for e in epochs],
            log=bool(a.get("log_scale")),
        )
    ], []


# ----------------------------------------------------------------------------- 1D curves
@reader("curves1d")
def _curves1d(job_dir: Path, a: dict[str, Any], metrics: dict[str, Any]):
    with np.load(job_dir / "curves.npz") as z:
        xs, seeds, counts = z["x"], z["seeds"], z["stationary_points"]
        data = {m: z[m] for m in ("train_loss", "train_acc", "test_loss", "test_acc") if m in z.files}
    curves = [
        Curve(f"dir seed {int(s)}: {int(n)} stationary pts", xs, {m: v[i] for m, v in data.items()})
        for i, (s, n) in enumerate(zip(seeds, counts))
    ]
    return [], [
        CurveFamily(
            "curves",
            f"{a.get('norm', '')}-normalized random directions".lstrip("-"),
            "step along the direction",
            curves,
            "curves.npz",
            {"θ* (trained)": 0.0},
            log=bool(a.get("log_scale")),
        )
    ]


@reader("interpolation")
def _interpolation(job_dir: Path, a: dict[str, Any], metrics: dict[str, Any]):
    with np.load(job_dir / "interpolation.npz") as z:
        alpha = z["alpha"]
        data = {m: z[m] for m in ("train_loss", "train_acc", "test_loss", "test_acc") if m in z.files}
    labels = [str((e or {}).get("label") or f"endpoint {i}") for i, e in enumerate(a.get("endpoints") or [{}, {}])]
    return [], [
        CurveFamily(
            "interpolation",
            f"{labels[0]} → {labels[1]}",
            "α",
            [Curve("θ(α)", alpha, data)],
            "interpolation.npz",
            {labels[0]: 0.0, labels[1]: 1.0},
            is_path=True,
            log=True,
        )
    ]


@reader("curve_taxonomy")
def _taxonomy(job_dir: Path, a: dict[str, Any], metrics: dict[str, Any]):
    with np.load(job_dir / "curve_taxonomy.npz") as z:
        loss, kinds, types, lams = z["loss"], z["kinds"], z["types"], z["lams"]
    curves = [Curve(f"{k} #{i}: {t}", lams[i], {"train_loss": loss[i]}) for i, (k, t) in enumerate(zip(kinds, types))]
    return [], [
        CurveFamily(
            "curve_taxonomy",
            "curves along Xu et al.'s direction kinds",
            "λ",
            curves,
            "curve_taxonomy.npz",
            {"θ (trained)": 0.0},
            log=False,
        )
    ]


@reader("connector")
def _connector(job_dir: Path, a: dict[str, Any], metrics: dict[str, Any]):
    seeds = list(a.get("seeds") or ["a", "b"])
    with np.load(job_dir / "connector.npz") as z:
        t = z["t"]
        curves = []
        for part, label in (("linear", "straight line"), ("connector", "low-loss connector")):
            vals = {"eval_loss": z[f"{part}_loss"]}
            vals.update(
                {
                    k: z[f"{part}_metric_{k}"]
                    for k in ("train_loss", "train_acc", "test_loss", "test_acc")
                    if f"{part}_metric_{k}" in z.files
                }
            )
            curves.append(Curve(label, t, vals))
    return [], [
        CurveFamily(
            "connector",
            f"seed {seeds[0]} → seed {seeds[-1]}",
            "position along the path",
            curves,
            "connector.npz",
            {f"seed {seeds[0]}": float(t[0]), f"seed {seeds[-1]}": float(t[-1])},
            is_path=True,
            log=True,
        )
    ]


@reader("autoneb")
def _autoneb(job_dir: Path, a: dict[str, Any], metrics: dict[str, Any]):
    fams = []
    for f in sorted(job_dir.glob("pair_*.npz")):
        _, si, sj = f.stem.split("_", 2)
        with np.load(f) as z:
            curves = []
            for part, label in (("path", "AutoNEB path (MEP)"), ("line", "straight line")):
                vals = {k: z[f"{part}_{k}"] for k in PATH_METRICS if f"{part}_{k}" in z.files}
                curves.append(Curve(label, z[f"{part}_arc_length"], vals))
        fams.append(
            CurveFamily(
                f.stem,
                f"seed {si} → seed {sj}",
                "normalized arc length",
                curves,
                f.name,
                {f"seed {si}": 0.0, f"seed {sj}": 1.0},
                is_path=True,
                log=True,
            )
        )
    return [], fams
