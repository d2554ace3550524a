"""Resumable evaluation of a list of points into a job's store (what landscape jobs call).

A relaunched job opens its store, evaluates only the points not done (none when the store is
complete), and flushes every ``flush_every`` points or ``flush_seconds``. Under torch.distributed
every rank evaluates a strided share of each block of missing points; the block's results are
merged on all ranks and rank 0 writes the store, so a killed multi-process job also resumes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .evaluator import Evaluator, _progress_fn, dist_rank_world
from .grids import Grid, as_grid
from .progress import Progress
from .storage import PointStore

log = logging.getLogger("lsx.progress")


def compute_surface(
    evaluator: Evaluator,
    theta0: torch.Tensor,
    directions: torch.Tensor,
    coords: np.ndarray | Grid,
    store_path: str | Path,
    provenance: dict[str, Any],
    config: dict[str, Any],
    flush_every: int = 25,
    flush_seconds: float = 30.0,
    progress: Progress = False,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """Metrics at θ0 + coords @ directions, resumed from and saved to ``store_path``.

    ``coords`` is a :class:`~lsx.landscape.engine.grids.Grid` (results come back shaped like it: (len(x),) for
    a line, values[i_y, i_x] for a 2D grid) or a (P, K) array (results of shape (P,)). ``provenance``
    (direction kind, seeds, normalization, ignore, source checkpoints...) is stored as attributes of the
    directions, ``config`` as JSON; a store made with other coordinates, directions, θ0 or config is
    refused (:class:`~lsx.landscape.engine.storage.StoreMismatch`). Points already done are not re-evaluated.
    ``workers`` > 1 evaluates blocks of points in that many forked 1-thread processes
    (:func:`~lsx.landscape.engine.evaluator.evaluate_in_workers`, CPU only), one block per flush, so a killed
    run keeps every finished block.
    """
    grid = as_grid(coords)
    dirs = evaluator.check_directions(theta0, directions)
    rank, world = dist_rank_world()
    store = PointStore(
        store_path,
        grid,
        dirs.detach().cpu().numpy(),
        evaluator.metric_names,
        provenance,
        config,
        theta0=theta0.detach().cpu().numpy(),
        layout=evaluator.flat.layout(),
        flush_every=flush_every,
        flush_seconds=flush_seconds,
        runtime={"device": evaluator.device.type, "points_per_pass": evaluator.points_per_pass},
    )
    if world > 1:
        _agree_on_done(store)
    done = grid.num_points - len(store.missing)
    if done and not store.complete and rank == 0:
        log.info("%s: resuming, %d of %d points already done", Path(store_path).name, done, grid.num_points)
    if not store.complete:
        if world == 1:
            if int(workers) > 1:
                _run_blocks(evaluator, theta0, dirs, grid, store, progress, int(workers), 0, 1)
            else:
                _run_single(evaluator, theta0, dirs, grid, store, progress)
        else:
            _run_blocks(evaluator, theta0, dirs, grid, store, progress, int(workers), rank, world)
    if world > 1:
        torch.distributed.barrier()  # the store is on disk before any rank moves on
    return {k: grid.reshape(v.copy()) for k, v in store.metrics.items()}


def _run_single(evaluator: Evaluator, theta0, dirs, grid: Grid, store: PointStore, progress: Progress) -> None:
    def on_point(i: int, m: dict[str, float]) -> None:
        store.record(i, m)
        store.maybe_flush()

    try:
        evaluator.evaluate(theta0, dirs, grid, indices=store.missing, on_point=on_point, progress=progress)
    finally:
        if store.unflushed:  # keep what was computed before an error or interrupt
            store.flush()


def _run_blocks(
    evaluator: Evaluator, theta0, dirs, grid: Grid, store: PointStore, progress: Progress, workers: int, rank: int, world: int
) -> None:
    """Blocks of missing points, each sharded over the ranks (and ``workers`` local processes), then flushed."""
    missing = store.missing
    block = store.flush_every * world * max(1, workers)
    tick = _progress_fn(progress, len(missing), rank)
    for start in range(0, len(missing), block):
        idx = missing[start : start + block]
        res = evaluator.evaluate(theta0, dirs, grid, indices=idx, workers=workers)
        for i in idx:
            store.record(i, {k: float(v[i]) for k, v in res.items()})
        if rank == 0:
            store.maybe_flush()
        tick(min(start + block, len(missing)))
    tick(None)
    if rank == 0:
        store.flush()


def _agree_on_done(store: PointStore) -> None:
    """All ranks take rank 0's done mask and finished metrics: only rank 0's store is the job's (the
    others may run in a scratch directory or on another node), and every rank returns full results.
    Ranks that would evaluate other points (θ0, directions, coordinates) all stop with a clear error."""
    signatures: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(signatures, store.signature)
    differ = sorted({k for sig in signatures for k in sig if sig[k] != signatures[0][k]})
    if differ:
        raise ValueError(
            f"ranks disagree on the surface's {', '.join(differ)}: every rank must build the same "
            "θ0, directions and coordinates (seeded, deterministic)"
        )
    state = [(store.done, store.metrics)]
    torch.distributed.broadcast_object_list(state, src=0)
    done, metrics = state[0]
    store.done = np.asarray(done, dtype=bool).copy()
    store.metrics = {k: np.asarray(v, dtype=np.float64).copy() for k, v in metrics.items()}
