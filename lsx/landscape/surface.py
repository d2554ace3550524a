"""Resumable evaluation of a list of points into a job's store (what landscape jobs call)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .evaluator import Evaluator, _dist_rank_world
from .storage import PointStore


def compute_surface(
    evaluator: Evaluator,
    theta0: torch.Tensor,
    directions: torch.Tensor,
    coords: np.ndarray,
    store_path: str | Path,
    provenance: dict[str, Any],
    config: dict[str, Any],
    flush_every: int = 25,
    flush_seconds: float = 30.0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Metrics at θ0 + coords @ directions; points already in the store are not re-evaluated.

    Flushes the store every ``flush_every`` points or ``flush_seconds`` (single process), so a
    killed job loses at most that much work. With torch.distributed each rank evaluates a share
    and rank 0 writes the merged store.
    """
    dirs = directions if directions.dim() == 2 else directions[None]
    store = PointStore(store_path, coords, dirs.detach().cpu().numpy(), evaluator.metric_names, provenance, config)
    if store.complete:
        return dict(store.metrics)
    rank, world = _dist_rank_world()
    state = {"n": 0, "t": time.time()}

    def on_point(i: int, m: dict[str, float]) -> None:
        store.record(i, m)
        state["n"] += 1
        if world == 1 and (state["n"] % max(1, flush_every) == 0 or time.time() - state["t"] > flush_seconds):
            store.flush()
            state["t"] = time.time()

    missing = store.missing
    res = evaluator.evaluate(theta0, dirs, store.coords, indices=missing, on_point=on_point, progress=progress)
    if world > 1:
        for i in missing:
            store.record(i, {k: float(v[i]) for k, v in res.items()})
    if rank == 0:
        store.flush()
    return dict(store.metrics)
