"""One resumable, atomically written HDF5 file per job: coordinates, directions, metrics, config.

The file alone is enough to re-evaluate any point: θ0 is recorded by its checkpoint path in
the provenance, the directions are stored as vectors, the coordinates as rows. A ``done`` mask
tells a resumed job which points are still missing. Every flush writes a complete new file next
to the old one and renames it over, so a kill never leaves a half-written store.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np


class StoreMismatch(ValueError):
    """An existing store was made for other directions/coordinates/config."""


def _signature(coords: np.ndarray, directions: np.ndarray, config: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(coords, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(directions, dtype=np.float32).tobytes())
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    return h.hexdigest()


class PointStore:
    """Metrics at a list of points, with the directions and provenance that define them."""

    def __init__(
        self, path: str | Path, coords: np.ndarray, directions: np.ndarray, metric_names: list[str],
        provenance: dict[str, Any], config: dict[str, Any],
    ) -> None:
        self.path = Path(path)
        self.coords = np.atleast_2d(np.asarray(coords, dtype=np.float64))
        self.directions = np.asarray(directions, dtype=np.float32)
        self.provenance = provenance
        self.config = config
        self.signature = _signature(self.coords, self.directions, config)
        self.metrics = {m: np.full(len(self.coords), np.nan) for m in metric_names}
        self.done = np.zeros(len(self.coords), dtype=bool)
        if self.path.exists():
            self._load_existing()

    def _load_existing(self) -> None:
        with h5py.File(self.path, "r") as f:
            sig = f.attrs.get("signature", "")
            if sig != self.signature:
                raise StoreMismatch(
                    f"{self.path} was made with other directions, coordinates or config (signature differs); "
                    "refusing to mix results — delete it or run the job in a new directory"
                )
            self.done = f["done"][()].astype(bool)
            for m in self.metrics:
                if f"metrics/{m}" in f:
                    self.metrics[m] = f[f"metrics/{m}"][()]

    @property
    def missing(self) -> list[int]:
        return [int(i) for i in np.nonzero(~self.done)[0]]

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def record(self, i: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            if k in self.metrics:
                self.metrics[k][i] = v
        self.done[i] = True

    def flush(self) -> None:
        """Write the whole store to a temp file in the same directory, then rename it over."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                f.create_dataset("coords", data=self.coords)
                f.create_dataset("directions", data=self.directions, compression="gzip", compression_opts=1)
                f.create_dataset("done", data=self.done)
                for k, v in self.metrics.items():
                    f.create_dataset(f"metrics/{k}", data=v)
                f.attrs["signature"] = self.signature
                f.attrs["provenance"] = json.dumps(self.provenance, default=str)
                f.attrs["config"] = json.dumps(self.config, default=str)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def load_store(path: str | Path) -> dict[str, Any]:
    """Everything in a store: coords, directions, done, metrics, provenance and config."""
    with h5py.File(path, "r") as f:
        return {
            "coords": f["coords"][()],
            "directions": f["directions"][()],
            "done": f["done"][()].astype(bool),
            "metrics": {k: f[f"metrics/{k}"][()] for k in f["metrics"]},
            "provenance": json.loads(f.attrs["provenance"]),
            "config": json.loads(f.attrs["config"]),
        }
