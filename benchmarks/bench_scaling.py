"""Scaling benchmark: landscape points/s of one ResNet-20 surface on 1 rank vs N ranks.

The same grid, weights, directions and data subset are evaluated by ``compute_surface`` (the sharded
path every landscape job takes under torchrun/SLURM), once in a single process and once on ``--procs``
processes started like torchrun would (env vars, gloo on CPU, nccl with one GPU per rank). Each rank
runs ``--threads`` torch threads (default 1: N processes on N cores). The timed span is from a barrier
after the evaluator is built to the store being complete on disk; the store of every run is checked
against the single-process one (values equal), so a fast but wrong sharding cannot pass.

Usage: ``python benchmarks/bench_scaling.py [--procs 2] [--side 6] [--train 256] [--repeats 2]`` (CPU), or
``--device cuda`` (1 GPU vs ``--procs`` GPUs, default all). Prints a markdown table (``make bench-scaling``).
Target (issue 17): >= 1.8x with 2 processes on 2 free cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _surface(store: Path, side: int, n_train: int, device: str, threads: int) -> tuple[float, int, np.ndarray]:
    """Build the ResNet-20 case and time compute_surface into ``store``; (seconds, points, train_loss)."""
    from lsx import distributed
    from lsx.landscape.engine.evaluator import Evaluator
    from lsx.landscape.engine.flat import FlatParams
    from lsx.landscape.engine.grids import grid2d
    from lsx.landscape.engine.surface import compute_surface
    from lsx.landscape.surfaces.directions import random_direction
    from lsx.models import build_model

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n_train, 3, 32, 32, generator=g), torch.randint(0, 10, (n_train,), generator=g)
    torch.manual_seed(0)
    model = build_model("resnet20", 3, (32, 32), 10).eval()
    flat = FlatParams(model)
    theta0 = flat.get()
    dirs = torch.stack([random_direction(flat, theta0, seed, "filter", "biasbn") for seed in (1, 2)])
    if device == "cpu":
        dev = torch.device("cpu")
    else:  # this rank's GPU under nccl; the first GPU for the single-process run
        dev = distributed.device() if distributed.rank_world()[1] > 1 else torch.device("cuda", 0)
    ev = Evaluator(model.to(dev), train=(x, y), test=None)
    grid = grid2d((-1, 1, side), (-1, 1, side))
    distributed.barrier()
    t0 = time.perf_counter()
    res = compute_surface(ev, theta0, dirs, grid, store, {"kind": "bench"}, {"side": side}, flush_every=4)
    distributed.barrier()
    return time.perf_counter() - t0, len(grid.points), res["train_loss"].ravel()


def _rank(rank: int, world: int, port: int, args: argparse.Namespace, out: str) -> None:
    from lsx import distributed

    os.environ.update(distributed.local_rank_env(rank, world, port, "nccl" if args.device == "cuda" else "gloo"))
    distributed.init_from_env()
    try:
        store = Path(out) / ("surface.h5" if rank == 0 else f"scratch{rank}.h5")
        seconds, n, loss = _surface(store, args.side, args.train, args.device, args.threads)
        if rank == 0:
            np.save(Path(out) / "result.npy", np.array([seconds, n]))
            np.save(Path(out) / "loss.npy", loss)
    finally:
        distributed.shutdown()


def run(world: int, args: argparse.Namespace) -> tuple[float, int, np.ndarray]:
    """One timed surface on ``world`` ranks (a fresh store, so every point is evaluated)."""
    from lsx.distributed import free_port

    with tempfile.TemporaryDirectory(prefix="lsx-bench-scaling-") as out:
        if world == 1:  # the single-process path, no process group
            return _surface(Path(out) / "surface.h5", args.side, args.train, args.device, args.threads)
        mp.spawn(_rank, args=(world, free_port(), args, out), nprocs=world, join=True)
        seconds, n = np.load(Path(out) / "result.npy")
        return float(seconds), int(n), np.load(Path(out) / "loss.npy")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--procs", type=int, default=None, help="ranks to compare with 1 (default: 2 on CPU, all GPUs with --device cuda)"
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--side", type=int, default=6, help="grid side (side x side points)")
    p.add_argument("--train", type=int, default=256, help="landscape train examples per point")
    p.add_argument("--repeats", type=int, default=2, help="runs per world size, alternated; the best is reported")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_scaling: --device cuda but no CUDA device is visible")
    procs = args.procs or (torch.cuda.device_count() if args.device == "cuda" else 2)
    if procs < 2:
        sys.exit(f"bench_scaling: need >= 2 ranks to compare with 1, got {procs}")
    worlds = [1, procs]
    best: dict[int, float] = {}
    ref = None
    for _ in range(args.repeats):
        for w in worlds:  # alternate, so drifting machine load hits both
            seconds, n, loss = run(w, args)
            if ref is None:
                ref = loss
            elif not np.array_equal(loss, ref) and not np.allclose(loss, ref, rtol=1e-6, atol=0, equal_nan=True):
                raise SystemExit(f"bench_scaling: {w} ranks gave a different surface than 1 rank")
            best[w] = min(best.get(w, float("inf")), seconds)
    unit = "GPU" if args.device == "cuda" else f"CPU process ({args.threads} thread{'s' if args.threads > 1 else ''})"
    try:
        load = f"{os.getloadavg()[0]:.1f}"
    except OSError:
        load = "n/a"
    name = "scaling" if args.device == "cpu" else "scaling-gpu"  # README block (benchmarks/update_readme.py)
    lines = [
        f"ResNet-20, {n} points ({args.side}x{args.side} grid), {args.train} train images per point, "
        f"best of {args.repeats}; load average {load}, {os.cpu_count()} cores",
        "",
        f"| ranks ({unit} each) | seconds | points/s | speed-up |",
        "|---|---|---|---|",
    ]
    lines += [f"| {w} | {best[w]:.2f} | {n / best[w]:.2f} | {best[1] / best[w]:.2f}x |" for w in worlds]
    print("\n".join([f"<!-- bench:{name} -->", *lines, f"<!-- /bench:{name} -->"]))


if __name__ == "__main__":
    main()
