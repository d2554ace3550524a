"""Cache hits on the command line: how long a finished ``lsx.train`` / ``lsx.analyze`` call takes to return.

Why: a sweep relaunched after a few failures re-runs every finished job; each must be a quick no-op
(the target is under 3 s), so the CLI imports Lightning, W&B and the job modules only when there is
work to do. Reference: ``python -c "import torch"``, the floor of any torch program. Each contender is
a fresh interpreter (``subprocess``), interleaved round by round with the order rotated (``timing.py``);
the finished run and job are made once, first, in a temporary cache.

Usage: ``python benchmarks/bench_cli.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from timing import fmt_ratio, fmt_time, header, interleave, print_block, run_python, table

TRAIN = ["-m", "lsx.train", "training.epochs=1"]
ANALYZE = ["-m", "lsx.analyze", "analysis=surface2d", "training.epochs=1", "analysis.x.num=3", "analysis.y.num=3"]


def command(args: list[str], env: dict[str, str]):
    return lambda: run_python(args, env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    args = ap.parse_args()
    title = header("bench_cli", args.repeats, args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, LSX_CACHE_DIR=f"{tmp}/cache", LSX_OUTPUT_DIR=f"{tmp}/outputs", WANDB_MODE="offline")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH", "")) if p)
        command(TRAIN, env)()  # the finished run ...
        command(ANALYZE, env)()  # ... and the finished job that the timed calls find
        contenders = {
            "python -c 'import torch'": command(["-c", "import torch"], env),
            "lsx.train, cache hit": command(TRAIN, env),
            "lsx.analyze surface2d, finished job": command(ANALYZE, env),
        }
        t = interleave(contenders, args.repeats, args.warmup)
    ref = "python -c 'import torch'"
    rows = [f"| {c} | {fmt_time(t, c)} | {fmt_ratio(t, c, ref)} |" for c in contenders]
    lines = [
        *table(["command", "median s (min–max)", "time ÷ import torch"], rows),
    ]
    print_block("cli", title, lines)


if __name__ == "__main__":
    main()
