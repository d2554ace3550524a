"""Torch threads per job on CPU: how long CPU-scale jobs take at 1 thread against 2 (and every core).

Why: ``threads: null`` (torch's default) gives a job every core, but CPU-scale models are small — a connector
optimizes 8 MLP nodes on MNIST-1D, the demo evaluates a SimpleCNN on 8x8 digits — and a torch thread pool
costs a fork and a join per kernel, more than such kernels take. This measures whole jobs as a user runs
them (``python -m lsx.analyze ... threads=N``, one fresh interpreter each), so the docs can say which count
to use. Trained optima come from one shared cache (trained in the warm-up round); each timed analysis
writes into a fresh output folder, so it recomputes; each timed training run gets a fresh cache. Contenders
are interleaved round by round with the order rotated (``timing.py``); ratios are per round.

Usage: ``python benchmarks/bench_threads.py [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Callable

from timing import fmt_ratio, fmt_time, header, interleave, print_block, run_python, table

JOBS = {
    "make demo (quickstart: 2D surface of a SimpleCNN on digits)": ["-m", "lsx.analyze", "experiment=quickstart"],
    "fort_fig3 scale=cpu (low-loss connector, MNIST-1D MLP)": [
        "-m",
        "lsx.analyze",
        "experiment=fort_fig3",
        "scale=cpu",
        "analysis.seeds=[0,1]",
    ],
    "lsx.train (SimpleCNN on digits, 10 epochs)": ["-m", "lsx.train", "training.epochs=10"],
}


def command(args: list[str], env: dict[str, str], tmp: str, fresh_cache: bool) -> Callable[[], None]:
    def run() -> None:
        out = tempfile.mkdtemp(dir=tmp)
        call_env = dict(env, LSX_OUTPUT_DIR=f"{out}/outputs")
        if fresh_cache:
            call_env["LSX_CACHE_DIR"] = f"{out}/cache"
        run_python(args, call_env)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    counts = sorted({1, 2, cores})
    title = header("bench_threads", args.repeats, args.warmup) + f"; {cores} cores"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LSX_CACHE_DIR=f"{tmp}/cache", WANDB_MODE="offline")
        env.pop("OMP_NUM_THREADS", None)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH", "")) if p)
        for job, argv in JOBS.items():
            train = argv[1] == "lsx.train"
            contenders = {f"threads={n}": command([*argv, f"threads={n}"], env, tmp, train) for n in counts}
            t = interleave(contenders, args.repeats, args.warmup)
            for n in counts:
                name = f"threads={n}"
                ratio = "1.00x" if n == 1 else fmt_ratio(t, name, "threads=1")
                rows.append(f"| {job} | {n} | {fmt_time(t, name)} | {ratio} |")
    lines = [
        *table(["job (whole command, fresh interpreter)", "torch threads", "median s (min–max)", "time ÷ 1 thread"], rows),
    ]
    print_block("threads", title, lines)


if __name__ == "__main__":
    main()
