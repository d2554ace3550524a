"""One resumable, atomically written HDF5 file per job: coordinates, directions, metrics, config.

Why: evaluating a surface can take hours; a killed job must lose at most a few points and a
relaunched one must neither redo finished points nor mix in points of a different setup.

File layout (``format = "lsx-points/1"``)::

    coords            (P, K) float64   one row of coordinates per point; attrs kind, axis_names
    axes/x, axes/y    axis vectors of a line / grid (values[i_y, i_x], see lsx.landscape.engine.grids)
    directions        (K, numel)       the vectors; attrs = provenance (kind, seed, norm, ignore, sources...)
    theta0            (numel,)         the centre θ0 (when given), so any point is θ0 + coords[i] @ directions
    done              (P,) bool        which points hold results
    metrics/<name>    (P,) float64     NaN where not done (NaN/inf where done are real results)
    attrs             provenance, config, layout (JSON), metric_names, one hash per part (the signature)

Every flush writes a complete new file to a temp file in the same directory and ``os.replace``-s it
over the old one, so a kill (or a failing write) never leaves a half-written store.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from .grids import Grid, as_grid

FORMAT = "lsx-points/1"


class StoreMismatch(ValueError):
    """An existing store was made for other directions/coordinates/centre/config/metrics."""


def _hash_array(a: np.ndarray | None) -> str:
    if a is None:
        return "none"
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _hash_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _plain(obj: Any) -> Any:
    """JSON-ready copy: mappings (also OmegaConf's) → dict, sequences → list, numpy scalars → Python."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) or (isinstance(obj, Sequence) and not isinstance(obj, (str, bytes))):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _as_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor, without importing torch here
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _to_numpy(a: Any) -> np.ndarray | None:
    return None if a is None else _as_numpy(a)


def _attr_value(v: Any) -> Any:
    """A provenance value as an HDF5 attribute: strings and numbers as is, anything else as JSON."""
    if isinstance(v, (str, bool, int, float, np.integer, np.floating)):
        return v
    if (
        isinstance(v, (list, tuple))
        and v
        and all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) for x in v)
    ):
        return np.asarray(v)
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v):
        return np.asarray(v, dtype=h5py.string_dtype())
    return json.dumps(v, default=str)


class PointStore:
    """Metrics at a list of points, with the directions and provenance that define them.

    Opening a path that exists loads its ``done`` mask and metrics after checking that it was made for
    the same coordinates, directions, centre, config and metrics (``StoreMismatch`` names what differs).
    Call :meth:`record` per point, :meth:`maybe_flush` to write every ``flush_every`` points or
    ``flush_seconds``, and :meth:`flush` at the end.
    """

    def __init__(
        self,
        path: str | Path,
        coords: np.ndarray | Grid,
        directions: Any,
        metric_names: Sequence[str],
        provenance: dict[str, Any],
        config: dict[str, Any],
        theta0: Any = None,
        layout: list[dict] | None = None,
        flush_every: int = 25,
        flush_seconds: float = 30.0,
        runtime: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.grid = as_grid(coords)
        self.coords = self.grid.points
        self.directions = _as_numpy(directions)
        if self.directions.ndim == 1:
            self.directions = self.directions[None]
        if self.directions.ndim != 2 or self.directions.shape[0] != self.coords.shape[1]:
            raise ValueError(
                f"{self.coords.shape[1]} coordinates per point need as many directions, "
                f"got directions of shape {self.directions.shape}"
            )
        self.theta0 = _to_numpy(theta0)
        if self.theta0 is not None and self.theta0.reshape(-1).shape[0] != self.directions.shape[1]:
            raise ValueError(f"θ0 has {self.theta0.size} entries, the directions {self.directions.shape[1]}")
        self.metric_names = list(metric_names)
        self.provenance = _plain(provenance or {})
        self.config = _plain(config or {})
        self.layout = layout
        self.flush_every = max(1, int(flush_every))
        self.flush_seconds = float(flush_seconds)
        self.signature = {
            "coords": _hash_array(self.coords),
            "directions": _hash_array(self.directions),
            "theta0": _hash_array(self.theta0),
            "config": _hash_json(self.config),
            "metrics": _hash_json(self.metric_names),
        }
        # how the points are evaluated (device, points per vmapped pass): equal up to float rounding, yet a
        # store must not mix the two paths; a store from before this was recorded accepts any (see _load_existing)
        self.runtime = _plain(runtime or {})
        if self.runtime:
            self.signature["runtime"] = _hash_json(self.runtime)
        self.metrics = {m: np.full(len(self.coords), np.nan) for m in self.metric_names}
        self.done = np.zeros(len(self.coords), dtype=bool)
        self._unflushed = 0
        self._last_flush = time.monotonic()
        self.flushes = 0
        if self.path.exists():
            self._load_existing()

    def _load_existing(self) -> None:
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            raise StoreMismatch(f"{self.path} exists but is not a readable HDF5 store ({e}); delete it to start over") from e
        with f:
            if f.attrs.get("format") != FORMAT:
                raise StoreMismatch(
                    f"{self.path} is not an {FORMAT} store (made by another version?); delete it or use a new directory"
                )
            differs = [
                part
                for part, h in self.signature.items()
                if f.attrs.get(f"sig_{part}") != h and not (part == "runtime" and "sig_runtime" not in f.attrs)
            ]
            if differs == ["runtime"]:
                stored = json.loads(f.attrs.get("runtime", "{}"))
                raise StoreMismatch(
                    f"{self.path} was evaluated with {_describe(stored)}, this run uses {_describe(self.runtime)}: "
                    "refusing to mix the two paths — resume with the same device and analysis.points_per_pass, "
                    "or delete it / use a new directory"
                )
            if differs:
                details = {
                    "coords": f"coordinates (stored {f['coords'].shape}, now {self.coords.shape})",
                    "directions": f"directions (stored {f['directions'].shape}, now {self.directions.shape})",
                    "theta0": "centre θ0",
                    "config": "job config",
                    "metrics": f"metric names (stored {list(json.loads(f.attrs['metric_names']))}, now {self.metric_names})",
                    "runtime": "device or points_per_pass",
                }
                raise StoreMismatch(
                    f"{self.path} was made with different {', '.join(details[p] for p in differs)}; "
                    "refusing to mix results — delete it or run the job in a new directory"
                )
            self.done = f["done"][()].astype(bool)
            for m in self.metric_names:
                self.metrics[m] = f[f"metrics/{m}"][()].astype(np.float64)

    # ------------------------------------------------------------------ progress
    @property
    def missing(self) -> list[int]:
        return [int(i) for i in np.flatnonzero(~self.done)]

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    @property
    def unflushed(self) -> int:
        """Points recorded since the last flush (lost if the process is killed now)."""
        return self._unflushed

    def record(self, i: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            if k in self.metrics:
                self.metrics[k][i] = v
        self.done[i] = True
        self._unflushed += 1

    def maybe_flush(self) -> bool:
        """Flush when ``flush_every`` points were recorded or ``flush_seconds`` passed since the last flush."""
        if self._unflushed and (self._unflushed >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds):
            self.flush()
            return True
        return False

    # ------------------------------------------------------------------ writing
    def flush(self) -> None:
        """Write the whole store to a temp file in the same directory, then rename it over the old one."""
        from lsx.utils.io import atomic_path  # temp file + rename, with the umask's permissions

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._check_free_space()
        with atomic_path(self.path) as tmp:
            with h5py.File(tmp, "w") as f:
                self._write(f)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        self._unflushed = 0
        self._last_flush = time.monotonic()
        self.flushes += 1

    def _check_free_space(self) -> None:
        """Refuse before HDF5 starts writing: a write that fails on a full disk makes h5py's
        finalizers crash the interpreter, so the caller would never see a clean error."""
        need = sum(a.nbytes for a in (self.coords, self.directions, self.done, *self.metrics.values()))
        need += 0 if self.theta0 is None else self.theta0.nbytes
        need += 1 << 20  # attributes, metadata, slack
        free = shutil.disk_usage(self.path.parent).free
        if free < need:
            raise OSError(errno.ENOSPC, f"No space left on device ({free} bytes free, {need} needed)", str(self.path))

    def _write(self, f: h5py.File) -> None:
        g = self.grid
        c = f.create_dataset("coords", data=self.coords)
        c.attrs["kind"] = g.kind
        c.attrs["axis_names"] = json.dumps(list(g.axis_names))
        for name, ax in zip(("x", "y"), g.axes):
            f.create_dataset(f"axes/{name}", data=ax)
        d = f.create_dataset("directions", data=self.directions)
        for k, v in self.provenance.items():
            d.attrs[str(k)] = _attr_value(v)
        if self.theta0 is not None:
            f.create_dataset("theta0", data=self.theta0.reshape(-1))
        f.create_dataset("done", data=self.done)
        for k, v in self.metrics.items():
            f.create_dataset(f"metrics/{k}", data=v)
        f.attrs["format"] = FORMAT
        for part, h in self.signature.items():
            f.attrs[f"sig_{part}"] = h
        f.attrs["metric_names"] = json.dumps(self.metric_names)
        f.attrs["provenance"] = json.dumps(self.provenance, default=str)
        f.attrs["config"] = json.dumps(self.config, default=str)
        f.attrs["runtime"] = json.dumps(self.runtime, default=str)
        f.attrs["layout"] = json.dumps(self.layout) if self.layout is not None else ""
        f.attrs["num_done"] = int(self.done.sum())
        f.attrs["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _describe(runtime: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(runtime.items())) or "nothing recorded"


@dataclass
class StoredPoints:
    """Everything a store holds; enough to re-evaluate any point from the file alone."""

    path: Path
    grid: Grid
    directions: np.ndarray
    theta0: np.ndarray | None
    done: np.ndarray
    metrics: dict[str, np.ndarray]
    provenance: dict[str, Any]
    direction_attrs: dict[str, Any]
    config: dict[str, Any]
    layout: list[dict] | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def coords(self) -> np.ndarray:
        return self.grid.points

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def point(self, i: int) -> np.ndarray:
        """θ0 + coords[i] @ directions in float64 (needs θ0 in the file)."""
        if self.theta0 is None:
            raise ValueError(f"{self.path} holds no θ0; its provenance names the centre: {self.provenance}")
        return self.theta0.astype(np.float64) + self.coords[i] @ self.directions.astype(np.float64)

    def shaped(self, name: str) -> np.ndarray:
        """One metric laid out like the grid (values[i_y, i_x] for a 2D grid)."""
        return self.grid.reshape(self.metrics[name])

    def __getitem__(self, key: str) -> Any:  # dict-style access for older callers
        return self.coords if key == "coords" else getattr(self, key)


def load_store(path: str | Path) -> StoredPoints:
    """Read a store: coordinates (as a Grid), directions, θ0, done mask, metrics, provenance, config."""
    path = Path(path)
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not an {FORMAT} store")
        coords = f["coords"][()]
        kind = str(f["coords"].attrs.get("kind", "points"))
        names = tuple(json.loads(f["coords"].attrs.get("axis_names", "[]")))
        axes = tuple(f[f"axes/{n}"][()] for n in ("x", "y") if f"axes/{n}" in f)
        grid = Grid(kind, coords, axes, names) if kind in ("line", "grid") else Grid("points", coords)
        direction_attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f["directions"].attrs.items()}
        layout = f.attrs.get("layout", "")
        return StoredPoints(
            path=path,
            grid=grid,
            directions=f["directions"][()],
            theta0=f["theta0"][()] if "theta0" in f else None,
            done=f["done"][()].astype(bool),
            metrics={k: f[f"metrics/{k}"][()] for k in json.loads(f.attrs["metric_names"])},
            provenance=json.loads(f.attrs["provenance"]),
            direction_attrs=direction_attrs,
            config=json.loads(f.attrs["config"]),
            layout=json.loads(layout) if layout else None,
            extra={"updated": f.attrs.get("updated"), "num_done": int(f.attrs.get("num_done", 0))},
        )
